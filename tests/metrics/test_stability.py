"""stabbench.metrics.stability: StabilityMeter aggregation (pairs -> sequences -> set), skipped
pairs, groups, input errors, merging, and a rendered sequence end to end."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

import perturbations as P
from stabbench.metrics import ConfusionMeter, StabilityMeter
from tests.helpers import DAVIS_SAMPLE, PRED_T, const_flow, random_blobs, vertical_edge

# the ground-truth mask of the end-to-end test (an ellipse when the DAVIS sample is absent)
DAVIS_MASK = DAVIS_SAMPLE / "Annotations" / "480p" / "blackswan" / "00000.png"


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
    # without gt_t1 no agreement rule applies: the last two counts equal the boundary counts
    assert meter.update("a", 0, pred_t, pred_t1, flow, valid, edge_gt)[2:] == (15, 16, 3, 4, 3, 4)
    assert meter.update("a", 1, pred_t, pred_t, flow, valid, flat_gt)[2:] == (16, 16, 0, 0, 0, 0)  # skipped
    meter.update("b", 0, pred_t, pred_t, flow, valid, flat_gt)  # no band in any pair
    res = meter.compute()
    assert res["S_boundary"] == 75.0  # a: 75 (its pair 1 skipped); b: NaN, left out
    assert res["boundary_skipped_pairs"] == 2 and res["boundary_sequences"] == 1 and res["boundary_pairs"] == 1
    assert res["sequences"] == 2 and res["pairs"] == 3
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


# =========================================================================== merging


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


# =========================================================================== the ground-truth rule


def reference_pair(pred_t, pred_t1, dx, dy, valid, gt_t, gt_t1, band):
    """Plain-NumPy counts of one pair with integer flow ``(dx, dy)``, pixel by pixel:
    ``(c, n, c_b, n_b, c_b0, n_b0)`` (``*0``: the band before the ground-truth agreement rule)."""
    h, w = gt_t.shape
    counts = [0] * 6
    for y in range(h):
        for x in range(w):
            ty, tx = y + dy, x + dx
            if not (valid[y, x] and 0 <= ty < h and 0 <= tx < w):
                continue
            same = int(pred_t[y, x] == pred_t1[ty, tx])
            if band[y, x]:
                counts[4] += same
                counts[5] += 1
            if gt_t[y, x] != gt_t1[ty, tx]:
                continue
            counts[0] += same
            counts[1] += 1
            if band[y, x]:
                counts[2] += same
                counts[3] += 1
    return tuple(counts)


def test_band_before_the_ground_truth_rule_by_hand():
    """6x8, label 1 from column 4 in frame t, moved right by 1 (dx = 1) in frame t+1 except in
    row 2 where frame t+1's edge is one column further (its nearest-neighbour mask rounded the
    other way): the rule removes pixel (x=4, y=2) only. Band width 3: columns 3-5."""
    gt_t = np.zeros((6, 8), np.uint8)
    gt_t[:, 4:] = 1
    gt_t1 = np.zeros((6, 8), np.uint8)
    gt_t1[:, 5:] = 1
    gt_t1[2, 5] = 0
    flow, valid = const_flow(6, 8, dx=1.0)
    pred_t, pred_t1 = gt_t.copy(), gt_t1.copy()
    pred_t1[4, 5] = 0  # one flip in the band (x=4, y=4 of frame t lands there)
    meter = StabilityMeter(band_width=3)
    counts = meter.update("s", 0, pred_t, pred_t1, flow, valid, gt_t, gt_t1)[2:]
    # tracked: columns 0-6 (column 7 leaves the frame) = 42, minus (4, 2) the rule removes = 41;
    # inconsistent: (4, 4) (the flip) and (4, 2) (1 -> 0, removed by the rule): 40 consistent;
    # band: columns 3-5 = 18 pixels (16 consistent), 17 after the rule (16 consistent)
    assert counts == (40, 41, 16, 17, 16, 18)
    res = meter.compute()
    assert res["S_boundary"] == pytest.approx(100 * 16 / 17)
    assert res["S_boundary_no_gt_rule"] == pytest.approx(100 * 16 / 18)
    assert res["gt_rule_removed_fraction"] == pytest.approx(1 / 18)
    band = np.zeros((6, 8), bool)
    band[:, 3:6] = True
    assert counts == reference_pair(pred_t, pred_t1, 1, 0, valid, gt_t, gt_t1, band)


@pytest.mark.parametrize("seed", range(4))
def test_counts_match_a_plain_numpy_reference(seed):
    """Random label maps (with ignore), random integer flow, random validity and a frame t+1 whose
    ground truth differs from the moved one in scattered pixels; band from boundary_band."""
    from stabbench.metrics import boundary_band

    rng = np.random.default_rng(seed)
    h, w, dx, dy = 14, 17, int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
    gt_t = random_blobs(rng, h, w)
    gt_t1 = np.roll(gt_t, (dy, dx), axis=(0, 1))
    noise = rng.random((h, w)) < 0.1
    gt_t1[noise] = rng.integers(0, 3, (h, w))[noise]
    pred_t, pred_t1 = (np.where(rng.random((h, w)) < 0.2, rng.integers(0, 3, (h, w)), g).astype(np.uint8)
                       for g in (np.where(gt_t == 255, 0, gt_t), np.where(gt_t1 == 255, 0, gt_t1)))
    flow, valid = const_flow(h, w, dx=float(dx), dy=float(dy))
    valid &= rng.random((h, w)) < 0.9
    meter = StabilityMeter(band_width=5)
    got = meter.update("s", 0, pred_t, pred_t1, flow, valid, gt_t, gt_t1)[2:]
    want = reference_pair(pred_t, pred_t1, dx, dy, valid, gt_t, gt_t1, boundary_band(gt_t, 5))
    assert got == want
    assert got[5] >= got[3] and got[4] - got[2] <= got[5] - got[3]  # the rule only removes pixels


def test_no_gt_rule_aggregates_like_s_boundary():
    """Per pair rate -> mean per sequence -> mean over sequences, with its own empty-pair skips."""
    meter = StabilityMeter()
    meter._pairs = {("a", 0): (1, 1, 3, 4, 3, 6), ("a", 1): (1, 1, 0, 0, 1, 2), ("b", 0): (1, 1, 1, 1, 1, 1)}
    res = meter.compute()
    assert res["S_boundary"] == pytest.approx((75 + 100) / 2)
    assert res["S_boundary_no_gt_rule"] == pytest.approx(((50 + 50) / 2 + 100) / 2)
    assert res["gt_rule_removed_fraction"] == pytest.approx(1 - 5 / 9)
    assert res["boundary_pairs"] == 2 and res["boundary_sequences"] == 2
    assert math.isnan(StabilityMeter().compute()["gt_rule_removed_fraction"])


def test_state_round_trips_the_diagnostic_counts_and_refuses_version_1():
    meter = StabilityMeter()
    zero_flow_pair(meter, "x", 0, 16, 9)
    state = meter.state_dict()
    assert state["version"] == 2 and state["pairs"] == [["x", 0, 9, 16, 0, 0, 0, 0]]
    assert StabilityMeter.from_state_dict(state).state_dict() == state
    old = {**state, "version": 1, "pairs": [["x", 0, 9, 16, 0, 0]]}
    with pytest.raises(ValueError, match="version 1 is not supported"):
        StabilityMeter.from_state_dict(old)
    with pytest.raises(ValueError, match="bad pair row"):
        StabilityMeter.from_state_dict({**state, "pairs": [["x", 0, 9, 16, 0, 0]]})


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


def test_ignore_pixels_count_in_s_global_where_the_ground_truth_agrees():
    """An ignore pixel whose target is ignore too is tracked (stability compares predictions);
    one whose target carries a label is removed by the ground-truth rule, like any disagreement."""
    gt_t = np.zeros((4, 6), np.uint8)
    gt_t[:, :2] = 255  # ignore in columns 0-1
    gt_t1 = np.zeros((4, 6), np.uint8)
    gt_t1[:, :2] = 255  # the ignore region did not move; the flow moves everything right by 1
    flow, valid = const_flow(4, 6, dx=1.0)
    pred = np.zeros((4, 6), np.uint8)
    counts = StabilityMeter().update("s", 0, pred, pred, flow, valid, gt_t, gt_t1)
    # column 0 -> 1: ignore to ignore, tracked; column 1 -> 2: ignore to 0, removed; columns 2-4 tracked
    assert (counts.consistent, counts.tracked) == (16, 16)
    assert reference_pair(pred, pred, 1, 0, valid, gt_t, gt_t1, np.zeros((4, 6), bool))[:2] == (16, 16)
