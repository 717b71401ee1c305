"""Building a run: everything a training run is made of, checked up front, as one immutable object.

:func:`build_run` resolves the model (one resolver: :func:`~stabbench.predictors.load_trainable`),
lists and loads the labelled images, lists the video pairs and computes (or finds) their
flow, opens the eval set, and returns a :class:`TrainRun`. What changes while training (the
optimizer, the generator, the data position, the logs) is a :class:`TrainState`, built from
the run by :func:`new_state`. Nothing here mutates the caller's :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stabbench.errors import DataError, ModelError, UsageError
from stabbench.training.config import TrainConfig
from stabbench.training.data import DataOrder, LabeledData, PairData

#: ``progress(stage, done, total)``: how a run reports its long steps (the CLI draws bars).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainRun:
    """The fixed parts of a run.

    ``input_size``: the resolved training resolution ``(H, W)``; ``spec``: the model's
    :class:`~stabbench.predictors.ModelSpec` at that size (the input side of every batch, and
    the spec file written beside the exported model); ``pairs``/``flow_cache``/``flow_params``:
    ``None`` without videos; ``eval_set``: ``None`` without ``--eval-set``. Under ``torchrun``
    (:func:`~stabbench.training.distributed.distributed_network`): ``ranks`` and ``network``, the
    DistributedDataParallel wrapper of ``model`` that training steps forward through; else
    ``None`` (steps forward ``model`` itself).
    """

    config: TrainConfig
    out: Path
    device: Any
    model: Any
    model_info: dict
    spec: Any
    input_size: tuple[int, int]
    labeled: LabeledData
    pairs: PairData | None = None
    flow_cache: Any = None
    flow_params: Any = None
    eval_set: Any = None
    labeled_sha256: str = ""
    video_description: list = field(default_factory=list)
    ranks: Any = None
    network: Any = None

    @property
    def trained(self) -> Any:
        """The module a training step forwards (the DDP wrapper under torchrun, else ``model``)."""
        return self.model if self.network is None else self.network

    @property
    def steps_per_epoch(self) -> int:
        return new_order(self).steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    def to_input(self, frames: np.ndarray):
        """uint8 ``(B, H, W, 3)`` RGB -> the model's float32 ``[B, 3, H, W]`` on the device (the spec's input side)."""
        import torch

        from stabbench.predictors import prepare_frames

        return prepare_frames(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device), self.spec)


@dataclass
class TrainState:
    """What changes during a run: optimizer, the run's generator, data position, time, evaluations."""

    optimizer: Any
    rng: np.random.Generator
    order: DataOrder
    elapsed: float = 0.0
    last_eval: dict | None = None
    last_eval_step: int = -1


def list_labeled(config: TrainConfig):
    from stabbench.datasets import list_sources

    try:
        return list_sources(config.dataset, config.root, **config.dataset_options)
    except ValueError as exc:
        raise DataError(None, str(exc)) from None


def _stage(progress: Progress | None, name: str):
    return None if progress is None else (lambda done, total: progress(name, done, total))


