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
