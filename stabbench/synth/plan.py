"""Which sequences a synthetic set holds, and the seed of each.

Sequence ``i`` is fully determined by ``(seed, source index, slot)``: its generator is
``default_rng(SeedSequence(seed, spawn_key=(source_index, slot)))``, so any sequence can be
regenerated alone, in any order (resume, sharding) and gives the same bytes.

Protocols:
    * ``paper``: for each source and each severity 1..6, one perturbation type drawn at
      random (from that sequence's generator): 6 sequences per source.
    * ``grid``: every type at every severity: 30 sequences per source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perturbations import PERTURBATION_NAMES, SEVERITIES

PROTOCOLS = ("paper", "grid")


@dataclass(frozen=True)
class SequencePlan:
    index: int
    source_index: int
    slot: int
    perturbation: str
    severity: int

    def rng(self, seed: int) -> np.random.Generator:
        """The sequence's generator: its trajectory is drawn first, then its noise."""
        return sequence_rng(seed, self.source_index, self.slot)


def sequence_rng(seed: int, source_index: int, slot: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(source_index, slot)))


def plan_sequences(
    num_sources: int,
    protocol: str,
    seed: int,
    perturbations: tuple[str, ...] = PERTURBATION_NAMES,
    severities: tuple[int, ...] = SEVERITIES,
) -> list[SequencePlan]:
    """The ordered list of sequences (source-major)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    plans: list[SequencePlan] = []
    for src in range(num_sources):
        if protocol == "paper":
            for slot, severity in enumerate(severities):
                name = draw_type(seed, src, slot, perturbations)
                plans.append(SequencePlan(len(plans), src, slot, name, severity))
        else:
            for p_idx, name in enumerate(perturbations):
                for s_idx, severity in enumerate(severities):
                    slot = p_idx * len(severities) + s_idx
                    plans.append(SequencePlan(len(plans), src, slot, name, severity))
    return plans


def draw_type(seed: int, source_index: int, slot: int, perturbations: tuple[str, ...]) -> str:
    """The paper protocol's random type for ``(source, slot)``, from a generator of its own."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(source_index, slot, 0)))
    return perturbations[int(rng.integers(len(perturbations)))]
