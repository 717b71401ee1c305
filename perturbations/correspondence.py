"""Dense ground-truth correspondence of a successive frame pair, from a trajectory."""

from __future__ import annotations

import numpy as np

from perturbations.geometry import VALIDITY_MARGIN, affine_flow, pair_affine, pair_validity
from perturbations.trajectory import Trajectory


def pair_correspondence(
    trajectory: Trajectory, t: int, margin: float = VALIDITY_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """Flow and validity of the pair ``(t, t+1)``.

    Convention: see :mod:`perturbations.geometry`; the content at pixel ``x`` of frame
    ``t`` is at ``x + flow[y, x]`` in frame ``t+1``.

    Returns:
        flow: ``(H, W, 2)`` float32 (dx, dy).
        valid: ``(H, W)`` bool, True where ``x`` is tracked (inside both frames, covered by
        source content, un-occluded in both frames, with a ``margin`` px safety ring).
    """
    if not 0 <= t < trajectory.num_frames - 1:
        raise ValueError(f"pair index t must be in [0, {trajectory.num_frames - 2}], got {t}")
    h, w = trajectory.height, trajectory.width
    a_t, a_t1 = trajectory.affines[t], trajectory.affines[t + 1]
    flow = affine_flow(pair_affine(a_t, a_t1), h, w)
    valid = pair_validity(a_t, a_t1, trajectory.occluder(t), trajectory.occluder(t + 1), h, w, margin)
    return flow, valid
