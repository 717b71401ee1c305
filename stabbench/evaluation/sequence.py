"""One sequence, scored: the model's labels checked, the metric counts accumulated.

Shared by the serial runner and the worker processes (:mod:`~stabbench.evaluation.parallel`).
"""

from __future__ import annotations

import numpy as np

from stabbench.errors import ModelError
from stabbench.evaluation.state import EvalState


def predict_checked(predictor, seq, frames: np.ndarray, state: EvalState, spec, batch_size, allow_non_finite: bool,
                    num_classes: int) -> np.ndarray:
    """Labels of one sequence; non-finite outputs refused (or recorded in ``state``), the label range checked."""
    from stabbench.predictors import predict_sequence

    try:
        labels, non_finite = predict_sequence(predictor, frames, spec=spec, sequence=seq, batch_size=batch_size)
    except ModelError as exc:  # name the sequence the model failed on
        raise ModelError(f"sequence {seq.id}: {exc}") from exc
    if non_finite and not allow_non_finite:
        raise ModelError(f"sequence {seq.id}: {non_finite[0]}; a broken model is not scored "
                         "(--allow-nonfinite records it as a warning instead, and the gate fails it)")
    state.non_finite += len(non_finite)
    state.warnings += [f"{seq.id}: {issue}" for issue in non_finite]
    check_label_range(labels, num_classes, seq.id)
    return labels


def check_label_range(labels: np.ndarray, num_classes: int, seq_id: str) -> None:
    top = int(labels.max(initial=0))
    if top >= num_classes:
        raise ModelError(
            f"{seq_id}: the model predicted class {top} but the set has {num_classes} classes; "
            "map classes with --foreground-class (binary sets) or check --num-classes"
        )


def accumulate_sequence(state: EvalState, seq, labels: np.ndarray, masks: np.ndarray) -> None:
    """Add one sequence's predictions ``(N, H, W)`` to the meters."""
    for k in range(seq.num_frames):
        state.confusion.update(seq.id, labels[k], masks[k])
    for t, flow, valid in seq.pairs():
        state.stability.update(seq.id, t, labels[t], labels[t + 1], flow, valid, masks[t], masks[t + 1])
    state.groups[seq.id] = (seq.perturbation, int(seq.severity))
    for v, c in count_labels(labels).items():
        state.label_counts[v] = state.label_counts.get(v, 0) + c


def count_labels(labels: np.ndarray) -> dict[int, int]:
    """``{label: pixels}`` of ``(N, H, W)`` labels (labels with no pixel left out).

    uint8 labels are counted frame by frame with ``cv2.calcHist`` (exact: its float32 bins
    hold integers up to 2**24, more than a frame's pixels), several times faster than
    ``np.unique``, which sorts every pixel of the sequence.
    """
    if labels.dtype == np.uint8 and labels.ndim == 3 and labels[0].size < 1 << 24:
        import cv2

        hist = np.zeros(256, np.int64)
        for frame in labels:
            hist += cv2.calcHist([np.ascontiguousarray(frame)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        return {int(v): int(hist[v]) for v in np.flatnonzero(hist)}
    values, counts = np.unique(labels, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))
