"""What a run writes: its folder, the logs, the provenance record, the exported model.

Output folder::

    model.pt2              torch.export program (``stabbench eval --model OUT/model.pt2``), eval mode, CPU,
                           batch size dynamic
    model.stabbench.json   its pre/post-processing (input size, scale/mean/std, softmax, classes)
    model.onnx             the same network as ONNX (with ``--onnx``)
    state_dict.pt          the trained weights (``torch.load(weights_only=True)``; with the
                           architecture: ``--model arch:NAME --weights OUT/state_dict.pt``)
    train_config.json      every setting, resolved input size, model/data provenance and
                           checksums, versions, seeds, ranks (torchrun), steps, final state digest
    train_log.csv          one row per step: step, epoch, lr, total, seg, bc, gc, liu, times
    eval_log.csv           with --eval-set: step, epoch, S_global, S_boundary, mIoU_syn
    checkpoint.pt          the latest checkpoint (every --checkpoint-every steps, each epoch end)
    flow-cache/            the flow of every video pair (default --flow-cache)
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

from stabbench.errors import DataError, ModelError, OutputConflictError
from stabbench.fileio import (
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    csv_cell,
    sha256_bytes,
    temporary_name,
    versions,
)
from stabbench.predictors.spec import SPEC_FILE_SUFFIX
from stabbench.training.checkpoint import CHECKPOINT
from stabbench.training.run import TrainRun, TrainState

TRAIN_LOG = "train_log.csv"
EVAL_LOG = "eval_log.csv"
CONFIG_FILE = "train_config.json"
MODEL_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
STATE_FILE = "state_dict.pt"
SPEC_FILE = Path(MODEL_FILE).stem + SPEC_FILE_SUFFIX
OUTPUTS = (MODEL_FILE, SPEC_FILE, ONNX_FILE, STATE_FILE, CONFIG_FILE, TRAIN_LOG, EVAL_LOG, CHECKPOINT)
TRAIN_COLUMNS = ("step", "epoch", "lr", "total", "seg", "bc", "gc", "liu", "step_time_s", "elapsed_s")
EVAL_COLUMNS = ("step", "epoch", "S_global", "S_boundary", "mIoU_syn", "sequences", "eval_time_s")


def fmt(value: float) -> str:
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
        atomic_write_text(self.path, "\n".join(buf) + "\n")

    def append(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            if new:
                writer.writerow(self.columns)
            writer.writerow([csv_cell(row[c]) for c in self.columns])


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
        for path in (out / name, temporary_name(out / name)):
            if path.is_file():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------------- export


def state_dict_cpu(module) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def digest_state_dict(state: Mapping) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (bit-exact comparison)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _cpu_eval_copy(module):
    """A CPU copy of ``module`` in eval mode (a TorchScript module is copied through a buffer)."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
            torch.jit.save(module, buffer)
            buffer.seek(0)
            return torch.jit.load(buffer, map_location="cpu").eval()
    return copy.deepcopy(module).to("cpu").eval()


