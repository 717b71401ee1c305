"""Shared helpers of the metric classes: id checks and versioned, JSON-serialisable states."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any


def check_sequence_id(seq_id: Any) -> str:
    """Sequence ids are strings (they key JSON states and sort deterministically)."""
    if not isinstance(seq_id, str) or not seq_id:
        raise ValueError(f"sequence id must be a non-empty str, got {seq_id!r}")
    return seq_id


def check_header(state: Mapping, fmt: str, version: int) -> None:
    """Raise ``ValueError`` unless ``state`` is a ``fmt`` state of ``version``."""
    if not isinstance(state, Mapping) or state.get("format") != fmt:
        got = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"not a {fmt} state (format={got!r})")
    if state.get("version") != version:
        raise ValueError(f"{fmt} state version {state.get('version')!r} is not supported (expected {version})")


def group_ids(seq_ids: Iterable[str], groups: Mapping[str, Hashable]) -> dict[Hashable, list[str]]:
    """``{group key: [sequence ids]}``; every id must have a group (``ValueError`` names the missing)."""
    out: dict[Hashable, list[str]] = {}
    missing = []
    for seq_id in seq_ids:
        if seq_id not in groups:
            missing.append(seq_id)
            continue
        out.setdefault(groups[seq_id], []).append(seq_id)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} sequence(s) have no group: {shown}")
    try:
        return dict(sorted(out.items()))
    except TypeError:  # unorderable keys: keep first-seen order (ids are sorted)
        return out
