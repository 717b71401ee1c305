"""``stabbench eval --workers N``: reading/rendering and scoring in worker processes.

The model runs in the calling process, fed one sequence at a time in the set's order. Worker
processes (``spawn``: nothing of the caller's threads or model is inherited) each open the set;
sequence ``i`` (the ``i``-th of the run) belongs to worker ``i mod N``, which *loads* it (reads
or renders its frames and masks, checking them against the manifest), sends the frames here and
keeps the masks, and later *scores* it (given the labels: the metric counts of that one
sequence). So only frames and labels cross between processes, never the masks. Loads run up
to two sequences ahead per worker; each sequence's counts come back as a state of its own and
are merged in sequence order, so the result is the serial result, count for count.

Each worker is a process of its own with one duplex pipe, of which this process holds only
its end: a worker that dies (killed, out of memory), even in the middle of sending, closes its
end, and the run ends with an :class:`~stabbench.errors.IOFailure` instead of waiting
forever (a ``ProcessPoolExecutor`` can hang there: its result pipe stays open in the caller).
A worker's error (bad data) comes back as an object and is raised here as itself, when the
sequence it concerns has its turn. A worker reads commands in a thread of its own, so neither
side ever blocks on a full pipe while the other waits to send.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from stabbench.errors import IOFailure
from stabbench.evaluation.state import EvalState

#: Seconds a worker gets to exit after it is told to stop, before it is terminated.
_STOP_GRACE = 5.0


# ------------------------------------------------------------------ the worker process


def _worker_main(conn, root: str, band_width: int, num_classes: int) -> None:
    """Serve ``("load", i)`` and ``("score", i, labels)`` in the order received; ``None`` stops.
    When the caller is gone (its end of the pipe closed: an error, Ctrl-C), exit quietly."""
    try:
        _serve(conn, root, band_width, num_classes)
    except (EOFError, OSError):  # BrokenPipeError included: nobody is listening any more
        pass


def _serve(conn, root: str, band_width: int, num_classes: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle (it stops the workers)
    commands: queue.Queue = queue.Queue()

    def receive() -> None:
        try:
            while True:
                commands.put(conn.recv())
        except (EOFError, OSError):  # the caller went away or closed the pipe: stop
            commands.put(None)

    threading.Thread(target=receive, name="stabbench-commands", daemon=True).start()
    try:
        import cv2

        from stabbench.synth import open_set

        cv2.setNumThreads(1)  # one core per worker: the workers are the parallelism
        dataset = open_set(Path(root))
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, who raises it
        _reply(conn, ("fatal", None, exc))
        return
    masks: dict[int, np.ndarray] = {}
    while (command := commands.get()) is not None:
        kind, i = command[0], command[1]
        try:
            if kind == "load":
                seq = dataset[i]
                frames = seq.frames()
                masks[i] = seq.masks()
                reply = ("frames", i, frames)
                del frames
            else:
                reply = ("state", i, _score(dataset, i, command[2], masks.pop(i), band_width, num_classes))
        except Exception as exc:  # noqa: BLE001 - bad data: raised by the caller when its turn comes
            reply = ("error:" + ("frames" if kind == "load" else "state"), i, exc)
        _reply(conn, reply)
        del reply


def _reply(conn, reply: tuple) -> None:
    """Send ``reply``; an error that cannot be pickled goes as a ``RuntimeError`` with its text."""
    try:
        conn.send(reply)
    except (pickle.PicklingError, TypeError, AttributeError):
        if not isinstance(reply[2], BaseException):
            raise
        exc = reply[2]
        conn.send((reply[0], reply[1], RuntimeError(f"{type(exc).__name__}: {exc}")))


def _score(dataset, i: int, labels: np.ndarray, masks: np.ndarray, band_width: int, num_classes: int) -> dict:
    from stabbench.evaluation.sequence import accumulate_sequence
    from stabbench.metrics import ConfusionMeter, StabilityMeter

    state = EvalState(StabilityMeter(band_width=band_width), ConfusionMeter(num_classes=num_classes))
    accumulate_sequence(state, dataset[i], labels, masks)
    return state.state_dict()


# ------------------------------------------------------------------ the caller's side


class WorkerDied(Exception):
    """A worker process ended without being told to (killed, out of memory)."""


class _Worker:
    """One worker process and this process's end of its pipe; replies kept until asked for."""

    def __init__(self, context, initargs: tuple):
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child, *initargs), daemon=True,
                                       name="stabbench-eval-worker")
        self.process.start()
        child.close()  # only the worker holds its end: its death is an EOF here
        self.replies: dict[tuple[str, int], object] = {}

    def send(self, *command) -> None:
        try:
            self.conn.send(command)
        except OSError:
            raise WorkerDied from None

    def take(self, kind: str, i: int):
        """The reply ``kind`` (``"frames"`` or ``"state"``) of sequence ``i``; raises what the worker raised."""
        while (kind, i) not in self.replies and ("error:" + kind, i) not in self.replies:
            try:
                got_kind, got_i, payload = self.conn.recv()
            except (EOFError, OSError):
                raise WorkerDied from None
            if got_kind == "fatal":
                raise payload
            self.replies[got_kind, got_i] = payload
        if ("error:" + kind, i) in self.replies:
            raise self.replies.pop(("error:" + kind, i))
        return self.replies.pop((kind, i))

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.conn.close()

    def reap(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(_STOP_GRACE)


def evaluate_in_workers(predictor, dataset, state: EvalState, indices, workers: int, *, spec, batch_size,
                        progress: Callable[[int, int], None] | None, allow_non_finite: bool,
                        on_labels: Callable | None = None) -> EvalState:
    """See the module docstring; ``state`` is the empty state to fill (its meters' settings are used)."""
    from stabbench.evaluation.sequence import predict_checked

    num_classes = len(dataset.classes)
    context = multiprocessing.get_context("spawn")
    initargs = (str(dataset.root), state.stability.band_width, num_classes)
    order = list(indices)
    pool: list[_Worker] = []
    failed = True
    try:
        pool = [_Worker(context, initargs) for _ in range(min(workers, len(order)))]
        count = len(pool)
        loaded = 0  # loads sent so far (in order): up to two per worker ahead of the model
        scored = 0  # states merged so far (in order)
        for position, i in enumerate(order):
            while loaded < len(order) and loaded < position + 2 * count:
                pool[loaded % count].send("load", order[loaded])
                loaded += 1
            frames = pool[position % count].take("frames", i)
            seq = dataset[i]
            labels = predict_checked(predictor, seq, frames, state, spec, batch_size, allow_non_finite, num_classes)
            del frames
            if on_labels is not None:
                on_labels(seq, labels)
            pool[position % count].send("score", i, labels)
            del labels
            while scored < position + 1 - count:  # keep up to one score per worker in flight
                state = _merge(state, pool[scored % count].take("state", order[scored]))
                scored += 1
                if progress is not None:
                    progress(scored, len(order))
        while scored < len(order):
            state = _merge(state, pool[scored % count].take("state", order[scored]))
            scored += 1
            if progress is not None:
                progress(scored, len(order))
        failed = False
    except WorkerDied:
        raise IOFailure("an evaluation worker process died (killed, or out of memory); nothing was written — "
                        "re-run the command (with fewer --workers if memory is short)") from None
    finally:
        for worker in pool:
            worker.stop()
        for worker in pool:  # after an error the workers may be mid-task: do not wait for them
            worker.reap(0.0 if failed else _STOP_GRACE)
    return state


def _merge(state: EvalState, part: dict) -> EvalState:
    return state.merge(EvalState.from_state_dict(part))  # the part's warnings are empty: they are the caller's


#: Fewer cores than this: no worker processes by default (measured on 2 cores, ``--workers 2``
#: ran at 0.92x the one-process speed, whose read-ahead thread already uses the second core:
#: benchmarks/RESULTS.md, "Sets").
MIN_CORES_FOR_WORKERS = 4


def default_workers() -> int:
    """``STABBENCH_WORKERS`` if set, else one worker per core but the model's when this process
    may use at least :data:`MIN_CORES_FOR_WORKERS` cores, else 0 (everything in this process)."""
    import os

    text = os.environ.get("STABBENCH_WORKERS")
    if text is not None and text.strip().isdigit():
        return int(text)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores - 1 if cores >= MIN_CORES_FOR_WORKERS else 0
