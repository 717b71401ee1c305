"""S_global and S_boundary accumulated over sequences: :class:`StabilityMeter`.

    >>> meter = StabilityMeter()                              # band width 15, ignore 255
    >>> for seq in synthetic_set:                             # doctest: +SKIP
    ...     gt = seq.masks()
    ...     for t, flow, valid in seq.pairs():
    ...         meter.update(seq.id, t, pred[t], pred[t + 1], flow, valid, gt[t])
    >>> meter.compute()["S_global"]                           # doctest: +SKIP

Aggregation (method.md section 3): a pair's rate is ``100 * consistent / tracked``; a
sequence's S is the mean of its pairs' rates; the set's S is the mean over sequences.
A pair with no tracked pixel in the metric's region (e.g. an empty boundary band) is
**skipped** for that metric: it adds no term to its sequence's mean. A sequence with no
counted pair has S = NaN and is left out of the set's mean (and reported in
``*_sequences``). The pooled variants ``S_*_pooled = 100 * sum consistent / sum tracked``
are extra.

Diagnostics (they change neither S): ``S_boundary_no_gt_rule`` is S_boundary computed
the same way over the band's pixels *before* the ground-truth agreement rule
(docs/metrics.md), and ``gt_rule_removed_fraction`` the share (0-1, pooled over pairs) of
those band pixels the rule removed.

State: integer counts per ``(sequence id, pair t)``, so shards merge by union and
:meth:`StabilityMeter.compute` (which sorts by sequence then pair) gives bit-identical
results whatever the merge order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import NamedTuple

import numpy as np

import stabbench.metrics.functional as F
from stabbench.metrics._state import check_header, check_sequence_id, group_ids


class PairCounts(NamedTuple):
    """The counts of one pair ``(t, t+1)`` of one sequence."""

    seq_id: str
    t: int
    consistent: int
    tracked: int
    boundary_consistent: int
    boundary_tracked: int
    boundary_consistent_no_gt_rule: int
    boundary_tracked_no_gt_rule: int


_NUM_COUNTS = len(PairCounts._fields) - 2


class StabilityMeter:
    """Stability rates S_global and S_boundary (percent) over pairs of many sequences.

    Args:
        band_width: width (px, odd) of the boundary band, :func:`~stabbench.metrics.functional.boundary_band`.
        ignore_label: ground-truth label that is not an object (its edges are not object edges).
    """

    higher_is_better = True
    STATE_FORMAT = "stabbench.metrics.StabilityMeter"
    STATE_VERSION = 2  # 2: six counts per pair (the band before the ground-truth agreement rule)

    def __init__(self, band_width: int = F.BAND_WIDTH, ignore_label: int = F.IGNORE_LABEL):
        F.boundary_band(np.zeros((1, 1), np.uint8), band_width, ignore_label)  # validates both
        self.band_width = int(band_width)
        self.ignore_label = int(ignore_label)
        self._pairs: dict[tuple[str, int], tuple[int, ...]] = {}  # PairCounts fields after (seq_id, t)

    def __repr__(self) -> str:
        return (
            f"StabilityMeter(band_width={self.band_width}, ignore_label={self.ignore_label}, pairs={len(self._pairs)})"
        )

    # -------------------------------------------------------------- accumulate

    def prepare(
        self, flow: np.ndarray, valid: np.ndarray, gt_t: np.ndarray, gt_t1: np.ndarray | None = None
    ) -> F.PairGeometry:
        """The prediction-independent part of a pair (targets, band); reuse it across models."""
        return F.pair_geometry(flow, valid, gt_t, self.band_width, self.ignore_label, gt_t1)

    def update(
        self,
        seq_id: str,
        t: int,
        pred_t: np.ndarray,
        pred_t1: np.ndarray,
        flow: np.ndarray,
        valid: np.ndarray,
        gt_t: np.ndarray,
        gt_t1: np.ndarray | None = None,
    ) -> PairCounts:
        """Count the pair ``(t, t+1)`` of sequence ``seq_id``.

        Args:
            pred_t, pred_t1: ``(H, W)`` integer predicted labels of frames ``t``, ``t+1``.
            flow, valid: the pair's ``(H, W, 2)`` float32 forward flow and ``(H, W)`` bool
                validity (as ``SyntheticSequence.flow(t)`` gives them).
            gt_t: ``(H, W)`` ground truth of frame ``t`` (locates the boundary band).
            gt_t1: ``(H, W)`` ground truth of frame ``t+1``; when given, pixels whose
                ground-truth label the correspondence does not preserve are not tracked
                (see :func:`~stabbench.metrics.functional.pair_geometry`).

        Raises:
            ValueError: bad shapes/dtypes, or ``(seq_id, t)`` already counted.
        """
        return self.update_prepared(seq_id, t, pred_t, pred_t1, self.prepare(flow, valid, gt_t, gt_t1))

    def update_prepared(
        self, seq_id: str, t: int, pred_t: np.ndarray, pred_t1: np.ndarray, pair: F.PairGeometry
    ) -> PairCounts:
        """:meth:`update` with a :meth:`prepare`-d pair (band width must match this meter's)."""
        key = self._key(seq_id, t)
        if (pair.band_width, pair.ignore_label) != (self.band_width, self.ignore_label):
            raise ValueError(
                f"pair prepared with (band_width, ignore_label) {(pair.band_width, pair.ignore_label)}, "
                f"meter has {(self.band_width, self.ignore_label)}"
            )
        counts = F.pair_counts(pred_t, pred_t1, pair)
        self._pairs[key] = counts
        return PairCounts(*key, *counts)

    def _key(self, seq_id: str, t: int) -> tuple[str, int]:
        check_sequence_id(seq_id)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"pair index t must be a non-negative int, got {t!r}")
        key = (seq_id, int(t))
        if key in self._pairs:
            raise ValueError(f"pair t={t} of sequence {seq_id!r} was already counted")
        return key

    def reset(self) -> None:
        self._pairs.clear()

    # -------------------------------------------------------------- merge / state

    def _check_compatible(self, other: StabilityMeter) -> None:
        if not isinstance(other, StabilityMeter):
            raise TypeError(f"cannot merge a StabilityMeter with {type(other).__name__}")
        mine, theirs = (self.band_width, self.ignore_label), (other.band_width, other.ignore_label)
        if mine != theirs:
            raise ValueError(f"cannot merge meters with (band_width, ignore_label) {mine} and {theirs}")

    def merge(self, other: StabilityMeter) -> StabilityMeter:
        """Add ``other``'s pairs to this meter (in place) and return it.

        Shards must hold disjoint pairs: a pair counted in both raises ``ValueError``.
        """
        self._check_compatible(other)
        overlap = self._pairs.keys() & other._pairs.keys()
        if overlap:
            seq_id, t = min(overlap)
            raise ValueError(f"{len(overlap)} pair(s) counted in both meters, e.g. t={t} of {seq_id!r}")
        self._pairs.update(other._pairs)
        return self

    def __add__(self, other: StabilityMeter) -> StabilityMeter:
        return self.copy().merge(other)

    def copy(self) -> StabilityMeter:
        out = StabilityMeter(self.band_width, self.ignore_label)
        out._pairs = dict(self._pairs)
        return out

    def state_dict(self) -> dict:
        """JSON-serialisable state: settings and one ``[seq_id, t, c, n, c_b, n_b, c_b0, n_b0]`` row per
        pair (``c_b0, n_b0``: the band before the ground-truth agreement rule)."""
        return {
            "format": self.STATE_FORMAT,
            "version": self.STATE_VERSION,
            "band_width": self.band_width,
            "ignore_label": self.ignore_label,
            "pairs": [[*key, *map(int, counts)] for key, counts in sorted(self._pairs.items())],
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> StabilityMeter:
        check_header(state, cls.STATE_FORMAT, cls.STATE_VERSION)
        out = cls(state["band_width"], state["ignore_label"])
        for row in state["pairs"]:
            seq_id, t, *counts = row
            if len(counts) != _NUM_COUNTS or not all(isinstance(c, int) and c >= 0 for c in counts):
                raise ValueError(f"bad pair row in state: {row!r}")
            out._pairs[out._key(seq_id, t)] = tuple(counts)
        return out

    # -------------------------------------------------------------- results

    @property
    def pairs(self) -> list[PairCounts]:
        """All counted pairs, sorted by sequence id then ``t``."""
        return [PairCounts(*key, *counts) for key, counts in sorted(self._pairs.items())]

    @property
    def sequence_ids(self) -> list[str]:
        return sorted({seq_id for seq_id, _ in self._pairs})

    def per_sequence(self) -> list[dict]:
        """One row per sequence (sorted by id): its S values (percent) and counts.

        Keys: ``sequence``, ``S_global``, ``S_boundary``, ``pairs``, ``tracked``,
        ``boundary_pairs`` (pairs with a non-empty tracked band), ``boundary_tracked``, and the
        diagnostics ``S_boundary_no_gt_rule``, ``boundary_tracked_no_gt_rule``.
        """
        rows: dict[str, list[PairCounts]] = {}
        for pair in self.pairs:
            rows.setdefault(pair.seq_id, []).append(pair)
        return [_sequence_row(seq_id, pairs) for seq_id, pairs in rows.items()]

    def compute(self, groups: Mapping[str, Hashable] | None = None) -> dict:
        """Set-level results (percent); with ``groups``, a dict of them per group.

        Keys: ``S_global``, ``S_boundary`` (mean over sequences of per-sequence means),
        ``S_global_pooled``, ``S_boundary_pooled``, ``sequences``, ``pairs``, ``tracked``,
        ``boundary_tracked``, ``global_skipped_pairs``, ``boundary_skipped_pairs``
        (pairs without tracked pixels in the region), ``boundary_pairs`` (pairs that counted
        for S_boundary), ``boundary_sequences`` (sequences with a defined S_boundary, i.e.
        that counted for it), and the diagnostics ``S_boundary_no_gt_rule``,
        ``boundary_tracked_no_gt_rule``, ``gt_rule_removed_fraction`` (module docstring).

        Args:
            groups: ``{sequence id: group key}`` (e.g. ``(perturbation, severity)``) covering
                every counted sequence; the result is then ``{group key: results}``,
                sorted by key when keys are orderable.
        """
        rows = self.per_sequence()
        if groups is None:
            return _summary(rows)
        by_id = {row["sequence"]: row for row in rows}
        return {key: _summary([by_id[i] for i in ids]) for key, ids in group_ids(by_id, groups).items()}


def _sequence_row(seq_id: str, pairs: list[PairCounts]) -> dict:
    counts = np.array([p[2:] for p in pairs], dtype=np.int64).reshape(-1, _NUM_COUNTS)
    global_rates = F.stability_rate(counts[:, 0], counts[:, 1])
    boundary_rates = F.stability_rate(counts[:, 2], counts[:, 3])
    no_rule_rates = F.stability_rate(counts[:, 4], counts[:, 5])
    return {
        "sequence": seq_id,
        "S_global": _nanmean(global_rates),
        "S_boundary": _nanmean(boundary_rates),
        "S_boundary_no_gt_rule": _nanmean(no_rule_rates),
        "pairs": len(pairs),
        "global_pairs": int(np.count_nonzero(counts[:, 1])),
        "boundary_pairs": int(np.count_nonzero(counts[:, 3])),
        "consistent": int(counts[:, 0].sum()),
        "tracked": int(counts[:, 1].sum()),
        "boundary_consistent": int(counts[:, 2].sum()),
        "boundary_tracked": int(counts[:, 3].sum()),
        "boundary_tracked_no_gt_rule": int(counts[:, 5].sum()),
    }


def _summary(rows: list[dict]) -> dict:
    def total(key: str) -> int:
        return sum(row[key] for row in rows)

    return {
        "S_global": _nanmean([row["S_global"] for row in rows]),
        "S_boundary": _nanmean([row["S_boundary"] for row in rows]),
        "S_global_pooled": F.stability_rate(total("consistent"), total("tracked")),
        "S_boundary_pooled": F.stability_rate(total("boundary_consistent"), total("boundary_tracked")),
        "sequences": len(rows),
        "boundary_sequences": sum(not np.isnan(row["S_boundary"]) for row in rows),
        "pairs": total("pairs"),
        "boundary_pairs": total("boundary_pairs"),
        "tracked": total("tracked"),
        "boundary_tracked": total("boundary_tracked"),
        "global_skipped_pairs": total("pairs") - total("global_pairs"),
        "boundary_skipped_pairs": total("pairs") - total("boundary_pairs"),
        "S_boundary_no_gt_rule": _nanmean([row["S_boundary_no_gt_rule"] for row in rows]),
        "boundary_tracked_no_gt_rule": total("boundary_tracked_no_gt_rule"),
        "gt_rule_removed_fraction": _removed_fraction(total("boundary_tracked"), total("boundary_tracked_no_gt_rule")),
    }


def _removed_fraction(kept: int, before: int) -> float:
    """``1 - kept / before`` (0-1); NaN when nothing was there before."""
    return 1.0 - kept / before if before else float("nan")


def _nanmean(values) -> float:
    """Mean of the non-NaN values (float64, fixed order); NaN when there is none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
