"""The training loop of ``stabbench finetune``: Coherent-Loss fine-tuning, its control, and
plain supervised training (no videos).

One step (mode ``coherent``): a batch of ``batch_labeled`` labelled images and
``batch_pairs`` video pairs goes through the network in one forward pass (the paper's batch
of 24 = 12 + 6 x 2: BatchNorm sees all of it); the loss is
``coherent_loss(segmentation_loss(labelled), logits_t, logits_t1, flows, masks)``.
Mode ``control`` (``--no-coherent``): exactly the same batch (the same labelled images and
pair frames, in the same order, in the same single forward pass, so BatchNorm sees the same
24 images and computes the same batch statistics) and the same data order and pair draws;
only the loss differs: the supervised one alone (bc = gc = 0 in the log), so the pair
frames influence the step only through the normalisation statistics, as in the coherent
run. The control step does not use the flows (they are neither stacked nor sent to the
device), but setup still computes or reads them (cached on disk in ``--flow-cache``, once
per pair ever), so both modes list and validate the same pairs and can share one cache.
Mode ``supervised`` (no ``--videos``): labelled images only.

Output folder::

    model.pt               TorchScript (``stabbench eval --model OUT/model.pt``), eval mode, CPU
    model.stabbench.json   its preprocessing (input size, scale/mean/std, softmax, classes)
    state_dict.pt          the trained weights (``torch.load(weights_only=True)``)
    train_config.json      every setting, resolved input size, model/data provenance and
                           checksums, versions, seeds, steps, final state digest
    train_log.csv          one row per step: step, epoch, lr, total, seg, bc, gc, times
    eval_log.csv           with --eval-set: step, epoch, S_global, S_boundary, mIoU_syn
    checkpoint.pt          the latest checkpoint (every --checkpoint-every steps, each epoch end)
    flow-cache/            the flow of every video pair (default --flow-cache)

Resuming (``--resume``): the checkpoint holds the model, the optimizer, the RNG states
(torch, the NumPy generator, Python's ``random``) and the data position (epoch, step,
the epoch's permutation, the pair stream), so the resumed run performs exactly the steps
the uninterrupted one would (bit-identical weights on the CPU with the same torch build and
thread count).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stabbench.errors import DataError, ModelError, OutputConflictError, UsageError
from stabbench.training.config import TrainConfig, lr_at
from stabbench.training.data import DataOrder, LabeledData, PairData

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "stabbench-train-checkpoint"
CHECKPOINT_VERSION = 1
TRAIN_LOG = "train_log.csv"
EVAL_LOG = "eval_log.csv"
CONFIG_FILE = "train_config.json"
MODEL_FILE = "model.pt"
STATE_FILE = "state_dict.pt"
OUTPUTS = (MODEL_FILE, "model.stabbench.json", STATE_FILE, CONFIG_FILE, TRAIN_LOG, EVAL_LOG, CHECKPOINT)
TRAIN_COLUMNS = ("step", "epoch", "lr", "total", "seg", "bc", "gc", "step_time_s", "elapsed_s")
EVAL_COLUMNS = ("step", "epoch", "S_global", "S_boundary", "mIoU_syn", "sequences", "eval_time_s")
EVAL_BAND_WIDTH = 15


@dataclass
class TrainResult:
    out: Path
    steps: int
    epochs_done: int
    final_losses: dict = field(default_factory=dict)
    last_eval: dict | None = None
    stopped_early: bool = False


# --------------------------------------------------------------------------- helpers


def _versions() -> dict:
    import cv2
    import torch

    from stabbench import __version__

    return {"stabbench": __version__, "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _fmt(value: float) -> str:
    return f"{value:.8g}"


class CsvLog:
    """An append-only CSV log, flushed per row; ``truncate_after(step)`` drops later rows (resume)."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.path, self.columns = path, columns

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and int(r["step"]) <= step]
        buf = [",".join(self.columns)] + [",".join(r.get(c, "") for c in self.columns) for r in rows]
        _atomic_write_text(self.path, "\n".join(buf) + "\n")

    def append(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            if new:
                writer.writerow(self.columns)
            writer.writerow([row[c] for c in self.columns])


def prepare_out_dir(out: Path, *, resume: bool, overwrite: bool, keep: tuple[str, ...] = ("flow-cache",)) -> None:
    """Refuse to clobber: an existing non-empty folder needs ``--overwrite`` (which removes only
    this command's own outputs) unless ``--resume``."""
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"{out}: exists and is not a folder")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise DataError(out / CHECKPOINT, "no checkpoint to resume from (run without --resume to start)")
        return
    content = [p for p in out.iterdir() if p.name not in keep] if out.is_dir() else []
    if content and not overwrite:
        raise OutputConflictError(f"{out}: already exists; pass --overwrite to replace its outputs, or --resume to continue its run")
    for name in OUTPUTS:
        for path in (out / name, out / f".{name}.tmp"):
            if path.is_file():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def list_labeled(config: TrainConfig):
    from stabbench.datasets import list_sources

    try:
        return list_sources(config.dataset, config.root, **config.dataset_options)
    except ValueError as exc:
        raise DataError(None, str(exc)) from None


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs (or resumes) the loop."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, overwrite: bool = False):
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.out = Path(config.out)

    # ----------------------------------------------------------------- setup

    def setup(self, progress=None) -> None:
        import torch

        from stabbench.predictors.loaders import _check_device
        from stabbench.training.modelio import load_training_model

        cfg = self.config
        if cfg.eval_every and not cfg.eval_set:
            raise UsageError("--eval-every needs --eval-set (a synthetic set written by `stabbench synth`)")
        self.device = torch.device(_check_device(cfg.device))
        prepare_out_dir(self.out, resume=self.resume, overwrite=self.overwrite)
        self.checkpoint = self._read_checkpoint() if self.resume else None

        listing = list_labeled(cfg)
        if not listing.sources:
            raise DataError(cfg.root, f"the {cfg.dataset} dataset lists no labelled images")
        if cfg.input_size is None:
            first = listing.sources[0].load()
            cfg.input_size = tuple(int(v) for v in first.image.shape[:2])
        if self.checkpoint is not None:
            self._check_resumable(self.checkpoint)

        self.tm = load_training_model(cfg.model, len(listing.classes), weights=cfg.weights, seed=cfg.seed)
        if cfg.mean is not None:
            self.tm.mean = tuple(cfg.mean)
        if cfg.std is not None:
            self.tm.std = tuple(cfg.std)
        self.model = self.tm.module.to(self.device)
        self.model.train()

        from stabbench.training.modelio import check_output

        self.labeled = LabeledData(listing, cfg.input_size, progress=_stage(progress, "labelled images"))
        image, _ = self.labeled.get(0)
        check_output(self.model, self.to_input(image[None]), self.labeled.num_classes, self.labeled.classes)

        self.pairs = None
        self.flow_cache = None
        if cfg.uses_videos:
            from stabbench.flow import FlowCache, FlowParams, list_videos

            videos = list_videos(list(cfg.videos))  # DataError: missing path, not a video, empty folder
            self.flow_cache = FlowCache(cfg.flow_cache or (self.out / "flow-cache"))
            self.flow_params = FlowParams(preset=cfg.flow_preset)
            # lists the pairs: DataError for an unreadable video or one with fewer than 2 frames
            self.pairs = PairData(videos, cfg.input_size, self.flow_cache, self.flow_params, pairs_per_video=cfg.pairs_per_video)

        self.eval_set = None
        if cfg.eval_set:
            from stabbench.synth import open_set

            self.eval_set = open_set(Path(cfg.eval_set))
            if len(self.eval_set.classes) != self.labeled.num_classes:
                raise DataError(
                    cfg.eval_set,
                    f"the eval set has {len(self.eval_set.classes)} classes ({', '.join(self.eval_set.classes)}) "
                    f"but the labelled set {self.labeled.num_classes} ({', '.join(self.labeled.classes)})",
                )

        if self.pairs is not None:  # last: the slow part (flow of every pair, cached on disk)
            self.pairs.prepare(progress=_stage(progress, "video pairs (flow)"))
        self.optimizer = self._make_optimizer()
        self.order = DataOrder(len(self.labeled), cfg.batch_labeled, len(self.pairs) if self.pairs else 0,
                               cfg.batch_pairs if self.pairs else 0)
        self.total_steps = cfg.epochs * self.order.steps_per_epoch
        self.rng = np.random.default_rng(cfg.seed)
        random.seed(cfg.seed)
        self.elapsed = 0.0
        self.train_log = CsvLog(self.out / TRAIN_LOG, TRAIN_COLUMNS)
        self.eval_log = CsvLog(self.out / EVAL_LOG, EVAL_COLUMNS)
        self.last_eval: dict | None = None
        self.last_eval_step = -1
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.write_config(final=False)

    def _make_optimizer(self):
        import torch

        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ModelError(f"--model {cfg.model}: the model has no trainable parameters")
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # ----------------------------------------------------------------- tensors

    def to_input(self, frames: np.ndarray):
        """uint8 ``(B, H, W, 3)`` RGB -> float32 ``[B, 3, H, W]`` on the device, scaled like the export."""
        import torch

        tm = self.tm
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        if tm.channels == "bgr":
            x = x.flip(1)
        x = x * float(tm.scale)
        if any(tm.mean) or any(s != 1 for s in tm.std):
            mean = torch.tensor(tm.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
            std = torch.tensor(tm.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x.contiguous()

    def _flow_tensors(self, batch):
        import torch

        dev = self.device

        def flow(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(dev).permute(0, 3, 1, 2).contiguous()

        def mask(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

        return flow(batch.flow_fw), mask(batch.valid_fw), flow(batch.flow_bw), mask(batch.valid_bw)

    # ----------------------------------------------------------------- one step

    def step(self) -> dict:
        import torch

        from stabbench.losses import coherent_loss, segmentation_loss
        from stabbench.training.modelio import first_tensor

        cfg, order, rng = self.config, self.order, self.rng
        indices = order.labeled_indices(rng)
        images, labels = self.labeled.batch(indices, rng, cfg.augment)
        pair_batch = None
        if self.pairs is not None:
            pair_idx = order.pair_indices(rng)
            flips = [bool(rng.random() < 0.5) for _ in pair_idx] if cfg.augment else [False] * len(pair_idx)
            # the control run forwards the same pair frames (same BatchNorm batch), without flows
            pair_batch = self.pairs.batch(pair_idx, flips, with_flow=cfg.coherent)
        lr = lr_at(cfg, order.global_step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        x_l = self.to_input(images)
        y_l = torch.from_numpy(labels).to(self.device).long()
        n = x_l.shape[0]
        if pair_batch is not None:
            m = pair_batch.frames_t.shape[0]
            x = torch.cat([x_l, self.to_input(pair_batch.frames_t), self.to_input(pair_batch.frames_t1)])
            logits = first_tensor(self.model(x))
            logits_l, logits_t, logits_t1 = logits[:n], logits[n : n + m], logits[n + m :]
            seg = segmentation_loss(logits_l, y_l, kind=cfg.seg_loss, ignore_index=255)
            if cfg.coherent:
                terms = coherent_loss(seg, logits_t, logits_t1, *self._flow_tensors(pair_batch), width=cfg.width,
                                      beta=cfg.beta, lambda_bc=cfg.lambda_bc, lambda_gc=cfg.lambda_gc)
            else:  # control: same forward pass, supervised loss only
                zero = seg.detach() * 0
                terms = {"total": seg, "seg": seg, "bc": zero, "gc": zero}
        else:
            logits_l = first_tensor(self.model(x_l))
            seg = segmentation_loss(logits_l, y_l, kind=cfg.seg_loss, ignore_index=255)
            zero = seg.detach() * 0
            terms = {"total": seg, "seg": seg, "bc": zero, "gc": zero}
        total = terms["total"]
        if not bool(torch.isfinite(total.detach())):
            parts = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            raise ModelError(f"the loss is not finite at step {order.global_step + 1} ({parts}); lower --lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"lr": lr, **{k: float(terms[k].detach()) for k in ("total", "seg", "bc", "gc")}}

    # ----------------------------------------------------------------- loop

    def run(self, progress_bar=None) -> TrainResult:
        cfg, order = self.config, self.order
        stop_at = self.total_steps if cfg.max_steps is None else min(self.total_steps, cfg.max_steps)
        task = None
        if progress_bar is not None:
            task = progress_bar.add_task("train", total=self.total_steps, completed=order.global_step, losses="")
        last: dict = {}
        try:
            while order.global_step < stop_at:
                t0 = time.perf_counter()
                epoch = order.epoch
                last = self.step()
                epoch_done = order.advance()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                self.train_log.append({"step": order.global_step, "epoch": epoch + 1, "lr": _fmt(last["lr"]),
                                       **{k: _fmt(last[k]) for k in ("total", "seg", "bc", "gc")},
                                       "step_time_s": f"{dt:.4f}", "elapsed_s": f"{self.elapsed:.3f}"})
                if task is not None:
                    text = (f"ep {epoch + 1}/{cfg.epochs}  total {last['total']:.4f}  seg {last['seg']:.4f}  "
                            f"bc {last['bc']:.4f}  gc {last['gc']:.3g}")
                    progress_bar.update(task, completed=order.global_step, losses=text)
                if cfg.eval_every and order.global_step % cfg.eval_every == 0:
                    self.evaluate(progress_bar)
                if epoch_done or (cfg.checkpoint_every and order.global_step % cfg.checkpoint_every == 0):
                    self.save_checkpoint()
        except KeyboardInterrupt:
            print(f"stabbench: training interrupted after step {order.global_step}; the last checkpoint is in "
                  f"{self.out / CHECKPOINT}: continue with the same command plus --resume", file=sys.stderr)
            raise
        stopped_early = order.global_step < self.total_steps
        if self.eval_set is not None and self.last_eval_step != order.global_step:
            self.evaluate(progress_bar)
        self.save_checkpoint()  # the position (and the last evaluated step) at the end
        self.finish()
        return TrainResult(self.out, order.global_step, order.epoch, last, self.last_eval, stopped_early)

    # ----------------------------------------------------------------- evaluation

    def spec_dict(self) -> dict:
        tm = self.tm
        return {
            "input_size": list(self.config.input_size),
            "resize": "stretch",
            "scale": float(tm.scale),
            "mean": list(tm.mean),
            "std": list(tm.std),
            "channels": tm.channels,
            "layout": "nchw",
            "activation": "softmax",
            "num_classes": self.labeled.num_classes,
        }

    def evaluate(self, progress_bar=None) -> dict:
        """Stability of the current model (eval mode) on ``--eval-set``; appended to the eval log."""
        from stabbench.evaluation import evaluate
        from stabbench.metrics import summarize
        from stabbench.predictors.loaders import TorchPredictor
        from stabbench.predictors.protocol import PredictorSpec

        spec = PredictorSpec.from_dict(self.spec_dict(), source="training")
        t0 = time.perf_counter()
        task = None
        if progress_bar is not None:
            task = progress_bar.add_task("eval", total=len(self.eval_set), losses="stability on the eval set")
        try:
            predictor = TorchPredictor(self.model, spec, device=str(self.device))
            state = evaluate(predictor, self.eval_set, spec=spec, band_width=EVAL_BAND_WIDTH,
                             progress=None if task is None else (lambda d, t: progress_bar.update(task, completed=d)))
        finally:
            self.model.train()
            if task is not None:
                progress_bar.remove_task(task)
        overall = summarize(state.stability, state.confusion)
        row = {"step": self.order.global_step, "epoch": self.order.epoch if self.order.step_in_epoch == 0 else self.order.epoch + 1,
               "S_global": _fmt(overall["S_global"]), "S_boundary": _fmt(overall["S_boundary"]),
               "mIoU_syn": _fmt(overall["mIoU"]), "sequences": len(self.eval_set),
               "eval_time_s": f"{time.perf_counter() - t0:.3f}"}
        self.eval_log.append(row)
        self.last_eval = {k: (float(row[k]) if k in ("S_global", "S_boundary", "mIoU_syn") else row[k]) for k in row}
        self.last_eval_step = self.order.global_step
        return self.last_eval

    # ----------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> None:
        import torch

        rng_state = {
            "torch": torch.get_rng_state(),
            "numpy": json.dumps(self.rng.bit_generator.state),
            "python": json.dumps(random.getstate()),
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            rng_state["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.config.fingerprint(), sort_keys=True),
            "model": {k: v.detach().to("cpu") for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state,
            "position": self.order.state_dict(),
            "elapsed_s": self.elapsed,
            "last_eval_step": self.last_eval_step,
        }
        _atomic_torch_save(state, self.out / CHECKPOINT)

    def _read_checkpoint(self) -> dict:
        import torch

        path = self.out / CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise DataError(path, f"cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise DataError(path, "not a stabbench training checkpoint")
        if state.get("version") != CHECKPOINT_VERSION:
            raise DataError(path, f"checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}")
        return state

    def _check_resumable(self, state: dict) -> None:
        saved = json.loads(state["config"])
        current = self.config.fingerprint()
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if diff:
            shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff[:4])
            raise OutputConflictError(
                f"{self.out}: holds a run with other settings ({shown}); resume with the same settings, "
                "or start anew with --overwrite"
            )

    def _restore(self, state: dict) -> None:
        import torch

        try:
            self.model.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise DataError(self.out / CHECKPOINT, f"the checkpoint does not fit the model ({str(exc)[:300]})") from None
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.rng.bit_generator.state = json.loads(rng["numpy"])
        version, internal, gauss = json.loads(rng["python"])
        random.setstate((version, tuple(internal), gauss))
        self.order.load_state_dict(state["position"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.last_eval_step = int(state.get("last_eval_step", -1))
        self.train_log.truncate_after(self.order.global_step)
        self.eval_log.truncate_after(self.order.global_step)

    # ----------------------------------------------------------------- outputs

    def finish(self) -> None:
        from stabbench.predictors.protocol import SPEC_FILE_SUFFIX
        from stabbench.training.modelio import digest_state_dict, export_model, state_dict_cpu

        state = state_dict_cpu(self.model)
        _atomic_torch_save(state, self.out / STATE_FILE)
        image, _ = self.labeled.get(0)
        self.export_method = export_model(self.model, self.to_input(image[None]).cpu(), self.out / MODEL_FILE)
        _atomic_write_text(self.out / (Path(MODEL_FILE).stem + SPEC_FILE_SUFFIX), json.dumps(self.spec_dict(), indent=1) + "\n")
        self.state_digest = digest_state_dict(state)
        self.write_config(final=True)

    def write_config(self, final: bool) -> None:
        cfg = self.config
        record: dict[str, Any] = {
            "format": "stabbench-train-config",
            "format_version": 1,
            "mode": cfg.mode,
            "settings": cfg.to_dict(),
            "seeds": {"seed": cfg.seed, "torch": cfg.seed, "numpy": cfg.seed, "python": cfg.seed},
            "versions": _versions(),
            "device": str(self.device),
            "model": self.tm.info,
            "preprocess": self.spec_dict(),
            "labeled": {
                "dataset": cfg.dataset,
                "root": cfg.root,
                "options": dict(self.labeled.listing.options or cfg.dataset_options),
                "classes": list(self.labeled.classes),
                "images": len(self.labeled),
                "names_sha256": _names_digest([s.name for s in self.labeled.sources]),
                "sha256": self._labeled_checksum(),
            },
            "videos": None,
            "schedule": {"steps_per_epoch": self.order.steps_per_epoch, "total_steps": self.total_steps,
                         "batch_labeled": min(cfg.batch_labeled, len(self.labeled)),
                         "batch_pairs": self.order.batch_pairs and min(cfg.batch_pairs, len(self.pairs))},
        }
        if self.pairs is not None:
            described = self._video_description()
            record["videos"] = {
                "paths": list(cfg.videos),
                "count": len(described),
                "pairs": len(self.pairs),
                "flow": {**self.flow_params.to_dict(), "method": "opencv-dis", "cache": str(self.flow_cache.root),
                         "resolution": list(cfg.input_size)},
                "list": described,
            }
        if final:
            record["result"] = {
                "steps": self.order.global_step,
                "epochs_completed": self.order.epoch,
                "complete": self.order.global_step >= self.total_steps,
                "elapsed_s": round(self.elapsed, 3),
                "state_dict_sha256": self.state_digest,
                "export": self.export_method,
                "last_eval": self.last_eval,
                "flow_cache": None if self.flow_cache is None else {
                    k: v for k, v in self.flow_cache.stats().items() if not (isinstance(v, float) and math.isnan(v))
                },
            }
        _atomic_write_text(self.out / CONFIG_FILE, json.dumps(record, indent=1, default=str) + "\n")

    def _labeled_checksum(self) -> str:
        if not hasattr(self, "_labeled_sha"):
            self._labeled_sha = self.labeled.checksum()
        return self._labeled_sha

    def _video_description(self) -> list:
        if not hasattr(self, "_videos_desc"):
            self._videos_desc = self.pairs.describe()
        return self._videos_desc


def _names_digest(names: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _stage(progress, name: str):
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


# --------------------------------------------------------------------------- entry point


def run_training(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Set up and run a training run with rich progress bars on stderr (unless ``config.quiet``)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=120)
    columns = (TextColumn("{task.description:<5}"), BarColumn(bar_width=30), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"))
    trainer = Trainer(config, resume=resume, overwrite=overwrite)
    with Progress(*columns, console=console, disable=config.quiet) as bar:
        tasks: dict[str, Any] = {}

        def setup_progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task("prep", total=total, losses=name)
            bar.update(tasks[name], completed=done)

        trainer.setup(progress=setup_progress)
        for task in tasks.values():
            bar.remove_task(task)
        result = trainer.run(progress_bar=bar)
    return result
