"""Tables that join the two meters: rows per sequence and results per group.

Groups are whatever the caller keys sequences by, e.g. ``{seq.id: (seq.perturbation,
seq.severity) for seq in synthetic_set}``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from stabbench.metrics._state import group_ids
from stabbench.metrics.confusion import ConfusionMeter
from stabbench.metrics.stability import StabilityMeter

_NAN = float("nan")


def sequence_rows(
    stability: StabilityMeter,
    confusion: ConfusionMeter | None = None,
    groups: Mapping[str, Hashable] | None = None,
) -> list[dict]:
    """One row per sequence (sorted by id; union of both meters' sequences).

    Keys: ``sequence``, ``group`` (only with ``groups``), ``S_global``, ``S_boundary``,
    ``mIoU`` (percent; NaN where a meter lacks the sequence), ``pairs``,
    ``boundary_pairs``, ``tracked``, ``boundary_tracked``, ``frames``.
    """
    stab = {row["sequence"]: row for row in stability.per_sequence()}
    conf = {row["sequence"]: row for row in confusion.per_sequence()} if confusion is not None else {}
    ids = sorted(stab.keys() | conf.keys())
    if groups is not None:
        group_ids(ids, groups)  # raises on a sequence without a group
    rows = []
    for seq_id in ids:
        s, c = stab.get(seq_id, {}), conf.get(seq_id, {})
        row = {"sequence": seq_id}
        if groups is not None:
            row["group"] = groups[seq_id]
        row.update(
            S_global=s.get("S_global", _NAN),
            S_boundary=s.get("S_boundary", _NAN),
            mIoU=c.get("mIoU", _NAN),
            pairs=s.get("pairs", 0),
            boundary_pairs=s.get("boundary_pairs", 0),
            tracked=s.get("tracked", 0),
            boundary_tracked=s.get("boundary_tracked", 0),
            frames=c.get("frames", 0),
        )
        rows.append(row)
    return rows


def summarize(
    stability: StabilityMeter,
    confusion: ConfusionMeter | None = None,
    groups: Mapping[str, Hashable] | None = None,
) -> dict:
    """:meth:`StabilityMeter.compute` joined with ``mIoU`` and ``IoU`` of :meth:`ConfusionMeter.compute`.

    Without ``groups``: one flat dict. With ``groups``: ``{group key: dict}`` over the
    groups of either meter (a group only one meter has gets NaN for the other's values).
    """
    if groups is None:
        return _join(stability.compute(), confusion.compute() if confusion is not None else None)
    stab = stability.compute(groups) if stability.sequence_ids else {}
    conf = confusion.compute(groups) if confusion is not None and confusion.sequence_ids else {}
    keys = list(stab) + [k for k in conf if k not in stab]
    try:
        keys = sorted(keys)
    except TypeError:
        pass
    return {
        key: _join(stab.get(key, StabilityMeter().compute()), conf.get(key) if confusion is not None else None)
        for key in keys
    }


def _join(stab: dict, conf: dict | None) -> dict:
    out = dict(stab)
    if conf is not None:
        out.update(mIoU=conf["mIoU"], IoU=conf["IoU"], frames=conf["frames"], pixels=conf["pixels"])
    return out
