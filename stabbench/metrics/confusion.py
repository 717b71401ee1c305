"""mIoU(syn) and per-class IoU from per-sequence confusion matrices: :class:`ConfusionMeter`.

    >>> meter = ConfusionMeter(num_classes=2)
    >>> for seq in synthetic_set:                               # doctest: +SKIP
    ...     for k, gt in enumerate(seq.masks()):
    ...         meter.update(seq.id, pred[k], gt)
    >>> meter.compute()["mIoU"]                                 # doctest: +SKIP

State: one ``(C, C)`` int64 matrix (rows = ground truth, columns = prediction) and a frame
count per sequence; shards merge by union, and set-level IoU comes from the exact integer
sum of the matrices, so results do not depend on the merge order. IoU is **pooled** over
pixels (the matrices are summed first, then IoU per class, then the mean over classes
present in the ground truth or the predictions), the usual semantic-segmentation mIoU.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

import stabbench.metrics.functional as F
from stabbench.metrics._state import check_header, check_sequence_id, group_ids


class ConfusionMeter:
    """Confusion matrices per sequence; mIoU and per-class IoU in percent.

    Args:
        num_classes: ``C``; predictions must be in ``[0, C)``.
        ignore_label: ground-truth label left out of the counts.
    """

    higher_is_better = True
    STATE_FORMAT = "stabbench.metrics.ConfusionMeter"
    STATE_VERSION = 1

    def __init__(self, num_classes: int, ignore_label: int = F.IGNORE_LABEL):
        F.confusion_matrix(np.zeros(0, np.uint8), np.zeros(0, np.uint8), num_classes, ignore_label)  # validates
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self._matrices: dict[str, np.ndarray] = {}
        self._frames: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ConfusionMeter(num_classes={self.num_classes}, ignore_label={self.ignore_label}, sequences={len(self._matrices)})"

    def update(self, seq_id: str, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Add one frame of sequence ``seq_id``; returns its ``(C, C)`` matrix.

        Args:
            pred: integer predicted labels in ``[0, C)``, any shape.
            target: ground truth of the same shape, ``ignore_label`` = left out.
        """
        check_sequence_id(seq_id)
        cm = F.confusion_matrix(pred, target, self.num_classes, self.ignore_label)
        if seq_id in self._matrices:
            self._matrices[seq_id] += cm
        else:
            self._matrices[seq_id] = cm.copy()
        self._frames[seq_id] = self._frames.get(seq_id, 0) + 1
        return cm

    def reset(self) -> None:
        self._matrices.clear()
        self._frames.clear()

    # -------------------------------------------------------------- merge / state

    def merge(self, other: ConfusionMeter) -> ConfusionMeter:
        """Add ``other``'s sequences (in place) and return this meter.

        Shards must hold disjoint sequences: one in both raises ``ValueError``.
        """
        if not isinstance(other, ConfusionMeter):
            raise TypeError(f"cannot merge a ConfusionMeter with {type(other).__name__}")
        mine, theirs = (self.num_classes, self.ignore_label), (other.num_classes, other.ignore_label)
        if mine != theirs:
            raise ValueError(f"cannot merge meters with (num_classes, ignore_label) {mine} and {theirs}")
        overlap = self._matrices.keys() & other._matrices.keys()
        if overlap:
            raise ValueError(
                f"{len(overlap)} sequence(s) in both meters, e.g. {min(overlap)!r}: shards must partition the sequences"
            )
        for seq_id, cm in other._matrices.items():
            self._matrices[seq_id] = cm.copy()
            self._frames[seq_id] = other._frames[seq_id]
        return self

    def __add__(self, other: ConfusionMeter) -> ConfusionMeter:
        return self.copy().merge(other)

    def copy(self) -> ConfusionMeter:
        out = ConfusionMeter(self.num_classes, self.ignore_label)
        return out.merge(self)

    def state_dict(self) -> dict:
        """JSON-serialisable state: settings and, per sequence, frames and the matrix as nested lists."""
        return {
            "format": self.STATE_FORMAT,
            "version": self.STATE_VERSION,
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
            "sequences": {
                seq_id: {"frames": self._frames[seq_id], "confusion": self._matrices[seq_id].tolist()}
                for seq_id in sorted(self._matrices)
            },
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> ConfusionMeter:
        check_header(state, cls.STATE_FORMAT, cls.STATE_VERSION)
        out = cls(state["num_classes"], state["ignore_label"])
        c = out.num_classes
        for seq_id, item in state["sequences"].items():
            check_sequence_id(seq_id)
            cm = np.asarray(item["confusion"])
            if cm.shape != (c, c) or not np.issubdtype(cm.dtype, np.integer) or (cm < 0).any():
                raise ValueError(f"bad confusion matrix for sequence {seq_id!r} in state (need ({c}, {c}) counts)")
            out._matrices[seq_id] = cm.astype(np.int64)
            out._frames[seq_id] = int(item["frames"])
        return out

    # -------------------------------------------------------------- results

    @property
    def sequence_ids(self) -> list[str]:
        return sorted(self._matrices)

    def matrix(self, seq_ids: Sequence[str] | None = None) -> np.ndarray:
        """``(C, C)`` int64 sum over ``seq_ids`` (default: all sequences)."""
        ids = self.sequence_ids if seq_ids is None else seq_ids
        total = np.zeros((self.num_classes, self.num_classes), np.int64)
        for seq_id in ids:
            total += self._matrices[seq_id]
        return total

    def per_sequence(self) -> list[dict]:
        """One row per sequence (sorted): ``sequence``, ``mIoU`` (percent), ``frames``, ``pixels``."""
        return [
            {
                "sequence": seq_id,
                "mIoU": F.mean_iou(self._matrices[seq_id]),
                "frames": self._frames[seq_id],
                "pixels": int(self._matrices[seq_id].sum()),
            }
            for seq_id in self.sequence_ids
        ]

    def per_class(self, class_names: Sequence[str] | None = None, seq_ids: Sequence[str] | None = None) -> list[dict]:
        """One row per class: ``class`` (id), ``name``, ``IoU`` (percent, NaN if absent), ``gt_pixels``, ``pred_pixels``."""
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        cm = self.matrix(seq_ids)
        iou = F.iou_from_confusion(cm)
        gt, pred = cm.sum(axis=1), cm.sum(axis=0)
        return [
            {
                "class": c,
                "name": class_names[c] if class_names is not None else str(c),
                "IoU": float(iou[c]),
                "gt_pixels": int(gt[c]),
                "pred_pixels": int(pred[c]),
            }
            for c in range(self.num_classes)
        ]

    def compute(self, groups: Mapping[str, Hashable] | None = None) -> dict:
        """``{"mIoU", "IoU" (list per class), "sequences", "frames", "pixels"}``, percent.

        With ``groups`` (``{sequence id: key}``, covering every sequence), a dict of those per key.
        """
        if groups is None:
            return self._summary(self.sequence_ids)
        return {key: self._summary(ids) for key, ids in group_ids(self.sequence_ids, groups).items()}

    def _summary(self, seq_ids: list[str]) -> dict:
        cm = self.matrix(seq_ids)
        return {
            "mIoU": F.mean_iou(cm),
            "IoU": F.iou_from_confusion(cm).tolist(),
            "sequences": len(seq_ids),
            "frames": sum(self._frames[i] for i in seq_ids),
            "pixels": int(cm.sum()),
        }
