"""Drawing the flicker over frames: band shaded, predicted outline, flicker pixels red.

Pure NumPy/OpenCV on ``(H, W, 3)`` uint8 RGB frames and ``(H, W)`` masks; integer arithmetic
only, so the same inputs give the same bytes everywhere. Drawing order (later wins): band
shading, then the outline, then the flicker pixels, which are exactly :data:`FLICKER_RGB`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from stabbench.metrics import object_edges

FLICKER_RGB = (255, 0, 0)
OUTLINE_RGB = (0, 255, 255)
BAND_RGB = (255, 255, 255)
#: Weight (of 256) of :data:`BAND_RGB` in a band pixel.
BAND_ALPHA = 80


def _check(frame: np.ndarray, *masks: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    for mask in masks:
        if mask.shape != frame.shape[:2]:
            raise ValueError(f"masks must be {frame.shape[:2]} (the frame's H, W), got {mask.shape}")


def shade(frame: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], alpha: int) -> np.ndarray:
    """A copy of ``frame`` with ``mask`` pixels blended towards ``rgb``: ``(p (256 - a) + c a + 128) >> 8``
    per channel (a lookup table of that formula, applied where ``mask``)."""
    values = np.arange(256, dtype=np.uint16)[:, None]
    table = ((values * (256 - alpha) + np.asarray(rgb, np.uint16)[None, :] * alpha + 128) >> 8).astype(np.uint8)
    out = frame.copy()
    cv2.copyTo(cv2.LUT(frame, table.reshape(256, 1, 3)), np.ascontiguousarray(mask).view(np.uint8), out)
    return out


def predicted_outline(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: one-pixel outline of the predicted regions (the metric's edge rule applied
    to the prediction: a pixel with a 4-neighbour of a smaller label)."""
    return object_edges(np.asarray(labels))


def draw_overlay(frame: np.ndarray, labels: np.ndarray, flicker: np.ndarray, band: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``frame`` with ``band`` shaded, the outline of ``labels`` in
    :data:`OUTLINE_RGB` and the ``flicker`` pixels in :data:`FLICKER_RGB`.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB. labels: ``(H, W)`` integer class ids.
        flicker, band: ``(H, W)`` bool.
    """
    frame, flicker, band = np.asarray(frame), np.asarray(flicker, bool), np.asarray(band, bool)
    _check(frame, labels, flicker, band)
    out = shade(frame, band, BAND_RGB, BAND_ALPHA)
    out[predicted_outline(labels)] = OUTLINE_RGB
    out[flicker] = FLICKER_RGB
    return out


class ClipFrames(Sequence):
    """The frames of :func:`render_clip`, each drawn (:func:`draw_overlay`) when it is taken: a
    writer that takes one frame at a time holds one drawn frame, not the clip.

    Args: as :func:`render_clip`; ``flicker`` and ``band`` may be any sequences of ``(H, W)``
    bool (e.g. masks unpacked on access).
    """

    def __init__(self, frames, labels, flicker, band):
        if not len(frames) == len(labels) == len(flicker) == len(band):
            raise ValueError(f"frames, labels, flicker and band differ in length: {len(frames)}, {len(labels)}, "
                             f"{len(flicker)}, {len(band)}")
        self.parts = (frames, labels, flicker, band)

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, k: int) -> np.ndarray:
        if isinstance(k, slice):
            raise TypeError("ClipFrames takes one frame index, not a slice")
        if not -len(self) <= k < len(self):
            raise IndexError(f"frame {k} of a clip of {len(self)}")
        return draw_overlay(*(part[k] for part in self.parts))


def render_clip(frames: np.ndarray, labels: np.ndarray, flicker: np.ndarray, band: np.ndarray) -> list[np.ndarray]:
    """:func:`draw_overlay` of every frame (:class:`ClipFrames`, all drawn).

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB. labels: ``(T, H, W)`` class ids.
        flicker: ``(T, H, W)`` bool, the pixels to paint red (e.g. :class:`SequenceFlicker.flicker`
            or any inconsistency mask of the caller's). band: ``(T, H, W)`` bool.

    Returns:
        ``T`` frames ``(H, W, 3)`` uint8.
    """
    return list(ClipFrames(frames, labels, flicker, band))
