"""The fast paths of the evaluation loop give exactly what their straightforward versions gave.

Each optimised function is compared, bit for bit, with a copy of the implementation it
replaced (kept here as the reference): ``pair_validity`` (per-row intervals instead of
full-frame float64 images), ``affine_flow`` (row bands), ``normalize_output`` on integer
labels (no int64 copy), the set reader (RGB decoding, one preallocated array) and the
runner's read-ahead thread (same results, same errors).
"""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import perturbations as P
from perturbations.geometry import (
    Occluder,
    about_centre,
    affine_flow,
    apply_affine,
    inside,
    invert,
    pair_affine,
    pair_validity,
    pixel_grid,
)
from stabbench.errors import DataError, ModelError
from stabbench.predictors.output import _label_dtype, _resize_nearest, normalize_output

# ----------------------------------------------------------------------------- references (the replaced code)


def ref_pair_validity(affine_t, affine_t1, occluder_t, occluder_t1, height, width, margin=P.VALIDITY_MARGIN):
    src_x, src_y = apply_affine(invert(affine_t), height, width)
    valid = inside(src_x, src_y, width, height, margin)
    m = pair_affine(affine_t, affine_t1)
    tx, ty = apply_affine(m, height, width)
    valid &= inside(tx, ty, width, height)
    if occluder_t is not None:
        x, y = pixel_grid(height, width, np.float64)
        valid &= ~occluder_t.contains(x, y, margin)
    if occluder_t1 is not None:
        valid &= ~occluder_t1.contains(tx, ty, margin)
    return valid


def ref_affine_flow(affine, height, width):
    x, y = pixel_grid(height, width, np.float64)
    flow = np.empty((height, width, 2), dtype=np.float32)
    flow[..., 0] = (affine[0, 0] - 1.0) * x + affine[0, 1] * y + affine[0, 2]
    flow[..., 1] = affine[1, 0] * x + (affine[1, 1] - 1.0) * y + affine[1, 2]
    return flow


def ref_normalize_labels(out, batch, height, width, num_classes=None):
    """The integer-label branch of ``normalize_output`` as it was (everything through int64)."""
    received = f"received shape {tuple(out.shape)} dtype {out.dtype}"
    labels = out.astype(np.int64, copy=False)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        raise ModelError(
            f"model output labels must lie in [0, {num_classes if num_classes is not None else 'C'}); "
            f"received values {low}..{high} ({received})"
        )
    dtype = _label_dtype(num_classes if num_classes is not None else high + 1)
    return _resize_nearest(labels, height, width).astype(dtype)


def outcome(fn, *args):
    """``fn(*args)``, or the type of the exception it raised (so both sides can be compared)."""
    with np.errstate(all="ignore"):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            return type(exc)


def assert_same(got, want, context=""):
    """Same exception type, or same dtype, shape and bits (signed zeros included; a NaN only
    has to be a NaN: its sign bit depends on which machine instruction made it)."""
    if isinstance(want, type):
        assert got is want, (context, got, want)
        return
    assert isinstance(got, np.ndarray), (context, got)
    assert got.dtype == want.dtype and got.shape == want.shape, (context, got.dtype, got.shape, want.shape)
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), context
        got, want = got[~nan], want[~nan]
    assert got.tobytes() == want.tobytes(), (context, int((got != want).sum()))


# ----------------------------------------------------------------------------- pair_validity, affine_flow

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
                want = ref_pair_validity(a_t, a_t1, o_t, o_t1, height, width, margin)
                assert_same(pair_validity(a_t, a_t1, o_t, o_t1, height, width, margin), want, (severity, t, margin))
            assert_same(affine_flow(pair_affine(a_t, a_t1), height, width),
                        ref_affine_flow(pair_affine(a_t, a_t1), height, width))
            flow, valid = P.pair_correspondence(traj, t)
            assert_same(flow, ref_affine_flow(pair_affine(a_t, a_t1), height, width))
            assert_same(valid, ref_pair_validity(a_t, a_t1, o_t, o_t1, height, width))
            pairs += 1
    assert pairs == len(P.SEVERITIES) * len(SIZES) * 5


