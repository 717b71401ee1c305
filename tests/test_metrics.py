"""stabbench.metrics: hand-counted cases, references, band geometry, aggregation, exact merging."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import perturbations as P
from stabbench.datasets.base import IGNORE_LABEL as DATASET_IGNORE
from stabbench.metrics import (
    ConfusionMeter,
    StabilityMeter,
    boundary_band,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    object_edges,
    pair_consistency,
    pair_counts,
    pair_geometry,
    sequence_rows,
    stability_rate,
    summarize,
    target_indices,
)
from stabbench.metrics import functional as F

DAVIS_MASK = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "davis-sample"
    / "Annotations"
    / "480p"
    / "blackswan"
    / "00000.png"
)


def const_flow(h: int, w: int, dx: float = 0.0, dy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow, np.ones((h, w), bool)


def vertical_edge(h: int = 12, w: int = 40, col: int = 20) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[:, col:] = 1
    return mask


def same(a, b) -> bool:
    """Exact equality of nested results, NaN == NaN (repr of a float round-trips exactly)."""
    return repr(a) == repr(b)


# =========================================================================== target_indices


def test_ignore_label_matches_datasets():
    assert F.IGNORE_LABEL == DATASET_IGNORE == P.render.IGNORE_LABEL


def test_zero_flow_targets_are_identity():
    tracks = target_indices(*const_flow(3, 5))
    assert tracks.shape == (3, 5) and tracks.coords.shape == (3, 5, 2) and tracks.coords.dtype == np.int16
    np.testing.assert_array_equal(tracks.target, np.arange(15))
    assert tracks.tracked.all() and tracks.num_tracked == 15


def test_translation_by_one_pixel():
    tracks = target_indices(*const_flow(4, 4, dx=1.0))
    tracked = tracks.tracked
    assert tracked[:, :3].all() and not tracked[:, 3].any()  # x + 1 = 4 leaves the frame
    target = tracks.target.reshape(4, 4)
    np.testing.assert_array_equal(target[:, :3], (np.arange(4)[:, None] * 4 + np.arange(1, 4)))
    assert (target[:, 3] == 0).all()  # untracked pixels point at 0 (in range)


@pytest.mark.parametrize(
    "d, shift",
    [
        (0.5, 0),  # exact ties go to the even displacement
        (1.5, 2),
        (-0.5, 0),
        (-1.5, -2),
        (2.5, 2),
        (0.49, 0),
        (-0.51, -1),
        (np.nextafter(np.float32(0.5), np.float32(0)), 0),  # just below a tie: down, exactly
        (np.nextafter(np.float32(0.5), np.float32(1)), 1),
        (np.nextafter(np.float32(-2.5), np.float32(-3)), -3),
    ],
)
def test_rounding_is_x_plus_rint_of_the_displacement(d, shift):
    flow, valid = const_flow(1, 9, dx=d)
    tracks = target_indices(flow, valid)
    x = np.arange(9)
    inside = (x + shift >= 0) & (x + shift < 9)
    np.testing.assert_array_equal(tracks.tracked[0], inside)
    np.testing.assert_array_equal(tracks.coords[0, inside, 0], (x + shift)[inside])  # same for every x (odd or even)


def test_targets_match_exact_nearest_pixel_on_random_flow():
    rng = np.random.default_rng(1)
    h, w = 30, 40
    flow = rng.uniform(-6, 6, (h, w, 2)).astype(np.float32)
    flow[::3, ::2] = np.round(flow[::3, ::2]) + 0.5  # exact ties
    flow[1::3, ::2] = np.nextafter(np.round(flow[1::3, ::2]) + np.float32(0.5), np.float32(-100))  # near ties
    valid = rng.random((h, w)) < 0.9
    tracks = target_indices(flow, valid)
    # reference: nearest integer to x + dx in float64 (exact for float32 dx); ties to even displacement
    dx, dy = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    xi = np.arange(w)[None, :] + np.rint(dx).astype(int)
    yi = np.arange(h)[:, None] + np.rint(dy).astype(int)
    no_tie = (np.abs(dx - np.floor(dx) - 0.5) > 0) & (np.abs(dy - np.floor(dy) - 0.5) > 0)
    nearest_x = np.floor(np.arange(w)[None, :] + dx + 0.5).astype(int)
    assert (xi == nearest_x)[no_tie].all()  # away from exact ties, it is the nearest pixel
    ok = valid & (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    np.testing.assert_array_equal(tracks.tracked, ok)
    np.testing.assert_array_equal(tracks.coords[ok], np.stack([xi, yi], -1)[ok])
    np.testing.assert_array_equal(tracks.target[ok.ravel()], (yi * w + xi)[ok])
    assert (tracks.target[~ok.ravel()] == 0).all()


def test_large_displacements_stay_outside():
    flow, valid = const_flow(3, 5)
    flow[0, :, 0] = [32767.0, 40000.0, -32768.0, -1e9, 1e30]
    flow[1, :, 1] = [32767.0, -40000.0, 65536.0, 65537.0, -65535.0]
    tracks = target_indices(flow, valid)
    assert not tracks.tracked[:2].any() and tracks.tracked[2].all()


def test_invalid_nonfinite_and_outside_are_not_tracked():
    flow, valid = const_flow(2, 3)
    valid[0, 0] = False
    flow[0, 1] = (np.nan, 0)
    flow[0, 2] = (np.inf, 0)
    flow[1, 0] = (-0.6, 0)  # rounds to x = -1
    flow[1, 1] = (0, 3e38)
    tracks = target_indices(flow, valid)
    np.testing.assert_array_equal(tracks.tracked, [[False, False, False], [False, False, True]])
    flow[1, 2] = (-np.inf, 0)
    assert not target_indices(flow, valid).tracked.any()


def test_target_indices_errors():
    flow, valid = const_flow(4, 5)
    with pytest.raises(ValueError, match=r"flow must have shape \(H, W, 2\), got \(4, 5\)"):
        target_indices(flow[..., 0], valid)
    with pytest.raises(ValueError, match=r"valid must have shape \(4, 5\).*got \(5, 4\)"):
        target_indices(flow, valid.T)
    with pytest.raises(ValueError, match="valid must be a bool mask, got dtype uint8"):
        target_indices(flow, valid.astype(np.uint8))


# =========================================================================== pair consistency


# frame t; the content moves one pixel right (flow dx = +1)
PRED_T = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 1, 1, 1],
        [0, 0, 0, 1],
    ],
    np.uint8,
)


def moved_right(pred: np.ndarray) -> np.ndarray:
    out = np.zeros_like(pred)
    out[:, 1:] = pred[:, :-1]
    return out


def test_hand_counted_pair_with_translation():
    flow, valid = const_flow(4, 4, dx=1.0)
    pred_t1 = moved_right(PRED_T)
    assert pair_consistency(PRED_T, pred_t1, flow, valid) == (12, 12)  # column 3 leaves the frame
    pred_t1[1, 2] = 1  # the target of x=(1, 1): one inconsistent pixel
    pred_t1[0, 0] = 1  # no pixel lands on column 0: no effect
    assert pair_consistency(PRED_T, pred_t1, flow, valid) == (11, 12)
    pred_t1[3, 3] = 1  # the target of x=(2, 3)
    assert pair_consistency(PRED_T, pred_t1, flow, valid) == (10, 12)
    region = np.zeros((4, 4), bool)
    region[:2] = True  # rows 0-1: 6 tracked, (1, 1) inconsistent
    assert pair_consistency(PRED_T, pred_t1, flow, valid, region) == (5, 6)
    valid[1, 1] = False
    assert pair_consistency(PRED_T, pred_t1, flow, valid, region) == (5, 5)
    assert stability_rate(10, 12) == pytest.approx(100 * 10 / 12)


def test_static_prediction_under_a_known_shift():
    h, w, shift = 6, 30, 3
    pred = vertical_edge(h, w, col=12)
    flow, valid = const_flow(h, w, dx=shift)
    # a prediction that does not move: x is inconsistent for x in [12 - 3, 12 - 1]
    c, n = pair_consistency(pred, pred, flow, valid)
    assert (c, n) == (h * (w - shift - shift), h * (w - shift))
    # a prediction that moves with the content is fully consistent
    moved = vertical_edge(h, w, col=12 + shift)
    assert pair_consistency(pred, moved, flow, valid) == (h * (w - shift),) * 2


def test_random_flips_match_the_binomial_rate():
    """Independent flips at rate q in both frames: P(same label) = (1-q)^2 + q^2.

    The consistent count is Binomial(N, p) (pixels independent), so the rate's standard
    deviation is sqrt(p (1-p) / N) = 0.00075 at N = 262144, q = 0.1: the tolerance 0.004
    is over 5 sigma (the seed is fixed; this only justifies the bound).
    """
    rng = np.random.default_rng(0)
    h, w, dx, dy = 512, 514, 2, 1
    base = (rng.random((h + dy, w + dx)) < 0.5).astype(np.uint8)
    label_t, label_t1 = base[dy:, dx:], base[:h, :w]  # content at x in t is at x + (2, 1) in t+1
    flow, valid = const_flow(h, w, dx=dx, dy=dy)
    for q in (0.0, 0.1, 0.3):
        pred_t = label_t ^ (rng.random((h, w)) < q)
        pred_t1 = label_t1 ^ (rng.random((h, w)) < q)
        c, n = pair_consistency(pred_t, pred_t1, flow, valid)
        assert n == (h - dy) * (w - dx)
        p = (1 - q) ** 2 + q**2
        assert abs(c / n - p) <= max(0.004, 5 * math.sqrt(p * (1 - p) / n)), (q, c / n)


def test_ground_truth_plays_no_part_in_global_stability():
    """Stability compares predictions only: ignore pixels in the ground truth still count."""
    flow, valid = const_flow(4, 4, dx=1.0)
    gt = np.full((4, 4), 255, np.uint8)
    pair = pair_geometry(flow, valid, gt)
    assert pair_counts(PRED_T, moved_right(PRED_T), pair) == (12, 12, 0, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint64])
def test_prediction_dtypes_give_the_same_counts(dtype):
    flow, valid = const_flow(4, 4, dx=1.0)
    pred_t1 = moved_right(PRED_T)
    pred_t1[1, 2] = 1
    assert pair_consistency(PRED_T.astype(dtype), pred_t1.astype(dtype), flow, valid) == (11, 12)
    assert pair_consistency(PRED_T.astype(bool), pred_t1.astype(bool), flow, valid) == (11, 12)


def test_negative_and_wide_labels():
    flow, valid = const_flow(4, 4)
    neg = PRED_T.astype(np.int64) - 1  # labels -1 / 0
    assert pair_consistency(neg, neg, flow, valid) == (16, 16)
    big = PRED_T.astype(np.int64) * 40000  # fits uint16
    assert pair_consistency(big, big, flow, valid) == (16, 16)
    with pytest.raises(ValueError, match=r"pred_t1 labels must fit in 16 bits, got range \[0, 70000\]"):
        pair_consistency(PRED_T, PRED_T.astype(np.int64) * 70000, flow, valid)


def test_pair_counts_shape_and_dtype_errors():
    flow, valid = const_flow(4, 4)
    pair = pair_geometry(flow, valid, PRED_T)
    with pytest.raises(ValueError, match=r"pred_t1 must have shape \(4, 4\), got \(4, 5\)"):
        pair_counts(PRED_T, np.zeros((4, 5), np.uint8), pair)
    with pytest.raises(ValueError, match="pred_t must hold integer class ids, got dtype float32"):
        pair_counts(PRED_T.astype(np.float32), PRED_T, pair)
    with pytest.raises(ValueError, match=r"gt_t must have shape \(4, 4\), got \(3, 4\)"):
        pair_geometry(flow, valid, PRED_T[:3])
    with pytest.raises(ValueError, match="region must be a bool mask"):
        pair_consistency(PRED_T, PRED_T, flow, valid, region=np.ones((4, 4), np.uint8))


# =========================================================================== band geometry


@pytest.mark.parametrize("width", [1, 3, 7, 15])
def test_band_across_a_vertical_edge_is_width_columns(width):
    mask = vertical_edge(12, 40, col=20)
    edges = object_edges(mask)
    assert edges[:, 20].all() and edges.sum() == 12  # one side only: the larger label's
    band = boundary_band(mask, width)
    r = (width - 1) // 2
    cols = np.flatnonzero(band.any(axis=0))
    np.testing.assert_array_equal(cols, np.arange(20 - r, 20 + r + 1))
    assert band[:, cols].all() and band.sum() == 12 * width


def test_band_across_a_horizontal_edge_and_image_border():
    mask = np.zeros((30, 10), np.uint8)
    mask[:5] = 2  # an edge at row 4/5 (larger label on top), 5 px from the top border
    band = boundary_band(mask, 15)
    rows = np.flatnonzero(band.any(axis=1))
    np.testing.assert_array_equal(rows, np.arange(0, 4 + 7 + 1))  # clipped by the border


def test_single_class_and_ignore_edges_give_an_empty_band():
    assert not boundary_band(np.ones((20, 20), np.uint8)).any()
    assert not boundary_band(np.full((20, 20), 255, np.uint8)).any()
    mask = np.full((20, 20), 255, np.uint8)
    mask[5:15, 5:15] = 1  # an object surrounded by ignore: no object edge
    assert not boundary_band(mask).any()
    mask[5:15, 5:10] = 0  # a real edge inside: band only around it (it may cover ignore pixels)
    band = boundary_band(mask, 3)
    assert band[5:15, 9:12].all() and band[4, 10] and band[15, 10] and band.sum() == 10 * 3 + 2


def test_band_with_another_ignore_label():
    mask = np.full((20, 20), 0, np.uint8)  # 0 = ignore here
    mask[5:15, 5:15] = 2
    assert not boundary_band(mask, 3, ignore_label=0).any()
    mask[5:15, 5:10] = 1
    band = boundary_band(mask, 3, ignore_label=0)
    assert band[5:15, 9:12].all() and band.sum() == 30 + 2
    mask[5:15, 5:10] = 255  # a real class 255 is the largest: the edge is on its side
    assert object_edges(mask, ignore_label=0)[5:15, 9].all()


def random_blobs(rng: np.random.Generator, h: int, w: int, labels=(0, 1, 2, 255)) -> np.ndarray:
    small = rng.choice(np.array(labels, np.uint8), size=(h // 8 + 1, w // 8 + 1))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def brute_force_band(mask: np.ndarray, width: int, ignore: int = 255) -> np.ndarray:
    """Loop reference: 4-neighbour edge on the larger non-ignore label, Euclidean distance <= r."""
    h, w = mask.shape
    edge = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            a = int(mask[y, x])
            if a == ignore:
                continue
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] != ignore and mask[yy, xx] < a:
                    edge[y, x] = True
    r = (width - 1) / 2
    ey, ex = np.nonzero(edge)
    if ey.size == 0:
        return np.zeros((h, w), bool)
    yy, xx = np.mgrid[:h, :w]
    d2 = (yy[..., None] - ey) ** 2 + (xx[..., None] - ex) ** 2
    return d2.min(axis=-1) <= r * r


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("width", [1, 5, 15])
def test_band_matches_brute_force_and_distance_transform(seed, width):
    rng = np.random.default_rng(seed)
    mask = random_blobs(rng, 37, 53)
    band = boundary_band(mask, width)
    np.testing.assert_array_equal(band, brute_force_band(mask, width))
    edges = object_edges(mask)
    if edges.any():
        dist = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.testing.assert_array_equal(band, dist <= (width - 1) / 2 + 1e-4)


def test_band_accepts_wider_integer_masks():
    mask = random_blobs(np.random.default_rng(9), 20, 30)
    np.testing.assert_array_equal(boundary_band(mask.astype(np.int64), 5), boundary_band(mask, 5))
    with pytest.raises(ValueError, match=r"mask labels must be in \[0, 255\], got range \[0, 300\]"):
        boundary_band(np.array([[0, 300]]))


@pytest.mark.parametrize("width", [0, 2, 16, -3, 1.0, True])
def test_band_width_must_be_odd_positive(width):
    with pytest.raises(ValueError, match="band width must be an odd positive integer"):
        boundary_band(vertical_edge(), width)


# =========================================================================== StabilityMeter


def test_identical_predictions_with_zero_flow_give_100():
    meter = StabilityMeter()
    mask = vertical_edge(20, 30, col=15)
    for t in range(4):
        meter.update("seq", t, mask, mask, *const_flow(20, 30), mask)
    res = meter.compute()
    assert res["S_global"] == res["S_boundary"] == 100.0
    assert res["pairs"] == 4 and res["tracked"] == 4 * 600 and res["boundary_tracked"] == 4 * 20 * 15


def zero_flow_pair(meter: StabilityMeter, seq_id: str, t: int, tracked: int, consistent: int, gt=None):
    """Count a 4x4 pair with zero flow: ``tracked`` valid pixels, ``consistent`` of them equal."""
    flow, valid = const_flow(4, 4)
    valid.ravel()[tracked:] = False
    pred_t = np.zeros((4, 4), np.uint8)
    pred_t1 = np.zeros((4, 4), np.uint8)
    pred_t1.ravel()[consistent:] = 1
    gt = np.zeros((4, 4), np.uint8) if gt is None else gt
    return meter.update(seq_id, t, pred_t, pred_t1, flow, valid, gt)


def test_aggregation_is_mean_of_pairs_then_of_sequences():
    meter = StabilityMeter()
    zero_flow_pair(meter, "a", 0, 16, 16)  # 100
    zero_flow_pair(meter, "a", 1, 4, 2)  # 50  -> sequence a: 75
    zero_flow_pair(meter, "b", 0, 8, 2)  # 25  -> sequence b: 25
    zero_flow_pair(meter, "b", 1, 0, 0)  # no tracked pixel: skipped
    res = meter.compute()
    assert res["S_global"] == 50.0  # (75 + 25) / 2
    assert res["S_global_pooled"] == pytest.approx(100 * 20 / 28)
    assert res["global_skipped_pairs"] == 1 and res["pairs"] == 4 and res["sequences"] == 2
    rows = {row["sequence"]: row for row in meter.per_sequence()}
    assert rows["a"]["S_global"] == 75.0 and rows["b"]["S_global"] == 25.0 and rows["b"]["global_pairs"] == 1


def test_boundary_pairs_with_an_empty_band_are_skipped():
    edge_gt = np.array([[0, 0, 1, 1]] * 4, np.uint8)
    flat_gt = np.zeros((4, 4), np.uint8)
    meter = StabilityMeter(band_width=1)  # band = the edge column 2 only
    flow, valid = const_flow(4, 4)
    pred_t = edge_gt.copy()
    pred_t1 = edge_gt.copy()
    pred_t1[0, 2] = 0  # one inconsistent band pixel out of 4
    assert meter.update("a", 0, pred_t, pred_t1, flow, valid, edge_gt)[2:] == (15, 16, 3, 4)
    assert meter.update("a", 1, pred_t, pred_t, flow, valid, flat_gt)[2:] == (16, 16, 0, 0)  # skipped
    meter.update("b", 0, pred_t, pred_t, flow, valid, flat_gt)  # no band in any pair
    res = meter.compute()
    assert res["S_boundary"] == 75.0  # a: 75 (its pair 1 skipped); b: NaN, left out
    assert res["boundary_skipped_pairs"] == 2 and res["boundary_sequences"] == 1
    rows = {row["sequence"]: row for row in meter.per_sequence()}
    assert math.isnan(rows["b"]["S_boundary"]) and rows["b"]["S_global"] == 100.0
    assert res["S_global"] == pytest.approx(((100 * 15 / 16 + 100) / 2 + 100) / 2)


def test_update_prepared_equals_update_and_checks_settings():
    rng = np.random.default_rng(3)
    traj = P.make_trajectory("rotation", 4, rng, 40, 60)
    flow, valid = P.pair_correspondence(traj, 0)
    gt = random_blobs(rng, 40, 60, (0, 1))
    pred_t, pred_t1 = random_blobs(rng, 40, 60, (0, 1, 2)), random_blobs(rng, 40, 60, (0, 1, 2))
    a, b = StabilityMeter(), StabilityMeter()
    pair = b.prepare(flow, valid, gt)
    assert a.update("s", 0, pred_t, pred_t1, flow, valid, gt) == b.update_prepared("s", 0, pred_t, pred_t1, pair)
    with pytest.raises(
        ValueError, match=r"pair prepared with \(band_width, ignore_label\) \(15, 255\), meter has \(5, 255\)"
    ):
        StabilityMeter(band_width=5).update_prepared("s", 0, pred_t, pred_t1, pair)


def test_meter_input_errors():
    meter = StabilityMeter()
    zero_flow_pair(meter, "a", 0, 16, 16)
    with pytest.raises(ValueError, match="pair t=0 of sequence 'a' was already counted"):
        zero_flow_pair(meter, "a", 0, 16, 16)
    with pytest.raises(ValueError, match="sequence id must be a non-empty str, got 3"):
        zero_flow_pair(meter, 3, 0, 16, 16)
    with pytest.raises(ValueError, match="pair index t must be a non-negative int, got -1"):
        zero_flow_pair(meter, "a", -1, 16, 16)
    with pytest.raises(ValueError, match="band width must be an odd positive integer"):
        StabilityMeter(band_width=14)
    assert len(meter.pairs) == 1
    meter.reset()
    assert meter.pairs == [] and math.isnan(meter.compute()["S_global"])


def test_groups_give_per_group_results():
    meter = StabilityMeter()
    zero_flow_pair(meter, "a", 0, 16, 8)
    zero_flow_pair(meter, "b", 0, 16, 16)
    zero_flow_pair(meter, "c", 0, 16, 12)
    groups = {"a": ("rotation", 1), "b": ("rotation", 1), "c": ("scaling", 2)}
    res = meter.compute(groups)
    assert list(res) == [("rotation", 1), ("scaling", 2)]
    assert res[("rotation", 1)]["S_global"] == 75.0 and res[("rotation", 1)]["sequences"] == 2
    assert res[("scaling", 2)]["S_global"] == 75.0
    with pytest.raises(ValueError, match="1 sequence\\(s\\) have no group: 'c'"):
        meter.compute({"a": 1, "b": 1})


# =========================================================================== confusion / IoU


def reference_confusion(pred, target, c, ignore=255):
    cm = np.zeros((c, c), np.int64)
    for p, g in zip(np.ravel(pred).tolist(), np.ravel(target).tolist()):
        if g != ignore:
            cm[g, p] += 1
    return cm


def test_confusion_hand_case():
    target = np.array([[0, 0, 1], [1, 2, 255], [2, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0], [0, 2, 2]], np.uint8)
    cm = confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 3]])
    assert cm.dtype == np.int64
    iou = iou_from_confusion(cm)  # class 0: 1/(2+2-1); class 1: 2/(3+2-2); class 2: 3/(4+3-3)
    np.testing.assert_allclose(iou, [100 / 3, 200 / 3, 75.0])
    assert mean_iou(cm) == pytest.approx((100 / 3 + 200 / 3 + 75) / 3)


@pytest.mark.parametrize("seed, c, dtype", [(0, 2, np.uint8), (1, 19, np.uint8), (2, 5, np.int64), (3, 1, np.int32)])
def test_confusion_matches_loop_reference(seed, c, dtype):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, (23, 31)).astype(np.uint8)
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, c, target.shape).astype(dtype)
    np.testing.assert_array_equal(confusion_matrix(pred, target, c), reference_confusion(pred, target, c))


def test_confusion_beyond_float32_exact_counts_uses_bincount():
    """Above 2**24 pixels calcHist's float32 bins are no longer exact: the bincount path."""
    n = (1 << 24) + 3
    target = np.zeros(n, np.uint8)
    target[:7] = (1, 2, 255, 2, 1, 0, 2)
    pred = np.zeros(n, np.uint8)
    pred[:7] = (1, 1, 2, 2, 0, 2, 0)
    cm = confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(cm, [[n - 7 + 0, 0, 1], [1, 1, 0], [1, 1, 1]])


