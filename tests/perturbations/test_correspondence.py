"""perturbations.correspondence: the ground-truth flow and validity of a pair of frames,
checked by what they guarantee (the nearest target pixel is usable) and by chaining them
along a sequence against the frames' own affines."""

from __future__ import annotations

import numpy as np
import pytest

import perturbations as P
from perturbations.geometry import apply_affine, coverage, pair_affine

H, W = 48, 64
GEOMETRIC = ("translation", "rotation", "scaling")


def bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float64 bilinear sampling of ``field`` ``(H, W, C)`` at ``(x, y)`` inside the pixel hull."""
    h, w = field.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    f = field.astype(np.float64)
    return (
        f[y0, x0] * (1 - ax) * (1 - ay)
        + f[y0, x0 + 1] * ax * (1 - ay)
        + f[y0 + 1, x0] * (1 - ax) * ay
        + f[y0 + 1, x0 + 1] * ax * ay
    )


def grid(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))


def test_static_trajectory_correspondence() -> None:
    traj = P.make_trajectory("gaussian_noise", 3, np.random.default_rng(0), H, W, 4)
    for t in range(3):
        flow, valid = P.pair_correspondence(traj, t)
        assert flow.shape == (H, W, 2) and flow.dtype == np.float32
        assert valid.shape == (H, W) and valid.dtype == bool
        np.testing.assert_array_equal(flow, 0.0)
        assert valid.sum() == (H - 2) * (W - 2) and valid[1:-1, 1:-1].all()


def test_pair_correspondence_rejects_bad_index() -> None:
    traj = P.make_trajectory("translation", 1, np.random.default_rng(0), H, W, 3)
    for t in (-1, 2, 5):
        with pytest.raises(ValueError, match="pair index"):
            P.pair_correspondence(traj, t)


@pytest.mark.parametrize("name", P.PERTURBATION_NAMES)
@pytest.mark.parametrize("severity", [1, 6])
def test_validity_margin_guarantee(name: str, severity: int) -> None:
    """Valid x: x is covered and un-occluded in frame t, and the pixel *nearest* to x + f(x)
    is inside frame t+1, covered by source content and un-occluded there."""
    h, w = 48, 64
    for seed in range(3):
        traj = P.make_trajectory(name, severity, np.random.default_rng(seed), h, w, 11)
        for t in range(traj.num_frames - 1):
            flow, valid = P.pair_correspondence(traj, t)
            assert valid.any()
            cov_t, cov_t1 = coverage(traj.affines[t], h, w), coverage(traj.affines[t + 1], h, w)
            occ_t = traj.occluder(t).raster(h, w) if traj.occluder(t) else np.zeros((h, w), bool)
            occ_t1 = traj.occluder(t + 1).raster(h, w) if traj.occluder(t + 1) else np.zeros((h, w), bool)
            assert (cov_t & ~occ_t)[valid].all()
            rows, cols = np.nonzero(valid)
            tx = np.rint(cols + flow[rows, cols, 0].astype(np.float64)).astype(int)
            ty = np.rint(rows + flow[rows, cols, 1].astype(np.float64)).astype(int)
            assert (tx >= 0).all() and (tx < w).all() and (ty >= 0).all() and (ty < h).all()
            assert cov_t1[ty, tx].all()
            assert not occ_t1[ty, tx].any()


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("severity", [2, 6])
def test_chained_dense_flows_match_direct_mapping(name: str, severity: int) -> None:
    """x + f_t(x) + f_{t+1}(x + f_t(x)) (bilinear) = A_{t+2} A_t^{-1} x on valid pixels, and
    following the flows from frame 0 to frame k lands on A_k p for every source pixel p that
    stays tracked."""
    h, w = 48, 64
    traj = P.make_trajectory(name, severity, np.random.default_rng(9), h, w, 11)
    flows = [P.pair_correspondence(traj, t) for t in range(traj.num_frames - 1)]
    x, y = grid(h, w)
    for t in range(traj.num_frames - 2):
        (f0, v0), (f1, _) = flows[t], flows[t + 1]
        x1, y1 = x + f0[..., 0], y + f0[..., 1]
        second = bilinear(f1, np.where(v0, x1, 0.0), np.where(v0, y1, 0.0))
        x2, y2 = x1 + second[..., 0], y1 + second[..., 1]
        ex, ey = apply_affine(pair_affine(traj.affines[t], traj.affines[t + 2]), h, w)
        err = np.hypot(x2 - ex, y2 - ey)[v0]
        assert v0.sum() > 0.5 * h * w
        assert err.max() < 1e-3, (t, err.max())

    # follow the flows of all pairs from frame 0
    px, py = x.copy(), y.copy()
    alive = np.ones((h, w), bool)
    for k in range(1, traj.num_frames):
        flow, valid = flows[k - 1]
        qx, qy = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
        # still tracked: the point is a valid pixel's neighbourhood (valid at its nearest pixel)
        alive &= valid[np.rint(qy).astype(int), np.rint(qx).astype(int)]
        alive &= (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
        step = bilinear(flow, qx, qy)
        px, py = px + step[..., 0], py + step[..., 1]
        ex, ey = apply_affine(traj.affines[k], h, w)
        err = np.hypot(px - ex, py - ey)[alive]
        assert alive.sum() > 0.3 * h * w
        assert err.max() < 1e-3, (k, err.max())
