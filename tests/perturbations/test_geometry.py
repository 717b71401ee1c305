"""perturbations.geometry: affine algebra, coverage, occluders, validity and dense flow.

Every check is against an independent reference: hand-computed cases, per-pixel Python
loops, or invariants (round trips, fixed points, chaining). The fast paths of
``pair_validity`` (per-row intervals) and ``affine_flow`` (row bands) are compared bit for
bit with their definitions: ``pair_validity_dense`` (the reference kept in the package) and
the expression of ``affine_flow``'s docstring, on every trajectory type and on adversarial
maps, occluders and special values.
"""

from __future__ import annotations

import itertools
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
    coverage_dense,
    inside,
    invert,
    pair_affine,
    pair_validity,
    pair_validity_dense,
    power,
    to_homogeneous,
)
from tests.helpers import assert_same, outcome

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


def grid(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))


def flow_by_definition(affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """``affine_flow`` as its docstring defines it: ``f(x) = A x - x``, each component
    ``(a - 1) x + b y + c`` (``d x + (e - 1) y + f``) evaluated in float64 on the whole frame
    and rounded once to float32."""
    x = np.arange(width, dtype=np.float64)[None, :]
    y = np.arange(height, dtype=np.float64)[:, None]
    (a, b, c), (d, e, f) = affine
    dx = (a - 1.0) * x + b * y + c
    dy = d * x + (e - 1.0) * y + f
    return np.stack(np.broadcast_arrays(dx, dy), axis=-1).astype(np.float32)


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


# ----------------------------------------------------------------------------- chaining, inside


@pytest.mark.parametrize("name", GEOMETRIC)
def test_pair_affines_compose_to_frame_affines(name: str) -> None:
    traj = P.make_trajectory(name, 4, np.random.default_rng(8), H, W, 11)
    np.testing.assert_array_equal(traj.affines[0], np.eye(2, 3))
    acc = np.eye(2, 3)
    for k in range(1, traj.num_frames):
        acc = compose(pair_affine(traj.affines[k - 1], traj.affines[k]), acc)
        np.testing.assert_allclose(acc, traj.affines[k], atol=1e-9)


def test_inside_is_the_pixel_centre_hull() -> None:
    x = np.array([0.0, -1e-9, 63.0, 63.0 + 1e-9, 1.0, 62.0, 0.5])
    y = np.zeros_like(x) + 5.0
    np.testing.assert_array_equal(inside(x, y, 64, 48), [True, False, True, False, True, True, True])
    np.testing.assert_array_equal(inside(x, y, 64, 48, margin=1.0), [False, False, False, False, True, True, False])


# ----------------------------------------------------------------------------- fast paths = their definitions

SIZES = [(1, 1), (1, 7), (9, 1), (2, 2), (5, 8), (48, 64), (37, 91), (120, 80)]


@pytest.mark.parametrize("name", P.PERTURBATION_NAMES)
def test_trajectories_all_types_severities_sizes(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    pairs = 0
    for severity, (height, width) in itertools.product(P.SEVERITIES, SIZES):
        traj = P.make_trajectory(name, severity, rng, height, width, num_frames=6)
        for t in range(traj.num_frames - 1):
            a_t, a_t1 = traj.affines[t], traj.affines[t + 1]
            o_t, o_t1 = traj.occluder(t), traj.occluder(t + 1)
            for margin in (P.VALIDITY_MARGIN, 0.0, 2.5):
                want = pair_validity_dense(a_t, a_t1, o_t, o_t1, height, width, margin)
                assert_same(pair_validity(a_t, a_t1, o_t, o_t1, height, width, margin), want, (severity, t, margin))
                assert_same(coverage(a_t1, height, width, margin), coverage_dense(a_t1, height, width, margin))
            assert_same(affine_flow(pair_affine(a_t, a_t1), height, width),
                        flow_by_definition(pair_affine(a_t, a_t1), height, width))
            flow, valid = P.pair_correspondence(traj, t)
            assert_same(flow, flow_by_definition(pair_affine(a_t, a_t1), height, width))
            assert_same(valid, pair_validity_dense(a_t, a_t1, o_t, o_t1, height, width))
            pairs += 1
    assert pairs == len(P.SEVERITIES) * len(SIZES) * 5


def test_full_size_trajectories():
    rng = np.random.default_rng(1)
    for name in P.PERTURBATION_NAMES:
        traj = P.make_trajectory(name, int(rng.integers(1, 7)), rng, 480, 854, num_frames=4)
        for t in range(traj.num_frames - 1):
            flow, valid = P.pair_correspondence(traj, t)
            m = pair_affine(traj.affines[t], traj.affines[t + 1])
            assert_same(flow, flow_by_definition(m, 480, 854), name)
            assert_same(valid, pair_validity_dense(traj.affines[t], traj.affines[t + 1], traj.occluder(t),
                                                   traj.occluder(t + 1), 480, 854), name)


def random_map(rng, height, width):
    """Near-identity, rotations, flips, big and degenerate-looking maps; integer and
    half-pixel shifts that put pixel centres exactly on the borders."""
    kind = int(rng.integers(0, 9))
    a = np.eye(2, 3)
    if kind == 0:
        a[:, 2] = rng.integers(-5, 6, 2)
    elif kind == 1:
        a[:, 2] = rng.uniform(-10, 10, 2)
    elif kind == 2:
        th = rng.uniform(-0.5, 0.5)
        a = about_centre(np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * rng.uniform(0.8, 1.2),
                         width, height)
    elif kind == 3:
        a[:, :2] = [[[0, 1], [1, 0]], [[-1, 0], [0, 1]], [[0, -1], [1, 0]], [[1, 0], [0, -1]]][rng.integers(0, 4)]
        a[:, 2] = rng.integers(-3, max(height, width) + 3, 2)
    elif kind == 4:
        a[:, :2] += rng.choice([1e-17, -1e-17, 1e-12, -3e-15, 0.0, -0.0], (2, 2))
        a[:, 2] = rng.choice([0.0, -0.0, 0.5, -0.5, 1.0, 1e-16, -1e-16, 0.1 + 0.2], 2)
    elif kind == 5:
        a[:, :2] = rng.uniform(-2, 2, (2, 2))
        a[:, 2] = rng.uniform(-width, width, 2)
    elif kind == 6:
        a[:, :2] *= rng.choice([0.5, 2.0, 0.25, 3.0])
        a[:, 2] = rng.choice([0.0, 0.5, 1.0, 1.5]) * rng.integers(-4, 5, 2)
    elif kind == 7:
        f = 1 + rng.choice([0.002, -0.002, 0.015, 1 / 3])
        a = about_centre(np.diag([f, f]), width, height)
    else:
        a[:, 2] = rng.integers(-5, 6, 2) + rng.choice([0.0, 1e-15, -1e-15, 2.0**-40], 2)
    return a


def random_occluder(rng, height, width):
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return None
    if kind == 1:
        return Occluder(*rng.uniform(-5, max(height, width) + 5, 2), *rng.uniform(0.3, max(height, width) / 2, 2), (0, 0, 0))
    if kind == 2:  # integer centre and axes: pixel centres exactly on the (grown) ellipse
        return Occluder(float(rng.integers(0, width)), float(rng.integers(0, height)),
                        float(rng.integers(1, 6)), float(rng.integers(1, 6)), (1, 2, 3))
    if kind == 3:
        return Occluder(float(rng.integers(0, width)) + 0.5, float(rng.integers(0, height)), 2.0, 1.0, (1, 2, 3))
    if kind == 4:  # zero or negative axes
        return Occluder(*rng.uniform(-50, 50, 2), *rng.uniform(-3, 0.5, 2), (1, 2, 3))
    return Occluder(float(rng.choice([np.nan, 1e9, -1e9, 3.0])), 5.0, float(rng.choice([np.inf, 2.0, 1e-300])), 4.0,
                    (1, 2, 3))


def test_random_affines_and_occluders():
    rng = np.random.default_rng(2024)
    for case in range(1500):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        if case % 50 == 0:
            height, width = 480, 854
        a_t = np.eye(2, 3) if rng.random() < 0.3 else random_map(rng, height, width)
        a_t1 = random_map(rng, height, width)
        o_t, o_t1 = random_occluder(rng, height, width), random_occluder(rng, height, width)
        margin = float(rng.choice([1.0, 0.0, 0.5, 2.0, 1e-9, 3.7]))
        args = (a_t, a_t1, o_t, o_t1, height, width, margin)
        assert_same(outcome(pair_validity, *args), outcome(pair_validity_dense, *args), (case, args))
        assert_same(outcome(coverage, a_t1, height, width, margin), outcome(coverage_dense, a_t1, height, width, margin))
        m = outcome(pair_affine, a_t, a_t1)
        if not isinstance(m, type):
            assert_same(outcome(affine_flow, m, height, width), outcome(flow_by_definition, m, height, width), (case, m))


def test_pixels_exactly_on_the_borders():
    """Integer shifts put whole columns and rows exactly on ``margin`` and ``W-1-margin``."""
    height, width = 30, 40
    for dx, dy, margin in itertools.product((-3, -1, 0, 1, 2), (-2, 0, 1), (0.0, 1.0, 2.0, 0.5)):
        a_t = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        for a_t1 in (np.array([[1.0, 0.0, dx - 1.0], [0.0, 1.0, dy + 1.0]]), np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.5]])):
            src_x, _ = apply_affine(invert(a_t), height, width)
            assert (src_x == margin).any() or (src_x == width - 1 - margin).any() or margin % 1
            want = pair_validity_dense(a_t, a_t1, None, None, height, width, margin)
            assert_same(pair_validity(a_t, a_t1, None, None, height, width, margin), want, (dx, dy, margin))
    occ = Occluder(10.0, 12.0, 3.0, 2.0, (0, 0, 0))  # pixels (10 +- 4, 12) and (10, 12 +- 3) on the ellipse grown by 1
    want = pair_validity_dense(np.eye(2, 3), np.eye(2, 3), occ, occ, height, width)
    assert not want[12, 6] and not want[12, 14] and not want[9, 10] and not want[15, 10] and want[12, 5]
    assert_same(pair_validity(np.eye(2, 3), np.eye(2, 3), occ, occ, height, width), want)