def test_full_size_trajectories():
    rng = np.random.default_rng(1)
    for name in P.PERTURBATION_NAMES:
        traj = P.make_trajectory(name, int(rng.integers(1, 7)), rng, 480, 854, num_frames=4)
        for t in range(traj.num_frames - 1):
            flow, valid = P.pair_correspondence(traj, t)
            m = pair_affine(traj.affines[t], traj.affines[t + 1])
            assert_same(flow, ref_affine_flow(m, 480, 854), name)
            assert_same(valid, ref_pair_validity(traj.affines[t], traj.affines[t + 1], traj.occluder(t),
                                                 traj.occluder(t + 1), 480, 854), name)


def random_affine(rng, height, width):
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
        a_t = np.eye(2, 3) if rng.random() < 0.3 else random_affine(rng, height, width)
        a_t1 = random_affine(rng, height, width)
        o_t, o_t1 = random_occluder(rng, height, width), random_occluder(rng, height, width)
        margin = float(rng.choice([1.0, 0.0, 0.5, 2.0, 1e-9, 3.7]))
        args = (a_t, a_t1, o_t, o_t1, height, width, margin)
        assert_same(outcome(pair_validity, *args), outcome(ref_pair_validity, *args), (case, args))
        m = outcome(pair_affine, a_t, a_t1)
        if not isinstance(m, type):
            assert_same(outcome(affine_flow, m, height, width), outcome(ref_affine_flow, m, height, width), (case, m))


def test_pixels_exactly_on_the_borders():
    """Integer shifts put whole columns and rows exactly on ``margin`` and ``W-1-margin``."""
    height, width = 30, 40
    for dx, dy, margin in itertools.product((-3, -1, 0, 1, 2), (-2, 0, 1), (0.0, 1.0, 2.0, 0.5)):
        a_t = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        for a_t1 in (np.array([[1.0, 0.0, dx - 1.0], [0.0, 1.0, dy + 1.0]]), np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.5]])):
            src_x, _ = apply_affine(invert(a_t), height, width)
            assert (src_x == margin).any() or (src_x == width - 1 - margin).any() or margin % 1
            want = ref_pair_validity(a_t, a_t1, None, None, height, width, margin)
            assert_same(pair_validity(a_t, a_t1, None, None, height, width, margin), want, (dx, dy, margin))
    occ = Occluder(10.0, 12.0, 3.0, 2.0, (0, 0, 0))  # pixels (10 +- 4, 12) and (10, 12 +- 3) on the ellipse grown by 1
    want = ref_pair_validity(np.eye(2, 3), np.eye(2, 3), occ, occ, height, width)
    assert not want[12, 6] and not want[12, 14] and not want[9, 10] and not want[15, 10] and want[12, 5]
    assert_same(pair_validity(np.eye(2, 3), np.eye(2, 3), occ, occ, height, width), want)


def test_boundary_far_from_the_estimate():
    """A tiny slope: rounding alone moves the border hundreds of columns from the real-valued
    estimate (the per-row binary search settles it)."""
    height, width = 48, 854
    a_t1 = np.array([[1.0, 0.0, 0.0], [1e-17, 1.0, 0.0]])  # ty = 1e-17 x + y: crosses H-1 by rounding
    want = ref_pair_validity(np.eye(2, 3), a_t1, None, None, height, width, 0.0)
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
        assert_same(outcome(pair_validity, *args), outcome(ref_pair_validity, *args), (a_t1, size))
        assert_same(outcome(affine_flow, a_t1, *size), outcome(ref_affine_flow, a_t1, *size))
    singular = np.zeros((2, 3))
    assert outcome(pair_validity, singular, np.eye(2, 3), None, None, 5, 5) is outcome(ref_pair_validity, singular,
                                                                                        np.eye(2, 3), None, None, 5, 5)


def test_identity_flow_signed_zeros():
    for signs in itertools.product((0.0, -0.0), repeat=4):
        a = np.array([[1.0, signs[0], signs[1]], [signs[2], 1.0, signs[3]]])
        assert_same(affine_flow(a, 7, 9), ref_affine_flow(a, 7, 9), signs)


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
        assert_same(outcome(affine_flow, a, *size), outcome(ref_affine_flow, a, *size), (case, a, size))


# ----------------------------------------------------------------------------- normalize_output on labels

