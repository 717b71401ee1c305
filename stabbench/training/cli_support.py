"""Glue between ``stabbench finetune`` and :mod:`stabbench.training` (kept out of cli.py)."""

from __future__ import annotations

import re

from stabbench.errors import DataError, UsageError
from stabbench.training.config import TrainConfig


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"128x224"`` -> ``(128, 224)`` (H, W); ``None`` stays ``None``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise UsageError(f"--input-size must be HxW with positive integers (e.g. 128x224), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_triple(text: str | None, name: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{name} must be three numbers R,G,B, got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"--{name} must be three numbers R,G,B, got {text!r}")
    return tuple(values)  # type: ignore[return-value]


def build_train_config(dataset: str, root, dataset_opts: dict, **settings) -> TrainConfig:
    """The :class:`TrainConfig` of the CLI options (dataset options as ``stabbench synth`` maps them)."""
    from stabbench.datasets import DATASET_NAMES
    from stabbench.synth.cli_support import dataset_options

    if dataset not in DATASET_NAMES:
        raise DataError(None, f"unknown dataset {dataset!r}; choose from {', '.join(DATASET_NAMES)}")
    options = dataset_options(dataset, dataset_opts)
    if dataset == "cityscapes":
        options["split"] = dataset_opts.get("split") or "train"
        options["seed"] = settings.get("seed", 0)
    try:
        return TrainConfig(dataset=dataset, root=root, dataset_options=options, **settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def print_summary(result, config: TrainConfig) -> None:
    """A short summary on stdout."""
    from rich.console import Console

    out = Console(highlight=False, width=110)
    losses = result.final_losses
    state = "stopped at --max-steps" if result.stopped_early else "complete"
    out.print(f"{config.mode} training {state}: {result.steps} steps, {result.epochs_done} epochs -> {result.out}/")
    if losses:
        out.print("last step: " + "  ".join(f"{k} {losses[k]:.5g}" for k in ("total", "seg", "bc", "gc")))
    if result.last_eval:
        e = result.last_eval
        out.print(f"eval (step {e['step']}): S_global {e['S_global']:.2f}  S_boundary {e['S_boundary']:.2f}  mIoU_syn {e['mIoU_syn']:.2f}")
    out.print(f"evaluate it: stabbench eval --model {result.out}/model.pt --set SET")
