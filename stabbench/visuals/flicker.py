"""The flicker of one sequence, exactly as the stability metric sees it.

Convention (that of :mod:`stabbench.metrics.functional`): arrays ``[row y, column x]``,
coordinates ``(x, y)``, integer coordinates are pixel centres; the pair ``(t, t+1)`` has the
forward flow of frame ``t``, and pixel ``x`` of frame ``t`` corresponds to ``x'``, the pixel of
frame ``t+1`` nearest to ``x + f(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from stabbench.conventions import BAND_WIDTH
from stabbench.metrics import boundary_band, pair_geometry
from stabbench.metrics.functional import PairTracks, consistent_pixels


def pair_flicker(pred_t: np.ndarray, pred_t1: np.ndarray, tracks: PairTracks) -> tuple[np.ndarray, np.ndarray]:
    """The flicker of one pair ``(t, t+1)``, as the metric counts it.

    Returns:
        ``inconsistent`` ``(H, W)`` bool in frame ``t``'s pixels: tracked ``x`` with
        ``pred_t[x] != pred_t1[x']`` (what S_global counts as not consistent), and ``flicker``
        ``(H, W)`` bool in frame ``t+1``'s pixels: the targets ``x'`` of those pixels (two
        inconsistent pixels with one target paint one pixel).
    """
    inconsistent = tracks.tracked & ~consistent_pixels(pred_t, pred_t1, tracks)
    flicker = np.zeros(tracks.shape, bool)
    flicker.ravel()[tracks.target[inconsistent.ravel()]] = True
    return inconsistent, flicker


@dataclass(frozen=True)
class SequenceFlicker:
    """What the metric saw in one sequence of ``T`` frames.

    Attributes:
        inconsistent: ``(T-1, H, W)`` bool, in frame ``t``'s pixels: tracked ``x`` with
            ``pred_t[x] != pred_{t+1}[x']`` (the pixels S_global counts as not consistent).
        tracked: ``(T-1, H, W)`` bool, in frame ``t``'s pixels: the metric's tracked pixels.
        flicker: ``(T, H, W)`` bool, in frame ``k``'s pixels: the targets ``x'`` of the
            inconsistent pixels of pair ``(k-1, k)``, i.e. the pixels whose label differs from
            their track's label in the previous frame; frame 0 has none.
        band: ``(T, H, W)`` bool, the boundary band of each frame's ground truth (the band of
            the pair that starts at that frame).
    """

    inconsistent: np.ndarray
    tracked: np.ndarray
    flicker: np.ndarray
    band: np.ndarray


def sequence_flicker(labels: np.ndarray, masks: np.ndarray, pairs: Iterable[tuple[int, np.ndarray, np.ndarray]],
                     band_width: int = BAND_WIDTH) -> SequenceFlicker:
    """:class:`SequenceFlicker` of predicted ``labels`` ``(T, H, W)`` against ground truth ``masks``
    ``(T, H, W)`` uint8, with ``pairs`` the ``(t, flow (H, W, 2), valid (H, W))`` of
    :meth:`~stabbench.synth.SyntheticSequence.pairs`; the tracked-pixel rule and the band are the
    metric's (:func:`~stabbench.metrics.pair_geometry`, ``band_width`` the result's)."""
    labels, masks = np.asarray(labels), np.asarray(masks)
    if labels.shape != masks.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and masks {masks.shape} must both be (T, H, W)")
    count, height, width = labels.shape
    inconsistent = np.zeros((max(count - 1, 0), height, width), bool)
    tracked = np.zeros_like(inconsistent)
    flicker = np.zeros(labels.shape, bool)
    band = np.zeros(labels.shape, bool)
    for t, flow, valid in pairs:
        geometry = pair_geometry(flow, valid, masks[t], band_width, gt_t1=masks[t + 1])
        tracked[t], band[t] = geometry.tracks.tracked, geometry.band
        inconsistent[t], flicker[t + 1] = pair_flicker(labels[t], labels[t + 1], geometry.tracks)
    if count:
        band[-1] = boundary_band(masks[-1], band_width)
    return SequenceFlicker(inconsistent, tracked, flicker, band)
