"""Paired differences and bootstrap intervals (stabbench.realvideo.compare): exact deltas,
determinism, an interval that excludes 0 for a clearly worse model, none for an equal one."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.metrics import StabilityMeter
from stabbench.realvideo.compare import (
    LESS,
    MORE,
    UNCLEAR,
    compare_overall,
    compare_video,
    overall_interval,
    paired_differences,
    verdict,
    video_interval,
)


def meter_of(counts: dict[str, list[tuple[int, int, int, int]]]) -> StabilityMeter:
    """A meter holding these per-pair counts (consistent, tracked, band consistent, band tracked)."""
    meter = StabilityMeter()
    meter._pairs = {(vid, t): c for vid, rows in counts.items() for t, c in enumerate(rows)}
    return meter


def noisy_meters(seed: int, worse_by: float, videos: int = 5, pairs: int = 20):
    """A reference and a model on the same tracked pixels; the model flips ``worse_by`` more of them."""
    rng = np.random.default_rng(seed)
    ref, model = {}, {}
    for v in range(videos):
        tracked = 10_000
        base = rng.uniform(0.90, 0.98, pairs)
        ref[f"v{v}"] = [(int(tracked * b), tracked, int(tracked * b), tracked) for b in base]
        worse = np.clip(base - worse_by + rng.normal(0, 0.01, pairs), 0, 1)
        model[f"v{v}"] = [(int(tracked * w), tracked, int(tracked * w), tracked) for w in worse]
    return meter_of(model), meter_of(ref), sorted(ref)


def test_paired_difference_by_hand() -> None:
    ref = meter_of({"a": [(90, 100, 9, 10), (80, 100, 0, 0)]})
    model = meter_of({"a": [(85, 100, 7, 10), (70, 100, 0, 0)]})
    np.testing.assert_allclose(paired_differences(model, ref, "a", "S_global"), [-5.0, -10.0])
    np.testing.assert_allclose(paired_differences(model, ref, "a", "S_boundary"), [-20.0])  # empty band: skipped
    d = compare_video(model, ref, "a", "S_global", seed=0, resamples=500)
    assert d.delta == pytest.approx(-7.5) and d.reference_higher == 100.0
    assert -10.0 <= d.lo <= d.hi <= -5.0 and d.verdict == LESS


def test_delta_equals_the_difference_of_the_meters_s() -> None:
    model, ref, videos = noisy_meters(0, 0.02)
    for metric in ("S_global", "S_boundary"):
        d = compare_overall(model, ref, videos, metric, seed=0, resamples=300)
        assert d.delta == pytest.approx(model.compute()[metric] - ref.compute()[metric], abs=1e-9)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    model, ref, videos = noisy_meters(1, 0.005)
    a = compare_overall(model, ref, videos, "S_boundary", seed=7, resamples=400)
    b = compare_overall(model, ref, videos, "S_boundary", seed=7, resamples=400)
    c = compare_overall(model, ref, videos, "S_boundary", seed=8, resamples=400)
    assert a == b and (a.lo, a.hi) != (c.lo, c.hi)
    # the order of the videos does not change the interval (draws keyed per video / overall)
    assert compare_video(model, ref, "v3", "S_global", seed=7) == compare_video(model, ref, "v3", "S_global", seed=7)


def test_interval_excludes_zero_for_a_clearly_worse_model_only() -> None:
    model, ref, videos = noisy_meters(2, 0.03)
    worse = compare_overall(model, ref, videos, "S_boundary", seed=0, resamples=1000)
    assert worse.hi < 0 and worse.verdict == LESS
    better = compare_overall(ref, model, videos, "S_boundary", seed=0, resamples=1000)
    assert better.lo > 0 and better.verdict == MORE
    same, ref2, _ = noisy_meters(3, 0.0)
    equal = compare_overall(same, ref2, videos, "S_boundary", seed=0, resamples=1000)
    assert equal.lo < 0 < equal.hi and equal.verdict == UNCLEAR


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    """Coverage of the per-video percentile interval for i.i.d. pair differences (normal, mean 1)."""
    covered = 0
    for trial in range(200):
        diffs = np.random.default_rng(1000 + trial).normal(1.0, 2.0, 40)
        lo, hi = video_interval(diffs, np.random.default_rng(trial), 500)
        covered += lo <= 1.0 <= hi
    assert 0.88 <= covered / 200 <= 0.99  # binomial sd about 1.5 % around ~0.93-0.95


def test_edge_cases() -> None:
    assert np.isnan(video_interval(np.zeros(0), np.random.default_rng(0), 100)).all()
    assert np.isnan(overall_interval([np.zeros(0)], np.random.default_rng(0), 100)).all()
    assert verdict(0.1, 2) == MORE and verdict(-2, -0.1) == LESS and verdict(-1, 1) == UNCLEAR
    assert verdict(0.0, 1.0) == UNCLEAR  # touching 0 is not excluding it
