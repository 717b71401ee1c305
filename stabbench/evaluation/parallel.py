"""``stabbench eval --workers N``: reading/rendering and scoring in worker processes.

The model runs in the calling process, fed one sequence at a time in the set's order. Worker
processes (``spawn``: nothing of the caller's threads or model is inherited) each open the set;
sequence ``i`` (the ``i``-th of the run) belongs to worker ``i mod N``, which *loads* it (reads
or renders its frames and masks, checking them against the manifest), sends the frames here and
keeps the masks, and later *scores* it (given the labels: the metric counts of that one
sequence). So only frames and labels cross between processes, never the masks. Loads run up
to two sequences ahead per worker; each sequence's counts come back as a state of its own and
are merged in sequence order, so the result is the serial result, count for count. A worker's
error (bad data) is raised here as itself; a worker that dies (killed, out of memory) ends the
run with an :class:`~stabbench.errors.IOFailure`.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

import numpy as np

from stabbench.errors import IOFailure
from stabbench.evaluation.state import EvalState

_WORKER: dict = {}


def _init_worker(root: str, band_width: int, num_classes: int) -> None:
    import cv2

    from stabbench.synth import open_set

    cv2.setNumThreads(1)  # one core per worker: the workers are the parallelism
    _WORKER.update(dataset=open_set(Path(root)), band_width=band_width, num_classes=num_classes)


def _load(i: int) -> np.ndarray:
    """Frames of sequence ``i`` (sent to the caller); its masks stay here until it is scored."""
    seq = _WORKER["dataset"][i]
    frames = seq.frames()
    _WORKER.setdefault("masks", {})[i] = seq.masks()
    return frames


def _score(i: int, labels: np.ndarray) -> dict:
    from stabbench.evaluation.sequence import accumulate_sequence
    from stabbench.metrics import ConfusionMeter, StabilityMeter

    state = EvalState(StabilityMeter(band_width=_WORKER["band_width"]), ConfusionMeter(num_classes=_WORKER["num_classes"]))
    accumulate_sequence(state, _WORKER["dataset"][i], labels, _WORKER["masks"].pop(i))
    return state.state_dict()


def evaluate_in_workers(predictor, dataset, state: EvalState, indices, workers: int, *, spec, batch_size,
                        progress: Callable[[int, int], None] | None, allow_non_finite: bool,
                        on_labels: Callable | None = None) -> EvalState:
    """See the module docstring; ``state`` is the empty state to fill (its meters' settings are used)."""
    from stabbench.evaluation.sequence import predict_checked

    num_classes = len(dataset.classes)
    context = multiprocessing.get_context("spawn")
    initargs = (str(dataset.root), state.stability.band_width, num_classes)
    # One single-process pool per worker: a pool runs its tasks in submission order, so the
    # score of a sequence reaches the worker that loaded it (and holds its masks).
    pools = [ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=initargs)
             for _ in range(workers)]
    order = list(indices)
    try:
        loads: deque = deque()
        scores: deque = deque()
        submitted = 0
        done = 0
        for position, i in enumerate(order):
            while submitted < len(order) and submitted <= position + 2 * workers - 1:
                loads.append(pools[submitted % workers].submit(_load, order[submitted]))
                submitted += 1
            frames = loads.popleft().result()
            seq = dataset[i]
            labels = predict_checked(predictor, seq, frames, state, spec, batch_size, allow_non_finite, num_classes)
            del frames
            if on_labels is not None:
                on_labels(seq, labels)
            scores.append(pools[position % workers].submit(_score, i, labels))
            del labels
            while scores and (scores[0].done() or len(scores) > workers):
                state = _merge(state, scores.popleft().result())
                done += 1
                if progress is not None:
                    progress(done, len(order))
        while scores:
            state = _merge(state, scores.popleft().result())
            done += 1
            if progress is not None:
                progress(done, len(order))
    except BrokenProcessPool:
        raise IOFailure("an evaluation worker process died (killed, or out of memory); nothing was written — "
                        "re-run the command (with fewer --workers if memory is short)") from None
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
    return state


def _merge(state: EvalState, part: dict) -> EvalState:
    return state.merge(EvalState.from_state_dict(part))  # the part's warnings are empty: they are the caller's


def default_workers() -> int:
    """``STABBENCH_WORKERS`` if set, else the cores this process may use (0 on a single core)."""
    import os

    text = os.environ.get("STABBENCH_WORKERS")
    if text is not None and text.strip().isdigit():
        return int(text)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0
