"""``stabbench eval --workers N``: reading/rendering and scoring in worker processes.

The model runs in the calling process, fed one sequence at a time in the set's order. Worker
processes (``spawn``: nothing of the caller's threads or model is inherited) each open the set
and do two kinds of task: *load* sequence ``i`` (read or render its frames and masks, checking
them against the manifest) and *score* it (given the labels, the metric counts of that one
sequence). Loads run up to ``workers + 1`` sequences ahead; each sequence's counts come back
as a state of its own and are merged in sequence order, so the result is the serial result,
count for count. A worker's error (bad data) is raised here as itself; a worker that dies
(killed, out of memory) ends the run with an :class:`~stabbench.errors.IOFailure`.
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


def _load(i: int) -> tuple[np.ndarray, np.ndarray]:
    seq = _WORKER["dataset"][i]
    return seq.frames(), seq.masks()


def _score(i: int, labels: np.ndarray, masks: np.ndarray) -> dict:
    from stabbench.evaluation.sequence import accumulate_sequence
    from stabbench.metrics import ConfusionMeter, StabilityMeter

    state = EvalState(StabilityMeter(band_width=_WORKER["band_width"]), ConfusionMeter(num_classes=_WORKER["num_classes"]))
    accumulate_sequence(state, _WORKER["dataset"][i], labels, masks)
    return state.state_dict()


def evaluate_in_workers(predictor, dataset, state: EvalState, indices, workers: int, *, spec, batch_size,
                        progress: Callable[[int, int], None] | None, allow_non_finite: bool,
                        on_labels: Callable | None = None) -> EvalState:
    """See the module docstring; ``state`` is the empty state to fill (its meters' settings are used)."""
    from stabbench.evaluation.sequence import predict_checked

    num_classes = len(dataset.classes)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(str(dataset.root), state.stability.band_width, num_classes))
    try:
        loads: deque = deque()
        scores: deque = deque()
        ahead = iter(indices)
        for i in ahead:
            loads.append((i, pool.submit(_load, i)))
            if len(loads) > workers:
                break
        done = 0
        while loads:
            i, future = loads.popleft()
            frames, masks = future.result()
            nxt = next(ahead, None)
            if nxt is not None:
                loads.append((nxt, pool.submit(_load, nxt)))
            seq = dataset[i]
            labels = predict_checked(predictor, seq, frames, state, spec, batch_size, allow_non_finite, num_classes)
            del frames
            if on_labels is not None:
                on_labels(seq, labels)
            scores.append(pool.submit(_score, i, labels, masks))
            while scores and (scores[0].done() or len(scores) > workers):
                state = _merge(state, scores.popleft().result())
                done += 1
                if progress is not None:
                    progress(done, len(indices))
        while scores:
            state = _merge(state, scores.popleft().result())
            done += 1
            if progress is not None:
                progress(done, len(indices))
    except BrokenProcessPool:
        raise IOFailure("an evaluation worker process died (killed, or out of memory); nothing was written — "
                        "re-run the command (with fewer --workers if memory is short)") from None
    finally:
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
