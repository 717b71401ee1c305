"""stabbench.metrics.functional: pixel targets of a flow, pair consistency, the boundary band,
the confusion matrix and IoU; hand-counted cases and loop references."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stabbench.metrics import (
    ConfusionMeter,
    boundary_band,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    object_edges,
    pair_consistency,
    pair_counts,
    pair_geometry,
    stability_rate,
    target_indices,
)
from tests.helpers import PRED_T, const_flow, random_blobs, vertical_edge

# =========================================================================== target_indices


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
    assert pair_counts(PRED_T, moved_right(PRED_T), pair) == (12, 12, 0, 0, 0, 0)


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