def test_boundary_far_from_the_estimate():
    """A tiny slope: rounding alone moves the border hundreds of columns from the real-valued
    estimate (the per-row binary search settles it)."""
    height, width = 48, 854
    a_t1 = np.array([[1.0, 0.0, 0.0], [1e-17, 1.0, 0.0]])  # ty = 1e-17 x + y: crosses H-1 by rounding
    want = pair_validity_dense(np.eye(2, 3), a_t1, None, None, height, width, 0.0)
    assert 0 < want[-1].sum() < width
    assert_same(pair_validity(np.eye(2, 3), a_t1, None, None, height, width, 0.0), want)


@pytest.mark.parametrize(
    "a_t1",
    [
        np.array([[np.nan, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        np.array([[1.0, 0.0, np.inf], [0.0, 1.0, 0.0]]),
        np.array([[1e200, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        np.array([[1.0, 0.0, 3e7], [0.0, 1.0, 0.0]]),
        np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),  # singular t+1: no inverse needed, all pixels map to a point
    ],
)
def test_unusual_maps(a_t1):
    for size in ((6, 9), (0, 5), (4, 0)):
        args = (np.eye(2, 3), a_t1, Occluder(2.0, 2.0, 1.0, 1.0, (0, 0, 0)), None, *size, 1.0)
        assert_same(outcome(pair_validity, *args), outcome(pair_validity_dense, *args), (a_t1, size))
        assert_same(outcome(affine_flow, a_t1, *size), outcome(flow_by_definition, a_t1, *size))
    singular = np.zeros((2, 3))
    args = (singular, np.eye(2, 3), None, None, 5, 5)
    assert outcome(pair_validity, *args) is outcome(pair_validity_dense, *args)


def test_identity_flow_signed_zeros():
    for signs in itertools.product((0.0, -0.0), repeat=4):
        a = np.array([[1.0, signs[0], signs[1]], [signs[2], 1.0, signs[3]]])
        assert_same(affine_flow(a, 7, 9), flow_by_definition(a, 7, 9), signs)


def test_flow_special_values():
    """Zero coefficients (a component constant along rows or columns), signed zeros,
    infinities and NaN, in every combination the shortcuts of ``affine_flow`` look at."""
    values = [0.0, -0.0, 1.0, -1.0, 2.0, 1e-17, -3.5, np.nan, np.inf, -np.inf, 0.1, 1e300, -1e-300]
    rng = np.random.default_rng(5)
    for case in range(3000):
        a = rng.choice(values, (2, 3))
        a[0, 0] = 1.0 if rng.random() < 0.5 else a[0, 0]
        a[1, 1] = 1.0 if rng.random() < 0.5 else a[1, 1]
        size = (int(rng.integers(0, 6)), int(rng.integers(0, 6)))
        assert_same(outcome(affine_flow, a, *size), outcome(flow_by_definition, a, *size), (case, a, size))


@pytest.mark.parametrize("width", [400, 854, 1000, 4096, 20000])
def test_affine_flow_does_not_depend_on_how_the_frame_is_split(width):
    """Property of the row bands (fewer rows per band the wider the frame; 90 rows cross band
    boundaries at these widths): the top rows and the left columns of a flow are those of
    the flow of a smaller frame, bit for bit."""
    rng = np.random.default_rng(width)
    a = np.eye(2, 3)
    a[:, :2] += rng.uniform(-0.1, 0.1, (2, 2))
    a[:, 2] = rng.uniform(-5, 5, 2)
    tall = affine_flow(a, 90, width)
    for height in (1, 7, 8, 9, 31, 32, 33, 37, 38, 39, 80, 81, 82, 89):
        assert_same(affine_flow(a, height, width), tall[:height], (width, height))
    for narrow in (1, width // 2, width - 1):
        assert_same(affine_flow(a, 90, narrow), tall[:, :narrow], (width, narrow))