def test_iou_nan_for_absent_classes():
    cm = np.array([[5, 0, 0], [0, 0, 0], [1, 0, 2]])
    iou = iou_from_confusion(cm)
    assert math.isnan(iou[1]) and iou[0] == pytest.approx(500 / 6) and iou[2] == pytest.approx(200 / 3)
    assert mean_iou(cm) == pytest.approx((500 / 6 + 200 / 3) / 2)
    assert math.isnan(mean_iou(np.zeros((2, 2), np.int64)))


def test_confusion_errors():
    target = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match=r"prediction label 3 outside \[0, 3\) \(num_classes=3\)"):
        confusion_matrix(np.array([[0, 1, 3], [0, 0, 0]], np.uint8), target, 3)
    with pytest.raises(ValueError, match=r"prediction label -1 outside \[0, 3\)"):
        confusion_matrix(np.array([[0, 1, -1], [0, 0, 0]]), target, 3)
    with pytest.raises(ValueError, match=r"prediction label 255 outside"):  # even at an ignore pixel
        confusion_matrix(np.full((2, 3), 255, np.uint8), np.full((2, 3), 255, np.uint8), 3)
    with pytest.raises(ValueError, match=r"target label 7 outside \[0, 3\) and not ignore \(255\)"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.array([[0, 7, 255], [1, 2, 0]], np.uint8), 3)
    with pytest.raises(ValueError, match=r"target label 2 outside \[0, 2\) and not ignore \(255\)"):  # binary path
        confusion_matrix(np.zeros((2, 3), np.uint8), np.array([[0, 1, 255], [1, 2, 0]], np.uint8), 2)
    with pytest.raises(ValueError, match=r"target label 300 outside \[0, 2\)"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.array([[0, 1, 300], [1, 0, 0]]), 2)
    with pytest.raises(ValueError, match=r"pred and target shapes differ: \(2, 3\) vs \(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 3)
    with pytest.raises(ValueError, match="pred must hold integer class ids, got dtype float64"):
        confusion_matrix(np.zeros((2, 3)), target, 3)
    with pytest.raises(ValueError, match="ignore_label 1 is a class id"):
        confusion_matrix(target, target, 3, ignore_label=1)
    with pytest.raises(ValueError, match=r"num_classes must be in \[1, 255\], got 0"):
        ConfusionMeter(0)


def test_confusion_meter_groups_and_rows():
    meter = ConfusionMeter(2)
    gt = vertical_edge(4, 8, col=4)
    meter.update("a", gt, gt)
    meter.update("a", gt, gt)
    meter.update("b", np.zeros_like(gt), gt)
    res = meter.compute()
    assert res["frames"] == 3 and res["pixels"] == 96 and res["sequences"] == 2
    np.testing.assert_array_equal(meter.matrix(), [[48, 0], [16, 32]])
    assert res["mIoU"] == pytest.approx((100 * 48 / 64 + 100 * 32 / 48) / 2)
    rows = meter.per_sequence()
    assert rows[0] == {"sequence": "a", "mIoU": 100.0, "frames": 2, "pixels": 64}
    assert rows[1]["mIoU"] == pytest.approx(25.0)  # class 0: 16/32, class 1: 0/16
    by_group = meter.compute({"a": "clean", "b": "noisy"})
    assert by_group["clean"]["mIoU"] == 100.0 and by_group["noisy"]["frames"] == 1
    classes = meter.per_class(["background", "object"])
    assert classes[1] == {
        "class": 1,
        "name": "object",
        "IoU": pytest.approx(200 / 3),
        "gt_pixels": 48,
        "pred_pixels": 32,
    }


# =========================================================================== merging shards


def simulate(num_sequences: int = 6, h: int = 36, w: int = 52, frames: int = 4):
    """Sequences of (seq_id, flows, valids, gts, preds) from real trajectories and noisy labels."""
    rng = np.random.default_rng(11)
    out = []
    names = ["translation", "rotation", "scaling", "occlusion", "gaussian_noise"]
    for i in range(num_sequences):
        name = names[i % len(names)]
        traj = P.make_trajectory(name, 1 + i % 6, rng, h, w, frames)
        source = random_blobs(rng, h, w, (0, 1, 2))
        gts = [P.warp_label(source, traj.affines[k]) for k in range(frames)]
        preds = [
            np.where(rng.random((h, w)) < 0.05, rng.integers(0, 3, (h, w)), np.where(g == 255, 0, g)).astype(np.uint8)
            for g in gts
        ]
        if i == 2:
            gts = [np.zeros((h, w), np.uint8) for _ in gts]  # no band at all: S_boundary NaN
        pairs = [P.pair_correspondence(traj, t) for t in range(frames - 1)]
        out.append((f"seq{i:02d}", (name, traj.severity), pairs, gts, preds))
    return out


def run(sequences):
    stab, conf = StabilityMeter(), ConfusionMeter(3)
    for seq_id, _, pairs, gts, preds in sequences:
        for t, (flow, valid) in enumerate(pairs):
            stab.update(seq_id, t, preds[t], preds[t + 1], flow, valid, gts[t])
        for k in range(len(gts)):
            conf.update(seq_id, preds[k], gts[k])
    return stab, conf


def roundtrip(meter):
    return type(meter).from_state_dict(json.loads(json.dumps(meter.state_dict())))


@pytest.mark.parametrize("split", [[3, 3], [1, 2, 3], [4, 1, 1]])
def test_merged_shards_equal_a_single_run_exactly(split):
    sequences = simulate()
    groups = {seq_id: group for seq_id, group, *_ in sequences}
    single_s, single_c = run(sequences)
    expected = (summarize(single_s, single_c), summarize(single_s, single_c, groups), sequence_rows(single_s, single_c))
    bounds = np.cumsum([0, *split])
    shards = [run(sequences[a:b]) for a, b in itertools.pairwise(bounds)]
    shards = [(roundtrip(s), roundtrip(c)) for s, c in shards]
    for order in (list(range(len(shards))), list(reversed(range(len(shards))))):
        stab, conf = StabilityMeter(), ConfusionMeter(3)
        for i in order:
            stab.merge(shards[i][0])
            conf = conf + shards[i][1]
        got = (summarize(stab, conf), summarize(stab, conf, groups), sequence_rows(stab, conf))
        assert same(got, expected)
        assert stab.state_dict() == single_s.state_dict() and conf.state_dict() == single_c.state_dict()
    assert math.isnan(expected[2][2]["S_boundary"]) and not math.isnan(expected[0]["S_boundary"])


def test_merge_errors_and_state_errors():
    a, b = StabilityMeter(), StabilityMeter()
    zero_flow_pair(a, "x", 0, 16, 16)
    zero_flow_pair(b, "x", 0, 16, 16)
    with pytest.raises(ValueError, match="1 pair\\(s\\) counted in both meters, e.g. t=0 of 'x'"):
        a.merge(b)
    with pytest.raises(
        ValueError, match=r"cannot merge meters with \(band_width, ignore_label\) \(15, 255\) and \(5, 255\)"
    ):
        a.merge(StabilityMeter(band_width=5))
    c1, c2 = ConfusionMeter(2), ConfusionMeter(2)
    c1.update("x", PRED_T, PRED_T)
    c2.update("x", PRED_T, PRED_T)
    with pytest.raises(ValueError, match="sequence\\(s\\) in both meters, e.g. 'x'"):
        c1.merge(c2)
    with pytest.raises(ValueError, match=r"\(num_classes, ignore_label\) \(2, 255\) and \(3, 255\)"):
        c1.merge(ConfusionMeter(3))
    with pytest.raises(ValueError, match="not a stabbench.metrics.StabilityMeter state"):
        StabilityMeter.from_state_dict(c1.state_dict())
    state = a.state_dict()
    state["version"] = 99
    with pytest.raises(ValueError, match="version 99 is not supported"):
        StabilityMeter.from_state_dict(state)


# =========================================================================== end to end


def test_ground_truth_as_prediction_on_a_rendered_sequence():
    """Masks rendered by perturbations, used as predictions: S is near (not exactly) 100.

    warp_label samples the source by nearest neighbour independently per frame, so labels
    can differ by one pixel along edges; the stability rate must still be very high.
    """
    if DAVIS_MASK.is_file():
        source = (cv2.imread(str(DAVIS_MASK), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
    else:
        source = np.zeros((480, 854), np.uint8)
        cv2.ellipse(source, (427, 240), (150, 100), 0, 0, 360, 1, -1)
    source = cv2.resize(source, (214, 120), interpolation=cv2.INTER_NEAREST)
    traj = P.make_trajectory("rotation", 3, np.random.default_rng(0), 120, 214, 5)
    gts = [P.warp_label(source, a) for a in traj.affines]
    stab = StabilityMeter()
    for t in range(4):
        stab.update("s", t, gts[t], gts[t + 1], *P.pair_correspondence(traj, t), gts[t])
    res = stab.compute()
    assert res["S_global"] > 99.0 and 90.0 < res["S_boundary"] <= 100.0
    assert res["S_global"] > res["S_boundary"]
