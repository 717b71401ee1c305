"""The state of an evaluation: mergeable counts, and how a set is split into shards."""

from __future__ import annotations

from dataclasses import dataclass, field

from stabbench.errors import UsageError
from stabbench.metrics import ConfusionMeter, StabilityMeter


@dataclass
class EvalState:
    """Everything an evaluation accumulated: mergeable counts plus bookkeeping.

    ``groups`` maps a sequence id to ``(perturbation, severity)``; ``label_counts`` counts
    predicted labels (for the "one class everywhere" sanity check); ``non_finite`` counts the
    model calls whose output held NaN or Inf; ``warnings`` describe them, each prefixed with
    the sequence id.
    """

    stability: StabilityMeter
    confusion: ConfusionMeter
    groups: dict[str, tuple[str, int]] = field(default_factory=dict)
    label_counts: dict[int, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    non_finite: int = 0

    def merge(self, other: EvalState) -> EvalState:
        overlap = self.groups.keys() & other.groups.keys()
        if overlap:
            raise ValueError(f"shards overlap: sequence {sorted(overlap)[0]} is in both")
        counts = dict(self.label_counts)
        for k, v in other.label_counts.items():
            counts[k] = counts.get(k, 0) + v
        return EvalState(
            self.stability.merge(other.stability),
            self.confusion.merge(other.confusion),
            {**self.groups, **other.groups},
            counts,
            self.warnings + other.warnings,
            self.non_finite + other.non_finite,
        )

    def state_dict(self) -> dict:
        return {
            "stability": self.stability.state_dict(),
            "confusion": self.confusion.state_dict(),
            "groups": {k: list(v) for k, v in sorted(self.groups.items())},
            "label_counts": {str(k): v for k, v in sorted(self.label_counts.items())},
            "warnings": list(self.warnings),
            "non_finite": self.non_finite,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> EvalState:
        return cls(
            StabilityMeter.from_state_dict(state["stability"]),
            ConfusionMeter.from_state_dict(state["confusion"]),
            {k: (v[0], int(v[1])) for k, v in state["groups"].items()},
            {int(k): int(v) for k, v in state["label_counts"].items()},
            list(state["warnings"]),
            int(state.get("non_finite", 0)),
        )


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def shard_indices(num_sequences: int, shard: tuple[int, int]) -> range:
    """Sequences of shard ``(i, n)``: indices ``i, i+n, i+2n, ...`` (balanced over severities)."""
    i, n = shard
    return range(i, num_sequences, n)
