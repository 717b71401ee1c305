"""Metrics of stabbench (method.md section 3): stability rates S_global / S_boundary and mIoU(syn).

Pure functions live in :mod:`stabbench.metrics.functional`; the classes keep mergeable
integer counts (``update`` / ``compute`` / ``reset`` / ``merge`` / ``state_dict``).
All rates are in percent.

    >>> from stabbench.metrics import StabilityMeter, ConfusionMeter, summarize
    >>> stab, conf = StabilityMeter(), ConfusionMeter(num_classes=2)
    >>> for seq in synthetic_set:                                      # doctest: +SKIP
    ...     gt = seq.masks()
    ...     for t, flow, valid in seq.pairs():
    ...         stab.update(seq.id, t, pred[t], pred[t + 1], flow, valid, gt[t])
    ...     for k in range(seq.num_frames):
    ...         conf.update(seq.id, pred[k], gt[k])
    >>> summarize(stab, conf)                                          # doctest: +SKIP
"""

from stabbench.metrics.breakdown import sequence_rows, summarize
from stabbench.metrics.confusion import ConfusionMeter
from stabbench.metrics.functional import (
    BAND_WIDTH,
    DEFINITIONS,
    IGNORE_LABEL,
    PairGeometry,
    PairTracks,
    boundary_band,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    object_edges,
    pair_consistency,
    pair_counts,
    pair_geometry,
    stability_rate,
    target_indices,
)
from stabbench.metrics.stability import PairCounts, StabilityMeter

__all__ = [
    "DEFINITIONS",
    "BAND_WIDTH",
    "IGNORE_LABEL",
    "ConfusionMeter",
    "PairCounts",
    "PairGeometry",
    "PairTracks",
    "StabilityMeter",
    "boundary_band",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "object_edges",
    "pair_consistency",
    "pair_counts",
    "pair_geometry",
    "sequence_rows",
    "stability_rate",
    "summarize",
    "target_indices",
]
