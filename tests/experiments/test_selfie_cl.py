"""The statistics and data choices of ``experiments/selfie_cl.py`` (no training: pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import selfie_cl as exp


def test_frame_confusion_counts_by_hand():
    gt = np.array([[0, 0, 255], [1, 1, 0]], np.uint8)  # 255 in a DAVIS mask is foreground
    pred = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    # rows: gt 0 / 1, columns: pred 0 / 1
    expected = np.array([[2, 1], [1, 2]])
    np.testing.assert_array_equal(exp.frame_confusion(pred, gt), expected)


def test_pooled_miou_is_the_mean_of_pooled_class_ious():
    cms = np.array([[[8, 2], [0, 0]], [[0, 0], [1, 3]]])  # summed: [[8, 2], [1, 3]]
    iou_bg, iou_fg = 8 / (8 + 2 + 1), 3 / (3 + 2 + 1)
    assert exp.pooled_miou_stat(cms) == pytest.approx(100 * (iou_bg + iou_fg) / 2, abs=1e-12)


def test_paired_bootstrap_of_identical_arms_is_zero():
    rng = np.random.default_rng(1)
    ref = rng.normal(95, 2, size=(3, 20))
    out = exp.paired_bootstrap(ref.copy(), ref, exp.nanmean_stat, np.random.default_rng(0), 300)
    assert out["diff"] == 0 and out["ci95"] == [0.0, 0.0]


def test_paired_bootstrap_of_a_constant_shift_is_that_shift():
    ref = np.random.default_rng(2).normal(95, 2, size=(3, 20))
    out = exp.paired_bootstrap(ref + 0.25, ref, exp.nanmean_stat, np.random.default_rng(0), 300)
    assert out["diff"] == pytest.approx(0.25, abs=1e-12)
    assert out["ci95"] == pytest.approx([0.25, 0.25], abs=1e-12)


def test_paired_bootstrap_interval_covers_the_mean_and_is_seeded():
    rng = np.random.default_rng(3)
    ref = rng.normal(95, 2, size=(3, 40))
    arm = ref + rng.normal(0.5, 1.0, size=ref.shape)
    a = exp.paired_bootstrap(arm, ref, exp.nanmean_stat, np.random.default_rng(0), 500)
    b = exp.paired_bootstrap(arm, ref, exp.nanmean_stat, np.random.default_rng(0), 500)
    assert a == b
    assert a["diff"] == pytest.approx(float((arm - ref).mean()), abs=1e-12)
    lo, hi = a["ci95"]
    assert lo < a["diff"] < hi and hi - lo < 1.0


def test_pair_rates_from_a_video_state():
    # rows: [video, t, c, n, c_b, n_b, c_b0, n_b0]
    results = {"state": {"m": {"pairs": [["v", 1, 9, 10, 0, 0, 0, 0], ["v", 0, 3, 4, 1, 2, 1, 2]]}}}
    np.testing.assert_allclose(exp.pair_rates(results, "m", "S_global"), [75.0, 90.0])
    np.testing.assert_allclose(exp.pair_rates(results, "m", "S_boundary"), [50.0, np.nan])


@pytest.mark.parametrize("n_frames", [43, 50, 80, 90])
def test_training_eval_frames_are_not_labelled_frames(n_frames):
    labelled = set(exp.label_indices(n_frames, 10))
    picked = exp.train_eval_indices(n_frames, 10, 2)
    assert len(picked) == 2 and not labelled & set(picked)
    assert all(0 < i < n_frames for i in picked)


def test_default_output_is_outside_the_repository_and_control_is_required():
    args = exp.parse_args(["--seeds", "0,1"])
    assert exp.REPO not in args.out.resolve().parents and args.seed_list == [0, 1]
    with pytest.raises(SystemExit):
        exp.parse_args(["--arms", "cl"])