def build_run(config: TrainConfig, out: Path, *, progress: Progress | None = None,
              share: tuple[int, int] = (0, 1)) -> TrainRun:
    """Resolve and check everything ``config`` names (the slow part, flows, last).

    ``share=(rank, world)`` (torchrun): check that every batch divides by ``world`` (UsageError),
    and of the pairs compute (or find) the flow of ``rank, rank + world, ...`` only (each rank
    its share, into the shared cache)."""
    import torch

    from stabbench.predictors import load_trainable
    from stabbench.predictors.formats import check_device

    if config.eval_every and not config.eval_set:
        raise UsageError("--eval-every needs --eval-set (a synthetic set written by `stabbench synth`)")
    device = torch.device(check_device(config.device))
    listing = list_labeled(config)
    if not listing.sources:
        raise DataError(config.root, f"the {config.dataset} dataset lists no labelled images")
    overrides = {k: v for k, v in (("mean", config.mean), ("std", config.std)) if v is not None}
    trainable = load_trainable(config.model, len(listing.classes), weights=config.weights, seed=config.seed,
                               overrides=overrides)
    # default resolution: the model's own fixed input size (an imported TFLite model), else the first image's
    input_size = (config.input_size or trainable.spec.input_size
                  or tuple(int(v) for v in listing.sources[0].load().image.shape[:2]))
    spec = dataclasses.replace(trainable.spec, input_size=tuple(input_size), resize="stretch", layout="nchw",
                               activation="softmax", num_classes=len(listing.classes))
    model = trainable.module.to(device)
    model.train()
    labeled = LabeledData(listing, input_size, progress=_stage(progress, "labelled images"))
    pairs = flow_cache = flow_params = None
    if config.uses_videos:
        from stabbench.flow import FlowCache, FlowParams, list_videos

        videos = list_videos(list(config.videos))  # DataError: missing path, not a video, empty folder
        flow_cache = FlowCache(config.flow_cache or (out / "flow-cache"))
        flow_params = FlowParams(preset=config.flow_preset)
        pairs = PairData(videos, input_size, flow_cache, flow_params, pairs_per_video=config.pairs_per_video)
    if share[1] > 1:
        from stabbench.training.distributed import check_batches

        check_batches(len(labeled), config.batch_labeled, len(pairs) if pairs else 0, config.batch_pairs, share[1])
    eval_set = _open_eval_set(config, labeled)
    run = TrainRun(config, out, device, model, trainable.info, spec, tuple(input_size), labeled, pairs, flow_cache,
                   flow_params, eval_set, labeled.checksum())
    check_output(run)
    if pairs is None:
        return run
    pairs.prepare(progress=_stage(progress, "video pairs (flow)"), share=share)  # last: the slow part (flow of every pair)
    return dataclasses.replace(run, video_description=pairs.describe())


def _open_eval_set(config: TrainConfig, labeled: LabeledData):
    if not config.eval_set:
        return None
    from stabbench.synth import open_set

    eval_set = open_set(Path(config.eval_set))
    if len(eval_set.classes) != labeled.num_classes:
        raise DataError(
            config.eval_set,
            f"the eval set has {len(eval_set.classes)} classes ({', '.join(eval_set.classes)}) "
            f"but the labelled set {labeled.num_classes} ({', '.join(labeled.classes)})",
        )
    return eval_set


def check_output(run: TrainRun) -> None:
    """Run the first labelled image in eval mode (no state changes) and check the output is
    logits ``[1, C, H, W]`` at the input size; ModelError otherwise."""
    import torch

    from stabbench.predictors.output import first_tensor

    image, _ = run.labeled.get(0)
    x = run.to_input(image[None])
    module, num_classes = run.model, run.labeled.num_classes
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = first_tensor(module(x))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"the model failed on a {tuple(x.shape)} input batch ({type(exc).__name__}: {str(exc)[:300]})") from None
    finally:
        module.train(was_training)
    expected = (x.shape[0], num_classes, x.shape[2], x.shape[3])
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != expected or not out.is_floating_point():
        names = f" ({', '.join(run.labeled.classes)})" if run.labeled.classes else ""
        got = f"shape {shape} {out.dtype}" if shape is not None else f"a {type(out).__name__}"
        raise ModelError(
            f"the model's output does not fit the labelled set: for input {tuple(x.shape)} it returned {got}; "
            f"training needs float logits {expected}: {num_classes} classes{names} at the input resolution"
        )


def new_order(run: TrainRun) -> DataOrder:
    cfg = run.config
    num_pairs = len(run.pairs) if run.pairs is not None else 0
    return DataOrder(len(run.labeled), cfg.batch_labeled, num_pairs, cfg.batch_pairs if num_pairs else 0)


def make_optimizer(run: TrainRun):
    import torch

    cfg = run.config
    params = [p for p in run.model.parameters() if p.requires_grad]
    if not params:
        raise ModelError(f"--model {cfg.model}: the model has no trainable parameters")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def new_state(run: TrainRun) -> TrainState:
    """A fresh state: optimizer, the run's generator (and Python's ``random``) seeded, position 0."""
    random.seed(run.config.seed)
    return TrainState(make_optimizer(run), np.random.default_rng(run.config.seed), new_order(run))
