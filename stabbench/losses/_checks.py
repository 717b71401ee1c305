"""Input checks shared by the losses: each raises ``ValueError`` showing what was received."""

from __future__ import annotations

import math

import torch


def check_4d(name: str, x, channels: int | None = None) -> torch.Tensor:
    """``x`` as a floating ``[B, C, H, W]`` tensor (``C == channels`` when given)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels ([B, {channels}, H, W]), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    return x


def check_same_bhw(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """``x`` must share batch and spatial size (dims 0, -2, -1) and device with ``ref``."""
    if x.shape[0] != ref.shape[0] or x.shape[-2:] != ref.shape[-2:]:
        raise ValueError(
            f"{name} must match {ref_name} in batch and spatial size "
            f"(B={ref.shape[0]}, H, W={tuple(ref.shape[-2:])}), got {tuple(x.shape)} vs {tuple(ref.shape)}"
        )
    if x.device != ref.device:
        raise ValueError(f"{name} is on {x.device} but {ref_name} is on {ref.device}")


def check_mask(name: str, mask, ref_name: str, ref: torch.Tensor) -> torch.Tensor:
    """A ``[B, H, W]`` (or ``[B, 1, H, W]``) bool / integer 0-1 mask -> ``[B, H, W]`` bool."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    b, h, w = ref.shape[0], ref.shape[-2], ref.shape[-1]
    if tuple(mask.shape) != (b, h, w):
        raise ValueError(f"{name} must have shape [B, H, W] = {(b, h, w)} (or [B, 1, H, W]), got {tuple(mask.shape)}")
    if mask.device != ref.device:
        raise ValueError(f"{name} is on {mask.device} but {ref_name} is on {ref.device}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        raise ValueError(f"{name} must be a bool mask, got dtype {mask.dtype}")
    return mask != 0


def check_labels(name: str, labels) -> torch.Tensor:
    """``labels`` as an integer ``[B, H, W]`` tensor."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 3:
        raise ValueError(f"{name} must have shape [B, H, W], got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    return labels


def check_width(width) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1 or width % 2 == 0:
        raise ValueError(f"band width must be an odd positive integer (a band centred on a pixel line), got {width!r}")
    return int(width)


def check_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)
