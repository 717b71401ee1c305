"""Output normalisation: whatever a predictor returns becomes labels of the frame size.

Convention
----------
- ``predict(frames)`` returns per-pixel class scores ``(B, C, h, w)`` (float, ``C >= 2``;
  probabilities after the spec's activation), a single foreground channel ``(B, 1, h, w)``
  (probability, thresholded at ``spec.threshold``), or integer labels ``(B, h, w)``.
  ``(h, w)`` may differ from the frame size ``(H, W)``: scores are resized bilinearly and
  then arg-maxed, labels are resized with nearest neighbour (pixel centres aligned).
- Class ids are ``0 .. C-1``; labels are returned as ``uint8`` when ``C <= 255``, else
  ``int32``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from stabbench.errors import ModelError


def first_tensor(out: Any) -> Any:
    """The tensor of a model's output: itself, a tuple/list's first element, a dict's
    ``"out"`` (torchvision) or its only value."""
    if isinstance(out, Mapping):
        if "out" in out:
            return first_tensor(out["out"])
        if len(out) == 1:
            return first_tensor(next(iter(out.values())))
        raise ModelError(f"model returned a dict with keys {sorted(out)}; expected a tensor or a dict with 'out'")
    if isinstance(out, (tuple, list)) and out:
        return first_tensor(out[0])
    return out


def finish_output(out: np.ndarray, activation: str, layout: str) -> np.ndarray:
    """Raw model output -> the contract: 4-D outputs to NCHW, ``activation`` on float scores."""
    if out.ndim == 4 and layout == "nhwc":
        out = out.transpose(0, 3, 1, 2)
    if out.ndim == 4 and np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float32, copy=False)
        if activation == "softmax":
            with np.errstate(invalid="ignore", over="ignore"):
                e = np.exp(out - out.max(axis=1, keepdims=True))
                out = e / e.sum(axis=1, keepdims=True)
        elif activation == "sigmoid":
            with np.errstate(over="ignore"):
                out = 1.0 / (1.0 + np.exp(-out))
    return out


def _to_numpy(out: Any) -> Any:
    if hasattr(out, "detach") and hasattr(out, "cpu"):  # a torch tensor, without importing torch
        out = out.detach().cpu()
        if str(out.dtype) in ("torch.bfloat16", "torch.float16"):
            out = out.float()
        return out.numpy()
    return out


@dataclass(frozen=True)
class NonFinite:
    """NaN / Inf values found in a model output (``frames``: ``(first, last)`` within the sequence)."""

    nan: int
    inf: int
    values: int
    frames: tuple[int, int] | None = None

    def __str__(self) -> str:
        where = "" if self.frames is None else (
            f"frame {self.frames[0]}: " if self.frames[0] == self.frames[1] else f"frames {self.frames[0]}..{self.frames[1]}: "
        )
        return f"{where}model output has {self.nan} NaN and {self.inf} Inf of {self.values} values (NaN treated as 0, Inf as +-1e30)"


def check_finite(out: np.ndarray) -> NonFinite | None:
    """``None`` if every value is finite (or ``out`` is not float), else the NaN and Inf counts."""
    if not np.issubdtype(out.dtype, np.floating):
        return None
    finite = np.isfinite(out)
    if finite.all():
        return None
    nan = int(np.isnan(out).sum())
    return NonFinite(nan, int(out.size - finite.sum()) - nan, int(out.size))


def _expected(batch: int, height: int, width: int, num_classes: int | None) -> str:
    c = "C" if num_classes is None else (f"{num_classes} (or 1)" if num_classes == 2 else str(num_classes))
    return (
        f"({batch}, {c}, h, w) float scores or ({batch}, h, w) integer labels "
        f"(for {batch} frames of {height}x{width}; h, w any size)"
    )


def _label_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 255 else np.int32


def _resize_scores(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) float32 -> (C, H, W), bilinear with half-pixel centres (torch, align_corners=False)."""
    if scores.shape[1:] == (height, width):
        return scores
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(scores))[None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()


def _resize_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B, h, w) -> (B, H, W); output pixel centre ``i + 0.5`` samples input ``floor((i + 0.5) h / H)``."""
    h, w = labels.shape[1:]
    if (h, w) == (height, width):
        return labels
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return labels[:, rows[:, None], cols[None, :]]


def normalize_output(
    out: Any,
    batch: int,
    height: int,
    width: int,
    num_classes: int | None = None,
    threshold: float = 0.5,
) -> tuple[np.ndarray, NonFinite | None]:
    """Turn a predictor's output into labels ``(batch, height, width)``; returns ``(labels, non_finite)``.

    Accepted (NumPy arrays or torch tensors): scores ``(B, C, h, w)`` with ``C >= 2`` (resized
    bilinearly, then arg-max), one channel ``(B, 1, h, w)`` (resized, then ``> threshold``
    gives class 1), integer or bool labels ``(B, h, w)`` (nearest). Anything else, a batch
    that is not ``batch``, ``C`` that is not ``num_classes`` or labels outside
    ``[0, num_classes)`` is a :class:`ModelError` naming the shape expected and received.
    NaN / Inf scores are counted in ``non_finite`` (NaN counts as 0, Inf as +-1e30); the
    caller decides whether that is an error.
    """
    out = _to_numpy(out)
    if not isinstance(out, np.ndarray):
        raise ModelError(
            f"model output must be an array, got {type(out).__name__}; expected {_expected(batch, height, width, num_classes)}"
        )
    received = f"received shape {tuple(out.shape)} dtype {out.dtype}"
    is_float = np.issubdtype(out.dtype, np.floating)
    is_int = np.issubdtype(out.dtype, np.integer) or out.dtype == np.bool_
    if not (
        out.shape[:1] == (batch,)
        and ((out.ndim == 4 and is_float and out.shape[1] >= 1) or (out.ndim == 3 and is_int))
        and min(out.shape[1:], default=0) >= 1
    ):
        raise ModelError(f"model output has the wrong shape: expected {_expected(batch, height, width, num_classes)}; {received}")
    if out.ndim == 3:
        # Integer types whose values all fit in int64 are range-checked and resized as they
        # are (no int64 copy: 8x the memory of uint8 labels); uint64 goes through int64 as
        # before, so that values above 2**63 still read as negative and are rejected.
        labels = out if out.dtype.kind == "b" or np.can_cast(out.dtype, np.int64) else out.astype(np.int64)
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            raise ModelError(
                f"model output labels must lie in [0, {num_classes if num_classes is not None else 'C'}); "
                f"received values {low}..{high} ({received})"
            )
        dtype = _label_dtype(num_classes if num_classes is not None else high + 1)
        # astype always copies: the result never aliases a buffer the predictor may reuse
        return _resize_nearest(labels, height, width).astype(dtype), None
    channels = out.shape[1]
    if num_classes is not None and channels not in (num_classes, 1 if num_classes == 2 else num_classes):
        raise ModelError(
            f"model output has {channels} channels but num_classes is {num_classes}: expected "
            f"{_expected(batch, height, width, num_classes)}; {received}"
        )
    non_finite = check_finite(out)
    scores = out.astype(np.float32, copy=False)
    if non_finite is not None:
        scores = np.nan_to_num(scores, nan=0.0, posinf=1e30, neginf=-1e30)
    labels = np.empty((batch, height, width), dtype=_label_dtype(max(channels, 2)))
    for b in range(batch):  # one frame at a time: (C, H, W) float32 at full size can be large
        resized = _resize_scores(scores[b], height, width)
        labels[b] = (resized[0] > threshold) if channels == 1 else resized.argmax(axis=0)
    return labels, non_finite


def map_foreground(labels: np.ndarray, foreground: int | Iterable[int] | None) -> np.ndarray:
    """Binary labels: 1 where ``labels`` is a foreground class, 0 elsewhere (``None``: unchanged)."""
    if foreground is None:
        return labels
    ids = [foreground] if isinstance(foreground, int) else list(foreground)
    return np.isin(labels, ids).astype(np.uint8)


__all__ = ["NonFinite", "check_finite", "finish_output", "first_tensor", "map_foreground", "normalize_output"]
