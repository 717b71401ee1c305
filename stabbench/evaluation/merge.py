"""Merging the results of ``stabbench eval --shard i/n`` runs into the single-run counts (pure)."""

from __future__ import annotations

from typing import Sequence

from stabbench.errors import DataError
from stabbench.evaluation.state import EvalState

#: What must be equal between shards of one evaluation: (section, key) of ``results.json``.
SHARD_IDENTITY = (
    ("model", "id"),
    ("model", "sha256"),
    ("model", "preprocess"),
    ("model", "weights_sha256"),
    ("set", "sha256"),
    ("set", "protocol_version"),
    ("settings", "boundary_width"),
)


def merge_shards(parts: Sequence[tuple[str, dict]]) -> tuple[EvalState, dict]:
    """Merge ``(name, results)`` of the shards of one evaluation -> ``(state, first results)``.

    Refuses (:class:`DataError` naming the shard) shards of another model, set,
    pre/post-processing or band width, overlapping shards, and a set of shards that does not
    cover ``i/n`` for ``i = 0..n-1`` exactly once.
    """
    if not parts:
        raise DataError(None, "no shards to merge")
    first_name, first = parts[0]
    for name, part in parts[1:]:
        for section, key in SHARD_IDENTITY:
            if part.get(section, {}).get(key) != first.get(section, {}).get(key):
                raise DataError(name, f"{section} {key} differs from {first_name}: not shards of one evaluation")
    state = _state(first_name, first)
    for name, part in parts[1:]:
        try:
            state = state.merge(_state(name, part))
        except ValueError as exc:
            raise DataError(name, str(exc)) from None
    try:
        shards = sorted((int(p["settings"]["shard"][0]), int(p["settings"]["shard"][1])) for _, p in parts)
    except (KeyError, TypeError, ValueError, IndexError):
        raise DataError(first_name, "malformed settings.shard in a shard's results") from None
    n = shards[0][1]
    if shards != [(i, n) for i in range(n)]:
        raise DataError(first_name, f"shards {shards} do not cover i/{n} for i = 0..{n - 1} exactly once")
    return state, first


def _state(name: str, results: dict) -> EvalState:
    try:
        return EvalState.from_state_dict(results["state"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise DataError(name, f"malformed counts in results.json ({type(exc).__name__}: {exc})") from None


def merge_states(states: Sequence[dict]) -> EvalState:
    """Merge the count states (``EvalState.state_dict()``) of disjoint shards, in the order given."""
    merged = EvalState.from_state_dict(states[0])
    for state in states[1:]:
        merged = merged.merge(EvalState.from_state_dict(state))
    return merged
