"""Run a predictor over a synthetic set (or one shard of it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from stabbench.conventions import BAND_WIDTH
from stabbench.evaluation.sequence import accumulate_sequence, predict_checked
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
    on_labels: Callable | None = None,
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

    ``on_labels(sequence, labels)``, if given, is called in this process with each sequence's
    checked ``(N, H, W)`` labels before they are scored (``eval --save-predictions``).
    """
    num_classes = len(dataset.classes)
    state = EvalState(StabilityMeter(band_width=band_width), ConfusionMeter(num_classes=num_classes))
    indices = shard_indices(len(dataset), shard)
    if workers > 0 and indices:
        from stabbench.evaluation.parallel import evaluate_in_workers

        return evaluate_in_workers(predictor, dataset, state, indices, workers, spec=spec, batch_size=batch_size,
                                   progress=progress, allow_non_finite=allow_non_finite, on_labels=on_labels)
    pool = ThreadPoolExecutor(1, thread_name_prefix="stabbench-read") if prefetch and len(indices) > 1 else None
    try:
        ahead = None  # the future of the sequence read ahead
        for done, i in enumerate(indices):
            seq, frames, masks = ahead.result() if ahead is not None else _load_sequence(dataset, i)
            ahead = None
            if pool is not None and done + 1 < len(indices):
                ahead = pool.submit(_load_sequence, dataset, indices[done + 1])
            labels = predict_checked(predictor, seq, frames, state, spec, batch_size, allow_non_finite, num_classes)
            if on_labels is not None:
                on_labels(seq, labels)
            accumulate_sequence(state, seq, labels, masks)
            del frames, masks, labels  # only the sequence read ahead stays while progress runs
            if progress is not None:
                progress(done + 1, len(indices))
    finally:
        if pool is not None:  # on an error: drop what was read ahead (its errors included)
            pool.shutdown(wait=True, cancel_futures=True)
    return state


def _load_sequence(dataset, i: int) -> tuple:
    """``(sequence, frames, masks)`` of sequence ``i`` (run in the read-ahead thread)."""
    seq = dataset[i]
    return seq, seq.frames(), seq.masks()
