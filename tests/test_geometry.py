"""perturbations.geometry: affine algebra, coverage, occluders, validity and dense flow.

Every check is against an independent reference: hand-computed cases, per-pixel Python
loops, or invariants (round trips, fixed points, chaining).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import perturbations as P
from perturbations.geometry import (
    VALIDITY_MARGIN,
    Occluder,
    about_centre,
    affine_flow,
    apply_affine,
    compose,
    coverage,
    inside,
    invert,
    pair_affine,
    pair_validity,
    power,
    to_homogeneous,
)

W, H = 64, 48
GEOMETRIC = ("translation", "rotation", "scaling")


# ----------------------------------------------------------------------------- helpers


def random_affine(rng: np.random.Generator, strength: float = 0.1, shift: float = 5.0) -> np.ndarray:
    """A well-conditioned random (2, 3) affine near the identity."""
    out = np.eye(2, 3)
    out[:, :2] += rng.uniform(-strength, strength, (2, 2))
    out[:, 2] = rng.uniform(-shift, shift, 2)
    return out


def map_point(affine: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Plain-Python ``A @ [x, y, 1]``."""
    return (
        affine[0][0] * x + affine[0][1] * y + affine[0][2],
        affine[1][0] * x + affine[1][1] * y + affine[1][2],
    )


def inverse_point(affine: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Solve ``A p = (x, y)`` for ``p`` by Cramer's rule (no shared code with ``invert``)."""
    a, b, c = affine[0]
    d, e, f = affine[1]
    det = a * e - b * d
    u, v = x - c, y - f
    return (e * u - b * v) / det, (a * v - d * u) / det


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


# ----------------------------------------------------------------------------- affine algebra


def test_compose_hand_computed() -> None:
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]])
    scale = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    # compose(second, first): first scale, then shift: p -> 2p + (3, -2)
    np.testing.assert_array_equal(compose(shift, scale), [[2.0, 0.0, 3.0], [0.0, 2.0, -2.0]])
    # first shift, then scale: p -> 2(p + (3, -2)) = 2p + (6, -4)
    np.testing.assert_array_equal(compose(scale, shift), [[2.0, 0.0, 6.0], [0.0, 2.0, -4.0]])
    np.testing.assert_array_equal(to_homogeneous(shift)[2], [0.0, 0.0, 1.0])


def test_compose_matches_pointwise_application() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = random_affine(rng), random_affine(rng)
        x, y = rng.uniform(-10, 80, 2)
        expected = map_point(a, *map_point(b, x, y))
        np.testing.assert_allclose(map_point(compose(a, b), x, y), expected, atol=1e-12)


def test_invert_round_trip() -> None:
    rng = np.random.default_rng(1)
    ident = np.eye(2, 3)
    for _ in range(20):
        a = random_affine(rng, strength=0.3, shift=20.0)
        inv = invert(a)
        assert inv.shape == (2, 3)
        np.testing.assert_allclose(compose(a, inv), ident, atol=1e-12)
        np.testing.assert_allclose(compose(inv, a), ident, atol=1e-12)
        x, y = rng.uniform(0, 60, 2)
        np.testing.assert_allclose(map_point(inv, x, y), inverse_point(a, x, y), atol=1e-10)


def test_power_round_trips() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        step = random_affine(rng, strength=0.02, shift=1.0)
        np.testing.assert_array_equal(power(step, 0), np.eye(2, 3))
        np.testing.assert_allclose(power(step, 1), step, atol=0)
        acc = np.eye(2, 3)
        for k in range(1, 11):
            acc = compose(step, acc)
            np.testing.assert_allclose(power(step, k), acc, atol=1e-10)
        # step^7 then step^-7 (= power of the inverse) is the identity
        np.testing.assert_allclose(compose(power(invert(step), 7), power(step, 7)), np.eye(2, 3), atol=1e-10)
        np.testing.assert_allclose(compose(power(step, 3), power(step, 4)), power(step, 7), atol=1e-10)


