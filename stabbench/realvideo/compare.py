"""Paired comparison with a reference: per-pair differences of S on identical pixels, bootstrap intervals.

Every compared model is counted on exactly the pixels the reference is counted on (the same
tracked pixels, the same band), so the difference of two models' rates on a pair is a
paired difference. Aggregation follows :mod:`stabbench.metrics.stability`: a video's S is the
mean of its pairs' rates (pairs with nothing tracked in the region skipped, for every model
alike), the overall S the mean over videos; the differences are aggregated the same way, so
``delta = S_model - S_reference`` exactly.

Interval: a percentile bootstrap (``resamples`` draws, 95 %). Per video: the video's pairs
are resampled with replacement. Overall: the videos are resampled with replacement, then the
pairs within each drawn video (a two-stage, hierarchical bootstrap). The draws come from
``numpy.random.default_rng([seed, metric, video])`` (per video) and
``default_rng([seed, metric, OVERALL])`` (overall), so an interval does not depend on the
order of models or videos. Consecutive pairs of a video are correlated, so the per-video
interval is optimistic; the overall one, whose first stage resamples videos, is the one to
trust. A verdict is given only where the interval excludes 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from stabbench.metrics import StabilityMeter
from stabbench.metrics.functional import stability_rate

METRICS = ("S_global", "S_boundary")
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
MORE, LESS, UNCLEAR = "more stable", "less stable", "no clear difference"
_OVERALL = 0xFFFFFFFF


def pair_rates(meter: StabilityMeter, video: str, metric: str) -> np.ndarray:
    """``(P,)`` float64 rates (percent) of the video's pairs in ``t`` order; NaN where nothing was tracked."""
    rows = np.array([p[2:] for p in meter.pairs if p.seq_id == video], np.int64).reshape(-1, 4)
    column = 0 if metric == "S_global" else 2
    return np.asarray(stability_rate(rows[:, column], rows[:, column + 1]), np.float64).reshape(-1)


def paired_differences(model: StabilityMeter, reference: StabilityMeter, video: str, metric: str) -> np.ndarray:
    """Per-pair ``rate_model - rate_reference`` of one video, pairs with nothing tracked left out."""
    diff = pair_rates(model, video, metric) - pair_rates(reference, video, metric)
    return diff[~np.isnan(diff)]


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def video_interval(diffs: np.ndarray, rng: np.random.Generator, resamples: int,
                   confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean of ``diffs`` (pairs resampled); NaNs for no pair."""
    if diffs.size == 0:
        return float("nan"), float("nan")
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    return _percentile_interval(means, confidence)


def overall_interval(diffs_by_video: list[np.ndarray], rng: np.random.Generator, resamples: int,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean over videos of per-video mean differences (videos, then pairs, resampled)."""
    diffs_by_video = [d for d in diffs_by_video if d.size]
    if not diffs_by_video:
        return float("nan"), float("nan")
    n = len(diffs_by_video)
    means = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, n, size=n)
        means[b] = np.mean([_resampled_mean(diffs_by_video[v], rng) for v in drawn])
    return _percentile_interval(means, confidence)


def _resampled_mean(diffs: np.ndarray, rng: np.random.Generator) -> float:
    return float(diffs[rng.integers(0, diffs.size, size=diffs.size)].mean())


def verdict(lo: float, hi: float) -> str:
    """``more stable`` (interval above 0), ``less stable`` (below 0), else ``no clear difference``."""
    if lo > 0:
        return MORE
    if hi < 0:
        return LESS
    return UNCLEAR


@dataclass(frozen=True)
class Difference:
    """``delta = S_model - S_reference`` (points), its interval, the verdict, and the share of
    pairs on which the reference scored higher (percent of the pairs counted)."""

    delta: float
    lo: float
    hi: float
    verdict: str
    reference_higher: float

    def as_row(self, metric: str) -> dict:
        return {f"d{metric}": self.delta, f"d{metric}_lo": self.lo, f"d{metric}_hi": self.hi,
                f"{metric}_verdict": self.verdict, f"{metric}_reference_higher_pct": self.reference_higher}


def _mean(values) -> float:
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _reference_higher(diffs: list[np.ndarray]) -> float:
    joined = np.concatenate(diffs) if diffs else np.zeros(0)
    return float(100.0 * np.count_nonzero(joined < 0) / joined.size) if joined.size else float("nan")


def compare_video(model: StabilityMeter, reference: StabilityMeter, video: str, metric: str, seed: int,
                  resamples: int = DEFAULT_RESAMPLES) -> Difference:
    """The paired difference on one video (pairs resampled)."""
    diffs = paired_differences(model, reference, video, metric)
    rng = np.random.default_rng([seed, METRICS.index(metric), _key(video)])
    lo, hi = video_interval(diffs, rng, resamples)
    return Difference(_mean(diffs), lo, hi, verdict(lo, hi), _reference_higher([diffs]))


def compare_overall(model: StabilityMeter, reference: StabilityMeter, videos: list[str], metric: str, seed: int,
                    resamples: int = DEFAULT_RESAMPLES) -> Difference:
    """The paired difference over videos (videos, then pairs, resampled)."""
    diffs = [paired_differences(model, reference, v, metric) for v in videos]
    rng = np.random.default_rng([seed, METRICS.index(metric), _OVERALL])
    lo, hi = overall_interval(diffs, rng, resamples)
    return Difference(_mean([_mean(d) for d in diffs]), lo, hi, verdict(lo, hi), _reference_higher(diffs))


__all__ = ["CONFIDENCE", "DEFAULT_RESAMPLES", "Difference", "LESS", "METRICS", "MORE", "UNCLEAR", "compare_overall",
           "compare_video", "overall_interval", "pair_rates", "paired_differences", "verdict", "video_interval"]