DTYPES = (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64, np.uint64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_labels_like_before(dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    for (h, w), num_classes in itertools.product(((12, 16), (5, 7), (24, 32)), (None, 2, 3, 300)):
        top = 2 if dtype is np.bool_ else min(int(info.max), 400) + 1
        for values in (rng.integers(0, min(top, num_classes or top), (2, h, w)), rng.integers(0, top, (2, h, w))):
            out = values.astype(dtype)
            want = outcome(ref_normalize_labels, out, 2, 12, 16, num_classes)
            got = outcome(lambda *a: normalize_output(*a)[0], out, 2, 12, 16, num_classes)
            assert_same(got, want, (dtype, h, w, num_classes))
            if isinstance(got, np.ndarray):
                assert not np.shares_memory(got, out)  # never the predictor's own buffer
        if info is not None and info.min < 0:  # negative labels: same error, same message
            out = np.full((2, h, w), -1, dtype)
            with pytest.raises(ModelError) as new:
                normalize_output(out, 2, 12, 16, num_classes)
            with pytest.raises(ModelError) as old:
                ref_normalize_labels(out, 2, 12, 16, num_classes)
            assert str(new.value) == str(old.value)
    if dtype is np.uint64:  # above 2**63: read as negative through int64, rejected, as before
        out = np.full((1, 4, 4), 2**64 - 1, np.uint64)
        with pytest.raises(ModelError, match=r"received values -1\.\.-1"):
            normalize_output(out, 1, 4, 4)


# ----------------------------------------------------------------------------- reader and runner


def cli(*args):
    from stabbench.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast") / "set"
    cli("synth", "-q", "--dataset", "shapes", "--num-images", "1", "--frames", "4", "--seed", "3", "--out", out)
    return out


def test_reader_reads_as_before(small_set):
    from stabbench.synth import open_set

    for seq in open_set(small_set):
        frames, masks = seq.frames(), seq.masks()
        files = [seq.folder / item["frame"] for item in seq.record["frames"]]
        want = np.stack([cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in files])
        assert_same(frames, want)
        mask_files = [seq.folder / item["mask"] for item in seq.record["frames"]]
        assert_same(masks, np.stack([cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in mask_files]))
        assert_same(seq.frame(1), want[1])


def test_reader_size_mismatch_names_the_file(small_set, tmp_path):
    import shutil

    from stabbench.synth import open_set

    copy = tmp_path / "set"
    shutil.copytree(small_set, copy)
    seq = open_set(copy)[0]
    path = seq.folder / seq.record["frames"][2]["frame"]
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="frame_02"):
        seq.frames()


def state_json(state):
    return json.dumps(state.state_dict(), sort_keys=True)


def test_prefetch_same_results_and_errors(small_set, tmp_path):
    import shutil

    from stabbench.evaluation import evaluate
    from stabbench.predictors.registry import make_builtin
    from stabbench.synth import open_set

    ds = open_set(small_set)
    for name in ("oracle", "flicker,rate=0.3", "constant"):
        predictor = make_builtin(name).predictor
        serial = evaluate(predictor, ds, prefetch=False)
        ahead = evaluate(predictor, ds, prefetch=True, batch_size=3)
        assert state_json(ahead) == state_json(serial)
        assert state_json(evaluate(predictor, ds, shard=(1, 2))) == state_json(evaluate(predictor, ds, shard=(1, 2),
                                                                                           prefetch=False))

    copy = tmp_path / "set"  # sequence 3 cannot be read: sequences 0-2 are scored first, then its DataError
    shutil.copytree(small_set, copy)
    broken = open_set(copy)[3]
    path = broken.folder / broken.record["frames"][1]["frame"]
    path.write_bytes(b"not a png")
    for prefetch in (True, False):
        seen = []
        with pytest.raises(DataError, match="frame_01") as info:
            evaluate(make_builtin("constant").predictor, open_set(copy), prefetch=prefetch,
                     progress=lambda done, total: seen.append(done))
        assert str(path) in str(info.value) and seen == [1, 2, 3]

    class FailsOnSecond:  # a model error while the next sequence is being read ahead
        calls = 0

        def predict(self, frames):
            FailsOnSecond.calls += 1
            if FailsOnSecond.calls == 2:
                raise RuntimeError("boom")
            return np.zeros(frames.shape[:3], np.uint8)

    with pytest.raises(ModelError, match="boom"):
        evaluate(FailsOnSecond(), ds)