@pytest.mark.parametrize("size", [(64, 48), (65, 49), (160, 120), (854, 480)])
def test_about_centre_keeps_centre_fixed(size: tuple[int, int]) -> None:
    width, height = size
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    theta = math.radians(17.0)
    for linear in (
        np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]),
        np.diag([1.3, 0.7]),
        np.array([[1.0, 0.4], [0.0, 1.0]]),
    ):
        a = about_centre(linear, width, height)
        np.testing.assert_allclose(map_point(a, *centre), centre, atol=1e-12)
        # and it acts as ``linear`` on offsets from the centre
        x, y = 3.0, 41.0
        expected = np.array(centre) + linear @ (np.array([x, y]) - centre)
        np.testing.assert_allclose(map_point(a, x, y), expected, atol=1e-12)


def test_about_centre_hand_computed() -> None:
    # 90 degree rotation about the centre (1.5, 1.0) of a 4x3 image: (0, 0) -> (2.5, -0.5)
    a = about_centre(np.array([[0.0, -1.0], [1.0, 0.0]]), 4, 3)
    np.testing.assert_allclose(map_point(a, 0.0, 0.0), (2.5, -0.5), atol=1e-12)


# ----------------------------------------------------------------------------- flow


def test_affine_flow_matches_pixel_loop() -> None:
    rng = np.random.default_rng(3)
    h, w = 9, 13
    for _ in range(5):
        a = random_affine(rng, strength=0.2, shift=4.0)
        flow = affine_flow(a, h, w)
        assert flow.shape == (h, w, 2) and flow.dtype == np.float32
        ref = np.empty((h, w, 2))
        for row in range(h):
            for col in range(w):
                tx, ty = map_point(a, float(col), float(row))
                ref[row, col] = (tx - col, ty - row)
        np.testing.assert_allclose(flow, ref, atol=1e-5)


def test_affine_flow_hand_computed() -> None:
    shift = np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -1.25]])
    flow = affine_flow(shift, 4, 5)
    np.testing.assert_array_equal(flow[..., 0], 2.5)
    np.testing.assert_array_equal(flow[..., 1], -1.25)
    np.testing.assert_array_equal(affine_flow(np.eye(2, 3), 4, 5), 0.0)
    # zoom x2 about the origin: f(x, y) = (x, y)
    flow = affine_flow(np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), 4, 5)
    assert tuple(flow[3, 4]) == (4.0, 3.0)


def test_apply_affine_matches_pixel_loop() -> None:
    a = random_affine(np.random.default_rng(4), strength=0.3, shift=7.0)
    x, y = apply_affine(a, 5, 7)
    for row in range(5):
        for col in range(7):
            assert (x[row, col], y[row, col]) == pytest.approx(map_point(a, col, row), abs=1e-12)


def test_pair_affine_maps_frame_t_to_frame_t1() -> None:
    rng = np.random.default_rng(5)
    a_t, a_t1 = random_affine(rng), random_affine(rng)
    m = pair_affine(a_t, a_t1)
    for _ in range(10):
        sx, sy = rng.uniform(0, 60, 2)  # a source point
        np.testing.assert_allclose(map_point(m, *map_point(a_t, sx, sy)), map_point(a_t1, sx, sy), atol=1e-10)


# ----------------------------------------------------------------------------- coverage


def brute_coverage(affine: np.ndarray, h: int, w: int, margin: float = 0.0) -> np.ndarray:
    out = np.zeros((h, w), bool)
    for row in range(h):
        for col in range(w):
            sx, sy = inverse_point(affine, float(col), float(row))
            out[row, col] = margin <= sx <= w - 1 - margin and margin <= sy <= h - 1 - margin
    return out


@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_coverage_matches_brute_force(margin: float) -> None:
    rng = np.random.default_rng(6)
    h, w = 24, 32
    for _ in range(6):
        a = random_affine(rng, strength=0.15, shift=6.0)
        got = coverage(a, h, w, margin)
        assert got.dtype == bool and got.shape == (h, w)
        ref = brute_coverage(a, h, w, margin)
        # points exactly on the boundary may differ by rounding: allow none here (random affines)
        np.testing.assert_array_equal(got, ref)
        assert 0 < got.sum() < h * w


