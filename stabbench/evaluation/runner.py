"""Run a predictor over a synthetic set (or one shard of it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from stabbench.conventions import BAND_WIDTH
from stabbench.errors import ModelError
from stabbench.evaluation.state import EvalState, shard_indices
from stabbench.metrics import ConfusionMeter, StabilityMeter


def evaluate(
    predictor,
    dataset,
    *,
    spec=None,
    band_width: int = BAND_WIDTH,
    batch_size: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], None] | None = None,
    prefetch: bool = True,
    allow_non_finite: bool = False,
    workers: int = 0,
) -> EvalState:
    """Feed every sequence of ``dataset`` (a :class:`~stabbench.synth.SyntheticSet`) in
    temporal order and accumulate S_global, S_boundary and the confusion matrices.

    With ``prefetch`` (the default), the next sequence's frames and masks are read in a
    background thread while the current one is predicted and scored (PNG decoding
    releases the GIL); at most one sequence is read ahead, so at most two are held in
    memory. Results are the same either way, and so are errors: a sequence that cannot be
    read raises its :class:`~stabbench.errors.DataError` when its turn comes, after the
    sequences before it were scored. Without ``prefetch``, one sequence at a time.

    With ``workers > 0``, reading (or rendering) sequences and scoring them run in that many
    worker processes (:mod:`~stabbench.evaluation.parallel`); the model stays in this process
    and is fed in the same order; the state is the same, count for count.

    A model output holding NaN or Inf is a :class:`~stabbench.errors.ModelError` naming the
    sequence and frames, unless ``allow_non_finite`` (then it is counted in
    ``state.non_finite`` and described in ``state.warnings``; such a result fails the gate).
    """
    num_classes = len(dataset.classes)
    state = EvalState(StabilityMeter(band_width=band_width), ConfusionMeter(num_classes=num_classes))
    indices = shard_indices(len(dataset), shard)
    if workers > 0 and indices:
        from stabbench.evaluation.parallel import evaluate_in_workers

        return evaluate_in_workers(predictor, dataset, state, indices, workers, spec=spec, batch_size=batch_size,
                                   progress=progress, allow_non_finite=allow_non_finite)
    pool = ThreadPoolExecutor(1, thread_name_prefix="stabbench-read") if prefetch and len(indices) > 1 else None
    try:
        ahead = None  # the future of the sequence read ahead
        for done, i in enumerate(indices):
            seq, frames, masks = ahead.result() if ahead is not None else _load_sequence(dataset, i)
            ahead = None
            if pool is not None and done + 1 < len(indices):
                ahead = pool.submit(_load_sequence, dataset, indices[done + 1])
            labels = predict_checked(predictor, seq, frames, state, spec, batch_size, allow_non_finite, num_classes)
            accumulate_sequence(state, seq, labels, masks)
            del frames, masks, labels  # only the sequence read ahead stays while progress runs
            if progress is not None:
                progress(done + 1, len(indices))
    finally:
        if pool is not None:  # on an error: drop what was read ahead (its errors included)
            pool.shutdown(wait=True, cancel_futures=True)
    return state


def predict_checked(predictor, seq, frames: np.ndarray, state: EvalState, spec, batch_size, allow_non_finite: bool,
                    num_classes: int) -> np.ndarray:
    """Labels of one sequence; non-finite outputs refused (or recorded in ``state``), the label range checked."""
    from stabbench.predictors import predict_sequence

    labels, non_finite = predict_sequence(predictor, frames, spec=spec, sequence=seq, batch_size=batch_size)
    if non_finite and not allow_non_finite:
        raise ModelError(f"sequence {seq.id}: {non_finite[0]}; a broken model is not scored "
                         "(--allow-nonfinite records it as a warning instead, and the gate fails it)")
    state.non_finite += len(non_finite)
    state.warnings += [f"{seq.id}: {issue}" for issue in non_finite]
    check_label_range(labels, num_classes, seq.id)
    return labels


def _load_sequence(dataset, i: int) -> tuple:
    """``(sequence, frames, masks)`` of sequence ``i`` (run in the read-ahead thread)."""
    seq = dataset[i]
    return seq, seq.frames(), seq.masks()


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
