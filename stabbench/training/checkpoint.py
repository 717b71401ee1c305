"""Checkpoints and resume.

The checkpoint holds the model, the optimizer, the RNG states (torch, the run's NumPy
generator, Python's ``random``) and the data position (epoch, step, the epoch's permutation,
the pair stream), so a resumed run performs exactly the steps the uninterrupted one would
(bit-identical weights on the CPU with the same torch build and thread count).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_torch_save
from stabbench.training.config import TrainConfig
from stabbench.training.run import TrainRun, TrainState

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "stabbench-train-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(run: TrainRun, state: TrainState) -> None:
    import torch

    rng_state = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(state.rng.bit_generator.state),
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available() and run.device.type == "cuda":
        rng_state["cuda"] = torch.cuda.get_rng_state_all()
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": json.dumps(run.config.fingerprint(), sort_keys=True),
        "model": {k: v.detach().to("cpu") for k, v in run.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "rng": rng_state,
        "position": state.order.state_dict(),
        "elapsed_s": state.elapsed,
        "last_eval_step": state.last_eval_step,
    }
    atomic_torch_save(checkpoint, run.out / CHECKPOINT)


def read_checkpoint(out: Path) -> dict:
    import torch

    path = Path(out) / CHECKPOINT
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(path, f"cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DataError(path, "not a stabbench training checkpoint")
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise DataError(path, f"checkpoint version {checkpoint.get('version')} is not {CHECKPOINT_VERSION}")
    return checkpoint


def check_resumable(checkpoint: dict, config: TrainConfig, out: Path) -> None:
    """OutputConflictError when the checkpoint was made with settings that change the weights."""
    saved = json.loads(checkpoint["config"])
    current = config.fingerprint()
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff[:4])
        raise OutputConflictError(
            f"{out}: holds a run with other settings ({shown}); resume with the same settings, "
            "or start anew with --overwrite"
        )


def restore(run: TrainRun, state: TrainState, checkpoint: dict) -> None:
    """Put the model, the optimizer, every RNG and the data position where the checkpoint left them."""
    import torch

    try:
        run.model.load_state_dict(checkpoint["model"], strict=True)
        state.optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise DataError(run.out / CHECKPOINT, f"the checkpoint does not fit the model ({str(exc)[:300]})") from None
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and run.device.type == "cuda":
        torch.cuda.set_rng_state_all(rng["cuda"])
    state.rng.bit_generator.state = json.loads(rng["numpy"])
    version, internal, gauss = json.loads(rng["python"])
    random.setstate((version, tuple(internal), gauss))
    state.order.load_state_dict(checkpoint["position"])
    state.elapsed = float(checkpoint.get("elapsed_s", 0.0))
    state.last_eval_step = int(checkpoint.get("last_eval_step", -1))