def test_coverage_hand_computed() -> None:
    h, w = 6, 8
    assert coverage(np.eye(2, 3), h, w).all()
    shift = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])  # content moves right 2, up 1
    cov = coverage(shift, h, w)
    expected = np.zeros((h, w), bool)
    expected[: h - 1, 2:] = True
    np.testing.assert_array_equal(cov, expected)
    # identity with a margin: the 1-px ring is excluded
    ring = coverage(np.eye(2, 3), h, w, margin=1.0)
    expected = np.zeros((h, w), bool)
    expected[1:-1, 1:-1] = True
    np.testing.assert_array_equal(ring, expected)


# ----------------------------------------------------------------------------- occluders


OCCLUDERS = [
    Occluder(30.3, 20.7, 9.2, 5.1, (1, 2, 3)),  # inside
    Occluder(30.0, 20.0, 3.0, 2.0, (0, 0, 0)),  # integer centre and axes: points exactly on the rim
    Occluder(2.4, 3.1, 8.0, 6.5, (0, 0, 0)),  # over the top-left corner
    Occluder(W - 1.5, H - 0.2, 7.3, 9.9, (0, 0, 0)),  # over the bottom-right corner
    Occluder(-3.0, 24.0, 5.0, 4.0, (0, 0, 0)),  # centre left of the image, partly inside
    Occluder(W + 2.0, 10.0, 4.5, 3.0, (0, 0, 0)),  # centre right of the image, partly inside
    Occluder(-20.0, -20.0, 5.0, 5.0, (0, 0, 0)),  # entirely outside
    Occluder(W + 30.0, H + 30.0, 5.0, 5.0, (0, 0, 0)),  # entirely outside, beyond the far corner
    Occluder(31.5, 23.5, 100.0, 80.0, (0, 0, 0)),  # covers everything
    Occluder(10.0, 10.0, 0.6, 0.6, (0, 0, 0)),  # a single pixel
]


@pytest.mark.parametrize("occ", OCCLUDERS)
def test_raster_matches_contains_on_full_grid(occ: Occluder) -> None:
    x, y = grid()
    expected = occ.contains(x, y)
    got = occ.raster(H, W)
    assert got.dtype == bool and got.shape == (H, W)
    np.testing.assert_array_equal(got, expected)


def test_raster_area_and_rim() -> None:
    occ = Occluder(30.0, 20.0, 3.0, 2.0, (0, 0, 0))
    r = occ.raster(H, W)
    # pixels on the rim (33, 20), (27, 20), (30, 22), (30, 18) are inside, one further is not
    assert r[20, 33] and r[20, 27] and r[22, 30] and r[18, 30]
    assert not r[20, 34] and not r[23, 30]
    # count of lattice points in the ellipse x^2/9 + y^2/4 <= 1: rows dy=0:7, dy=+-1:5+5, dy=+-2:1+1
    assert int(r.sum()) == 19
    big = Occluder(320.3, 240.1, 60.0, 40.0, (0, 0, 0)).raster(480, 640)
    assert big.sum() == pytest.approx(math.pi * 60.0 * 40.0, rel=0.01)


def test_contains_margin_grows_axes() -> None:
    occ = Occluder(0.0, 0.0, 4.0, 2.0, (0, 0, 0))
    assert not occ.contains(np.array(4.5), np.array(0.0))
    assert occ.contains(np.array(4.5), np.array(0.0), margin=1.0)
    assert occ.contains(np.array(0.0), np.array(3.0), margin=1.0)
    assert not occ.contains(np.array(0.0), np.array(3.01), margin=1.0)


def test_occluder_dict_round_trip() -> None:
    occ = Occluder(1.25, 2.5, 3.0, 4.75, (10, 20, 30))
    data = occ.to_dict()
    assert data == {"cx": 1.25, "cy": 2.5, "ax": 3.0, "ay": 4.75, "color": [10, 20, 30]}
    assert Occluder.from_dict(data) == occ


# ----------------------------------------------------------------------------- validity


def test_validity_margin_is_one_pixel() -> None:
    assert VALIDITY_MARGIN == 1.0 and P.VALIDITY_MARGIN == VALIDITY_MARGIN


def test_pair_validity_identity_is_everything_but_the_margin_ring() -> None:
    ident = np.eye(2, 3)
    valid = pair_validity(ident, ident, None, None, H, W)
    expected = np.zeros((H, W), bool)
    expected[1:-1, 1:-1] = True  # the source must be inside by VALIDITY_MARGIN = 1 px
    np.testing.assert_array_equal(valid, expected)
    assert pair_validity(ident, ident, None, None, H, W, margin=0.0).all()
    expected2 = np.zeros((H, W), bool)
    expected2[2:-2, 2:-2] = True
    np.testing.assert_array_equal(pair_validity(ident, ident, None, None, H, W, margin=2.0), expected2)


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


