"""The motion-boundary criterion (stabbench.realvideo.tracks) against a plain NumPy loop, and
the tracked pixels of a pair by hand."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.flow.dis import PairFlow
from stabbench.realvideo.tracks import MotionBoundary, motion_boundary, real_tracks


def motion_boundary_loops(flow: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Lai et al. 2018, written pixel by pixel in float64: forward differences, 0 at the last column/row."""
    height, width = flow.shape[:2]
    out = np.zeros((height, width), bool)
    for y in range(height):
        for x in range(width):
            grad = 0.0
            for c in range(2):
                du = float(flow[y, x, c]) - float(flow[y, x + 1, c]) if x + 1 < width else 0.0
                dv = float(flow[y, x, c]) - float(flow[y + 1, x, c]) if y + 1 < height else 0.0
                grad += du * du + dv * dv
            mag = float(flow[y, x, 0]) ** 2 + float(flow[y, x, 1]) ** 2
            out[y, x] = grad > alpha * mag + beta
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("criterion", [MotionBoundary(), MotionBoundary(alpha=0.05, beta=0.5)])
def test_motion_boundary_matches_the_loop_reference(seed: int, criterion: MotionBoundary) -> None:
    rng = np.random.default_rng(seed)
    flow = np.repeat(np.repeat(rng.normal(0, 3, (4, 5, 2)), 3, axis=0), 3, axis=1).astype(np.float32)  # piecewise constant
    flow += rng.normal(0, 0.02, flow.shape).astype(np.float32)  # small noise: values near the threshold
    got = motion_boundary(flow, criterion)
    want = motion_boundary_loops(flow, criterion.alpha, criterion.beta)
    # float32 vs float64 may disagree only where the two sides are within rounding of each other
    assert np.count_nonzero(got != want) <= 1
    assert 0 < np.count_nonzero(want) < want.size


def test_motion_boundary_of_a_step_by_hand() -> None:
    flow = np.zeros((3, 4, 2), np.float32)
    flow[:, 2:, 0] = 2.0  # columns 2, 3 move 2 px right: a step between columns 1 and 2
    # column 1: |grad|^2 = (0 - 2)^2 = 4 > 0.01 * 0 + 0.002; column 2: grad 0, |b|^2 = 4: 0 > 0.042 is false
    want = np.zeros((3, 4), bool)
    want[:, 1] = True
    np.testing.assert_array_equal(motion_boundary(flow), want)
    assert not motion_boundary(np.full((3, 4, 2), 5.0, np.float32)).any()  # a uniform motion has no boundary


def test_real_tracks_by_hand() -> None:
    """Frame t moves 1 px right; the backward flow has a step, so targets on its boundary are dropped."""
    height, width = 3, 5
    fw = np.zeros((height, width, 2), np.float32)
    fw[..., 0] = 1.0
    bw = np.zeros((height, width, 2), np.float32)
    bw[..., 0] = -1.0
    bw[:, 3:, 0] = -3.0  # step between columns 2 and 3 of frame t+1: column 2 is on the boundary
    valid = np.ones((height, width), bool)
    valid[0, 0] = False  # fails the forward-backward check
    valid[:, 4] = False  # target out of frame
    tracks, stats = real_tracks(PairFlow(fw, valid, bw, np.ones_like(valid)))
    want = valid.copy()
    want[:, 1] = False  # x = 1 lands on x' = 2, a motion boundary of the backward flow
    np.testing.assert_array_equal(tracks.tracked, want)
    assert (stats.pixels, stats.fb_valid, stats.tracked) == (15, 11, 8)
    untouched, stats = real_tracks(PairFlow(fw, valid, bw, valid), criterion=None)
    np.testing.assert_array_equal(untouched.tracked, valid)
    assert stats.tracked == stats.fb_valid == 11
