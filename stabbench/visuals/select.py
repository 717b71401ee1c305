"""Which sequences of a result to show."""

from __future__ import annotations

import math


def _sort_value(row: dict, metric: str) -> float:
    value = row.get(metric)
    return math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def worst_sequences(per_sequence: list[dict], n: int, metric: str = "S_boundary") -> list[dict]:
    """The ``n`` rows of ``results.json["per_sequence"]`` with the lowest ``metric``, lowest first;
    ties in sequence id order; rows without a value (``None``/NaN: nothing counted) last."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return sorted(per_sequence, key=lambda row: (_sort_value(row, metric), str(row["sequence"])))[:n]
