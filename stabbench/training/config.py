"""Settings of a training run (``stabbench finetune``), recorded in ``train_config.json``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stabbench.conventions import BAND_WIDTH, LIU_ALPHA, LIU_WEIGHT

SEG_LOSSES = ("ce", "lovasz", "ce+lovasz")
#: ``coherent``: the Coherent Loss (L_bc + L_gc); ``liu``: Liu et al.'s temporal loss (the peer,
#: :mod:`stabbench.losses.temporal`); ``none``: the control (same batches, supervised loss only).
TEMPORAL_LOSSES = ("coherent", "liu", "none")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("constant", "poly", "cosine")

#: Settings that may differ between a run and its ``--resume`` (they do not change the
#: trained weights: where outputs go, how often to checkpoint / evaluate, where to stop).
RESUMABLE_CHANGES = ("max_steps", "checkpoint_every", "eval_every", "eval_set", "flow_cache", "out", "quiet", "device")


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the paper's fine-tuning settings (method notes, 4).

    ``videos`` empty: supervised training on the labelled set only (``temporal_loss`` is then
    moot). ``temporal_loss="none"`` with videos: the control run (pairs still drawn);
    ``"liu"``: the peer temporal loss on the same flows, batches and schedule.
    ``input_size``: ``(H, W)`` training resolution; ``None`` = the model's fixed input size (an imported
    TFLite model), else the first labelled image's.
    """

    model: str
    out: str
    dataset: str = "shapes"
    root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    videos: tuple[str, ...] = ()
    weights: str | None = None
    temporal_loss: str = "coherent"
    epochs: int = 10
    max_steps: int | None = None
    batch_labeled: int = 12
    batch_pairs: int = 6
    width: int = BAND_WIDTH
    beta: float = 5e-2
    lambda_bc: float = 1.0
    lambda_gc: float = 5e-5
    lambda_liu: float = LIU_WEIGHT
    liu_alpha: float = LIU_ALPHA
    seg_loss: str = "ce"
    optimizer: str = "sgd"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "constant"
    seed: int = 0
    input_size: tuple[int, int] | None = None
    augment: bool = False
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    device: str = "cpu"
    pairs_per_video: int = 30
    flow_preset: str = "medium"
    flow_cache: str | None = None
    checkpoint_every: int = 0
    eval_every: int = 0
    eval_set: str | None = None
    quiet: bool = False

    def __post_init__(self):
        if self.seg_loss not in SEG_LOSSES:
            raise ValueError(f"seg_loss must be one of {', '.join(SEG_LOSSES)}; got {self.seg_loss!r}")
        if self.temporal_loss not in TEMPORAL_LOSSES:
            raise ValueError(f"temporal_loss must be one of {', '.join(TEMPORAL_LOSSES)}; got {self.temporal_loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        for name in ("epochs", "batch_labeled", "batch_pairs", "width", "pairs_per_video"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        self.videos = tuple(str(v) for v in self.videos)
        if self.input_size is not None:
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))

    @property
    def uses_videos(self) -> bool:
        return bool(self.videos)

    @property
    def mode(self) -> str:
        """``coherent`` (CL fine-tune), ``liu`` (the peer temporal loss), ``control`` (videos given,
        supervised loss only) or ``supervised`` (no videos: training on the labelled set alone)."""
        if not self.videos:
            return "supervised"
        return "control" if self.temporal_loss == "none" else self.temporal_loss

    @property
    def uses_flow(self) -> bool:
        """Whether a step's loss reads the flows (the control's does not)."""
        return self.temporal_loss != "none"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("videos", "input_size", "mean", "std"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The settings that must be equal for ``--resume`` to continue a run."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_CHANGES}


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of (0-based) ``step``: constant, poly (power 0.9) or cosine to 0."""
    import math

    if config.lr_schedule == "constant" or total_steps <= 0:
        return config.lr
    frac = min(max(step / total_steps, 0.0), 1.0)
    if config.lr_schedule == "poly":
        return config.lr * (1.0 - frac) ** 0.9
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
