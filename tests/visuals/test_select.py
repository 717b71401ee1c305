"""Worst-N selection by S_boundary."""

from __future__ import annotations

import pytest

from stabbench.visuals import worst_sequences


def test_lowest_first_ties_by_id_nothing_counted_last() -> None:
    rows = [{"sequence": s, "S_boundary": v} for s, v in
            [("s0", 90.0), ("s1", None), ("s2", 80.0), ("s3", float("nan")), ("s4", 95.0), ("s5", 80.0)]]
    assert [r["sequence"] for r in worst_sequences(rows, 6)] == ["s2", "s5", "s0", "s4", "s1", "s3"]
    assert [r["sequence"] for r in worst_sequences(rows, 2)] == ["s2", "s5"]
    assert [r["sequence"] for r in worst_sequences(rows, 2, metric="S_global")] == ["s0", "s1"]  # no S_global: id order
    with pytest.raises(ValueError):
        worst_sequences(rows, -1)