def _export(model, example):
    """``torch.export`` of ``model`` with a dynamic batch; a (legacy) TorchScript module goes
    through torch's TorchScript-to-ExportedProgram converter."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converter's notes on unused BatchNorm counters, TorchScript's deprecation
            return TS2EPConverter(model, (example,)).convert()
    return torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))


def export_program(module, example, path: Path) -> None:
    """Save ``module`` (a CPU copy in eval mode) as a ``torch.export`` program at ``path``, batch
    size dynamic; the saved file is reloaded and checked against the module's output on ``example``
    (``(B >= 2, 3, H, W)``)."""
    import torch

    from stabbench.predictors.output import first_tensor

    model = _cpu_eval_copy(module)
    example = example.to("cpu")
    try:
        with torch.no_grad():
            program = _export(model, example)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"torch.export cannot export the trained model ({type(exc).__name__}: {str(exc)[:300]})") from None
    atomic_write(path, lambda handle: torch.export.save(program, handle))
    reloaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        want, got = first_tensor(model(example)), first_tensor(reloaded(example))
    if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-4, atol=1e-4):
        raise ModelError(f"{path}: the exported model's output differs from the trained model's")


def export_onnx(module, example, path: Path) -> None:
    """Save ``module`` (a CPU copy in eval mode) as ONNX at ``path``, batch size dynamic."""
    import torch

    model = _cpu_eval_copy(module)
    tmp = temporary_name(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own deprecation notices
            torch.onnx.export(model, (example.to("cpu"),), str(tmp), input_names=["frames"], output_names=["logits"],
                              dynamic_axes={"frames": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        tmp.replace(path)
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot export the trained model to ONNX ({type(exc).__name__}: {str(exc)[:300]})") from None


def write_model(run: TrainRun, *, onnx: bool = False) -> dict:
    """Write the state dict, ``model.pt2`` (+ ``model.onnx``) and the spec file; returns what was written."""
    state = state_dict_cpu(run.model)
    atomic_torch_save(state, run.out / STATE_FILE)
    image, _ = run.labeled.get(0)
    example = run.to_input(image[None].repeat(2, axis=0)).cpu()  # batch 2: batch size stays dynamic
    export_program(run.model, example, run.out / MODEL_FILE)
    if onnx:
        export_onnx(run.model, example, run.out / ONNX_FILE)
    atomic_write_text(run.out / SPEC_FILE, json.dumps(run.spec.to_dict(), indent=1) + "\n")
    return {"state_dict_sha256": digest_state_dict(state), "export": "torch.export" + (" + onnx" if onnx else "")}


# ----------------------------------------------------------------------------- provenance


def _names_digest(names: list[str]) -> str:
    return sha256_bytes("\n".join(names).encode())


def provenance(run: TrainRun, state: TrainState, final: dict | None = None, flow_stats: list[dict] | None = None) -> dict:
    """The ``train_config.json`` record: settings, resolved input, model and data with checksums,
    versions, seeds, schedule, the ranks (torchrun), and (``final``) the result.

    ``flow_stats``: the flow cache counters of every rank (rank order); default this process's."""
    cfg = run.config
    record: dict[str, Any] = {
        "format": "stabbench-train-config",
        "format_version": 2,
        "mode": cfg.mode,
        "settings": cfg.to_dict(),
        "input_size": list(run.input_size),
        "seeds": {"seed": cfg.seed, "torch": cfg.seed, "numpy": cfg.seed, "python": cfg.seed},
        "versions": versions(torch=True),
        "device": str(run.device),
        "ranks": _ranks_record(run),
        "model": run.model_info,
        "preprocess": run.spec.to_dict(),
        "labeled": {
            "dataset": cfg.dataset,
            "root": cfg.root,
            "options": dict(run.labeled.listing.options or cfg.dataset_options),
            "classes": list(run.labeled.classes),
            "images": len(run.labeled),
            "names_sha256": _names_digest([s.name for s in run.labeled.sources]),
            "sha256": run.labeled_sha256,
        },
        "videos": None,
        "schedule": {"steps_per_epoch": state.order.steps_per_epoch, "total_steps": run.total_steps,
                     "batch_labeled": min(cfg.batch_labeled, len(run.labeled)),
                     "batch_pairs": state.order.batch_pairs and min(cfg.batch_pairs, len(run.pairs))},
    }
    if run.pairs is not None:
        described = run.video_description
        record["videos"] = {
            "paths": list(cfg.videos),
            "count": len(described),
            "pairs": len(run.pairs),
            "flow": {**run.flow_params.to_dict(), "method": "opencv-dis", "cache": str(run.flow_cache.root),
                     "resolution": list(run.input_size)},
            "list": described,
        }
    if final is not None:
        record["result"] = {
            "steps": state.order.global_step,
            "epochs_completed": state.order.epoch,
            "complete": state.order.global_step >= run.total_steps,
            "elapsed_s": round(state.elapsed, 3),
            "last_eval": state.last_eval,
            "flow_cache": None if run.flow_cache is None else _flow_record(flow_stats or [run.flow_cache.stats()]),
            **final,
        }
    return record


def _ranks_record(run: TrainRun) -> dict:
    """One process, or the torchrun layout: world size, backend, how BatchNorm and the loss are shared."""
    if run.ranks is None:
        return {"world_size": 1}
    return {"world_size": run.ranks.world, "backend": "nccl" if run.device.type == "cuda" else "gloo",
            "split": "contiguous slice of every global batch per rank", "batchnorm": "global-batch statistics",
            "loss": "global batch (all-gathered logits)"}


def _flow_record(per_rank: list[dict]) -> dict:
    """Flow cache counters summed over the ranks (hits, misses = pairs computed, corrupt, hit rate), and
    per rank when there are several."""
    totals = {k: sum(int(stats[k]) for stats in per_rank) for k in ("hits", "misses", "corrupt")}
    looked_up = totals["hits"] + totals["misses"]
    if looked_up:
        totals["hit_rate"] = totals["hits"] / looked_up
    if len(per_rank) > 1:
        totals["per_rank"] = [{k: int(stats[k]) for k in ("hits", "misses", "corrupt")} for stats in per_rank]
    return totals


def write_provenance(run: TrainRun, state: TrainState, final: dict | None = None,
                     flow_stats: list[dict] | None = None) -> None:
    atomic_write_json(run.out / CONFIG_FILE, provenance(run, state, final, flow_stats), sort_keys=False, default=str)
