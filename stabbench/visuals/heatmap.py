"""The source-space flicker heatmap: where on the source image the prediction flickers.

Convention (that of :mod:`perturbations.geometry`): coordinates ``(x, y)``, integer
coordinates are pixel centres; frame ``t`` is the source under the ``(2, 3)`` affine ``A_t``
(source -> frame), so the frame pixel ``x`` shows the source point ``A_t^{-1} x``.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Colour bar strip and label margin (px) to the right of the heatmap.
BAR_WIDTH = 20
BAR_MARGIN = 90
#: Grey level (of 256) the source image is dimmed to under the heatmap.
DIM = 128


def to_source(mask: np.ndarray, affine: np.ndarray, source_shape: tuple[int, int]) -> np.ndarray:
    """``(Hs, Ws)`` float32: a frame's ``(H, W)`` float32 mask (0/1) carried back to the source grid.

    Source pixel ``u`` takes the bilinear interpolation of the mask at ``A u``, the frame point
    it was moved to (``cv2.warpAffine`` with ``WARP_INVERSE_MAP``; outside the frame: 0). So
    every frame pixel whose source point ``A^{-1} x`` lies within one pixel of ``u`` adds to
    ``u`` with its bilinear weight: the transpose of a bilinear splat of the pixels at
    ``A^{-1} x`` (equal to it for a translation; otherwise up to the local area scale of
    ``A``, which cancels in :func:`source_flicker_rate`'s ratio).
    """
    height, width = source_shape
    return cv2.warpAffine(mask, np.asarray(affine, np.float64), (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def source_flicker_rate(inconsistent: np.ndarray, tracked: np.ndarray, affines: np.ndarray,
                        source_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per source pixel: the fraction of its tracked observations that were inconsistent.

    The tracked pixels of frame ``t`` (of pair ``(t, t+1)``) and the inconsistent ones among
    them are mapped to the source through ``A_t^{-1}`` (:func:`to_source`, bilinear) and
    summed over the pairs; the rate is their ratio: the flicker of that source point,
    normalised by the number of pairs that saw it.

    Args:
        inconsistent, tracked: ``(P, H, W)`` bool in frame ``t``'s pixels, ``t = 0 .. P-1``
            (:class:`~stabbench.visuals.SequenceFlicker`).
        affines: ``(>= P, 2, 3)`` source -> frame affines (the trajectory's); ``affines[t]``
            is used for pair ``t``.
        source_shape: ``(Hs, Ws)``.

    Returns:
        ``rate`` ``(Hs, Ws)`` float64 in ``[0, 1]``, NaN where no pair saw the pixel, and
        ``seen`` ``(Hs, Ws)`` float64, the number of pairs that saw it (bilinear weights).
    """
    inconsistent, tracked = np.asarray(inconsistent, bool), np.asarray(tracked, bool)
    if inconsistent.shape != tracked.shape or inconsistent.ndim != 3:
        raise ValueError(f"inconsistent {inconsistent.shape} and tracked {tracked.shape} must both be (P, H, W)")
    if len(affines) < len(tracked):
        raise ValueError(f"{len(tracked)} pairs need {len(tracked)} affines, got {len(affines)}")
    seen, flicker = np.zeros(source_shape, np.float32), np.zeros(source_shape, np.float32)  # sums of <= P weights
    for t in range(len(tracked)):
        seen += to_source(tracked[t].astype(np.float32), affines[t], source_shape)
        flicker += to_source((inconsistent[t] & tracked[t]).astype(np.float32), affines[t], source_shape)
    seen, flicker = seen.astype(np.float64), flicker.astype(np.float64)
    rate = np.full(source_shape, np.nan)
    np.divide(flicker, seen, out=rate, where=seen > 1e-6)
    return np.clip(rate, 0.0, 1.0, out=rate), seen


def colour_scale(rate: np.ndarray) -> float:
    """The top of the colour bar: the largest rate (1 when there is no flicker at all)."""
    top = float(np.nanmax(rate)) if np.isfinite(rate).any() else 0.0
    return top if top > 0 else 1.0


def _colours(levels: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB of the inferno colour map at uint8 ``levels``."""
    return cv2.applyColorMap(np.ascontiguousarray(levels, np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]


def draw_heatmap(source: np.ndarray, rate: np.ndarray, vmax: float | None = None, title: str = "") -> np.ndarray:
    """The rate over the dimmed grey source image, with a colour bar on the right.

    Pixels with a rate above 0 are painted with the inferno colour of ``rate / vmax``; pixels
    seen without flicker show the dimmed source; pixels never seen are black.

    Args:
        source: ``(Hs, Ws, 3)`` uint8 RGB source image. rate: ``(Hs, Ws)`` float, NaN = unseen.
        vmax: the top of the colour bar (default :func:`colour_scale`).

    Returns:
        ``(Hs, Ws + BAR_MARGIN, 3)`` uint8 RGB.
    """
    if source.shape[:2] != rate.shape or source.ndim != 3:
        raise ValueError(f"source {source.shape} and rate {rate.shape} must share (H, W)")
    vmax = colour_scale(rate) if vmax is None else float(vmax)
    grey = (cv2.cvtColor(source, cv2.COLOR_RGB2GRAY).astype(np.uint16) * DIM >> 8).astype(np.uint8)
    out = np.repeat(grey[..., None], 3, axis=2)
    out[np.isnan(rate)] = 0
    hot = np.nan_to_num(rate) > 0
    levels = np.clip(np.rint(np.nan_to_num(rate[hot]) / vmax * 255), 0, 255).astype(np.uint8)
    out[hot] = _colours(levels[:, None])[:, 0]
    return np.concatenate([out, colour_bar(source.shape[0], vmax, title)], axis=1)


def colour_bar(height: int, vmax: float, title: str = "") -> np.ndarray:
    """``(height, BAR_MARGIN, 3)`` uint8: the colour scale from 0 (bottom) to ``vmax`` (top), labelled in percent."""
    panel = np.full((height, BAR_MARGIN, 3), 255, np.uint8)
    top, bottom = 18, max(height - 10, 20)
    levels = np.linspace(255, 0, bottom - top).round().astype(np.uint8)
    panel[top:bottom, 6:6 + BAR_WIDTH] = _colours(levels[:, None])
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.35
    for fraction in (1.0, 0.5, 0.0):
        y = int(round(bottom - 1 - fraction * (bottom - top - 1)))
        cv2.putText(panel, f"{100 * vmax * fraction:.1f}%", (8 + BAR_WIDTH, y + 4), font, scale, (0, 0, 0), 1, cv2.LINE_8)
    if title:
        cv2.putText(panel, title[:14], (2, 12), font, scale, (0, 0, 0), 1, cv2.LINE_8)
    return panel
