"""stabbench.synth.plan: the paper and grid protocols' plans, subsets, seeding."""

from __future__ import annotations

from collections import Counter

import pytest

import perturbations as P
from stabbench.synth.plan import plan_sequences


def test_paper_plan_one_type_per_severity() -> None:
    plans = plan_sequences(200, "paper", seed=3)
    assert len(plans) == 1200
    assert [p.index for p in plans] == list(range(1200))
    for src in range(200):
        mine = [p for p in plans if p.source_index == src]
        assert [p.severity for p in mine] == list(P.SEVERITIES)
        assert [p.slot for p in mine] == list(range(6))
    counts = Counter(p.perturbation for p in plans)
    assert set(counts) == set(P.PERTURBATION_NAMES)
    for n in counts.values():  # uniform draw: 240 expected, sd ~13.9
        assert abs(n - 240) < 5 * 13.9
    # the draw depends on the seed, and a prefix of sources does not depend on their number
    assert [p.perturbation for p in plan_sequences(200, "paper", seed=4)] != [p.perturbation for p in plans]
    assert plan_sequences(7, "paper", seed=3) == plans[:42]


def test_grid_plan_and_subsets() -> None:
    plans = plan_sequences(2, "grid", seed=0)
    assert len(plans) == 60
    for src in (0, 1):
        mine = [(p.perturbation, p.severity) for p in plans if p.source_index == src]
        assert sorted(mine) == sorted((n, s) for n in P.PERTURBATION_NAMES for s in P.SEVERITIES)
        assert sorted(p.slot for p in plans if p.source_index == src) == list(range(30))
    sub = plan_sequences(3, "paper", 0, ("rotation", "occlusion"), (2, 5))
    assert len(sub) == 6 and {p.perturbation for p in sub} <= {"rotation", "occlusion"}
    assert [p.severity for p in sub] == [2, 5] * 3
    with pytest.raises(ValueError, match="paper, grid"):
        plan_sequences(1, "random", 0)
