"""Correspondences of real video: estimated flow, the forward-backward check, the motion-boundary criterion.

Real video has no correspondence ground truth; DIS flow (:mod:`stabbench.flow.dis`) in both
directions stands in for it, and a pixel ``x`` of frame ``t`` is **tracked** when

1. it passes the forward-backward check and its target ``x + f(x)`` is inside frame ``t+1``
   (``PairFlow.valid_fw``, :mod:`stabbench.flow.consistency`; Sundaram et al. 2010);
2. its nearest target pixel ``x'`` (:func:`~stabbench.metrics.functional.target_indices`) is
   not on a **motion boundary** of the backward flow (Lai et al., "Learning Blind Video
   Temporal Consistency", ECCV 2018, after Ruder et al. 2016): flow is least reliable where
   it changes fast, i.e. along the edges of moving objects, exactly where S_boundary looks.

Convention: :mod:`perturbations.geometry` -- ``(x, y)`` order, integer coordinates are pixel
centres, a flow is ``(H, W, 2)`` float32 ``(dx, dy)``; the content at ``x`` of frame ``t`` is
at ``x + f(x)`` in frame ``t+1`` (forward ``f``); the backward flow ``b`` maps frame ``t+1``
to frame ``t`` and its motion-boundary mask lies on frame ``t+1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from stabbench.flow.dis import PairFlow
from stabbench.metrics.functional import PairTracks, target_indices


@dataclass(frozen=True)
class MotionBoundary:
    """Lai et al. 2018's motion-boundary criterion: ``|grad b|^2 > alpha * |b|^2 + beta``.

    ``|grad b|^2 = du_x^2 + dv_x^2 + du_y^2 + dv_y^2``, the squared forward differences of
    both flow components to the right neighbour (``du``) and the neighbour below (``dv``),
    0 in the last column / row; ``|b|^2 = b_x^2 + b_y^2``. Their values: ``alpha = 0.01``,
    ``beta = 0.002`` (px^2).
    """

    alpha: float = 0.01
    beta: float = 0.002

    def to_dict(self) -> dict:
        return asdict(self)


def motion_boundary(flow: np.ndarray, criterion: MotionBoundary = MotionBoundary()) -> np.ndarray:
    """``(H, W)`` bool: the pixels of ``flow``'s source frame on a motion boundary (see :class:`MotionBoundary`).

    Args:
        flow: ``(H, W, 2)`` float32 ``(dx, dy)``.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {flow.shape}")
    grad = np.zeros(flow.shape[:2], np.float32)
    magnitude = np.zeros(flow.shape[:2], np.float32)
    for component in cv2.split(np.ascontiguousarray(flow)):  # OpenCV's SIMD loops: about 2x NumPy's here
        cv2.accumulateSquare(cv2.subtract(component[:, :-1], component[:, 1:]), grad[:, :-1])  # writes into the view
        cv2.accumulateSquare(cv2.subtract(component[:-1], component[1:]), grad[:-1])
        cv2.accumulateSquare(component, magnitude)
    magnitude *= np.float32(criterion.alpha)
    magnitude += np.float32(criterion.beta)
    return grad > magnitude


@dataclass(frozen=True)
class TrackStats:
    """Pixel counts of one pair: all, forward-backward valid, tracked (after the criterion)."""

    pixels: int
    fb_valid: int
    tracked: int


def real_tracks(pair: PairFlow, criterion: MotionBoundary | None = MotionBoundary()) -> tuple[PairTracks, TrackStats]:
    """The tracked pixels of frame ``t`` of a pair (module docstring) and their counts.

    ``criterion=None`` leaves the motion-boundary criterion out (forward-backward check and
    in-frame mask only).
    """
    tracks = target_indices(pair.flow_fw, pair.valid_fw)
    fb_valid = tracks.num_tracked
    if criterion is not None:
        boundary_t1 = motion_boundary(pair.flow_bw, criterion).view(np.uint8)
        at_target = cv2.remap(boundary_t1, tracks.coords, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        tracks = PairTracks(tracks.shape, tracks.coords, tracks.tracked & (at_target == 0))
    height, width = tracks.shape
    return tracks, TrackStats(height * width, fb_valid, tracks.num_tracked)


__all__ = ["MotionBoundary", "TrackStats", "motion_boundary", "real_tracks"]