def brute_validity(a_t, a_t1, occ_t, occ_t1, h, w, margin=VALIDITY_MARGIN) -> np.ndarray:
    """The rule of docs/protocol.md, one pixel at a time."""
    out = np.zeros((h, w), bool)
    m = compose(a_t1, invert(a_t))

    def occluded(occ, px, py):
        if occ is None:
            return False
        return ((px - occ.cx) / (occ.ax + margin)) ** 2 + ((py - occ.cy) / (occ.ay + margin)) ** 2 <= 1.0

    for row in range(h):
        for col in range(w):
            sx, sy = inverse_point(a_t, float(col), float(row))
            ok = margin <= sx <= w - 1 - margin and margin <= sy <= h - 1 - margin
            tx, ty = map_point(m, float(col), float(row))
            ok = ok and 0 <= tx <= w - 1 and 0 <= ty <= h - 1
            ok = ok and not occluded(occ_t, col, row) and not occluded(occ_t1, tx, ty)
            out[row, col] = ok
    return out


def test_pair_validity_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    h, w = 24, 32
    for i in range(6):
        a_t, a_t1 = random_affine(rng, 0.1, 4.0), random_affine(rng, 0.1, 4.0)
        occ_t = Occluder(*rng.uniform(0, 30, 2), *rng.uniform(2, 6, 2), (0, 0, 0)) if i % 2 else None
        occ_t1 = Occluder(*rng.uniform(0, 30, 2), *rng.uniform(2, 6, 2), (0, 0, 0)) if i % 3 else None
        got = pair_validity(a_t, a_t1, occ_t, occ_t1, h, w)
        np.testing.assert_array_equal(got, brute_validity(a_t, a_t1, occ_t, occ_t1, h, w))
        assert 0 < got.sum() < h * w


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


# ----------------------------------------------------------------------------- chaining


@pytest.mark.parametrize("name", GEOMETRIC)
def test_pair_affines_compose_to_frame_affines(name: str) -> None:
    traj = P.make_trajectory(name, 4, np.random.default_rng(8), H, W, 11)
    np.testing.assert_array_equal(traj.affines[0], np.eye(2, 3))
    acc = np.eye(2, 3)
    for k in range(1, traj.num_frames):
        acc = compose(pair_affine(traj.affines[k - 1], traj.affines[k]), acc)
        np.testing.assert_allclose(acc, traj.affines[k], atol=1e-9)


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


# ----------------------------------------------------------------------------- inside / trajectory


def test_inside_is_the_pixel_centre_hull() -> None:
    x = np.array([0.0, -1e-9, 63.0, 63.0 + 1e-9, 1.0, 62.0, 0.5])
    y = np.zeros_like(x) + 5.0
    np.testing.assert_array_equal(inside(x, y, 64, 48), [True, False, True, False, True, True, True])
    np.testing.assert_array_equal(inside(x, y, 64, 48, margin=1.0), [False, False, False, False, True, True, False])


@pytest.mark.parametrize("name", P.PERTURBATION_NAMES)
def test_trajectory_dict_round_trip(name: str) -> None:
    import json

    traj = P.make_trajectory(name, 5, np.random.default_rng(10), H, W, 6)
    data = json.loads(json.dumps(traj.to_dict()))
    back = P.Trajectory.from_dict(data)
    assert (back.name, back.severity, back.height, back.width) == (name, 5, H, W)
    assert back.params == traj.params
    assert back.occluders == traj.occluders
    assert back.noise_step == traj.noise_step
    np.testing.assert_allclose(back.affines, traj.affines, atol=1e-12, rtol=0)
    for t in range(5):
        f0, v0 = P.pair_correspondence(traj, t)
        f1, v1 = P.pair_correspondence(back, t)
        np.testing.assert_allclose(f1, f0, atol=1e-6)
        assert (v0 != v1).sum() <= 2  # a pixel exactly on a border may flip with 1e-12 rounding
