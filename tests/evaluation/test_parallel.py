"""``evaluate(workers=N)`` / ``stabbench eval --workers N``: the serial result, byte for byte, and a
worker that dies ends the run with a clear error."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from stabbench.errors import DataError, IOFailure
from stabbench.evaluation import evaluate
from stabbench.predictors.registry import make_builtin
from stabbench.synth import open_set
from tests.helpers import cli


def state_of(state) -> dict:
    return state.state_dict()


@pytest.mark.slow
def test_workers_give_the_serial_counts(small_set: Path) -> None:
    dataset = open_set(small_set)
    for name in ("flicker,rate=0.2", "shifted"):
        serial = evaluate(make_builtin(name).predictor, dataset, workers=0)
        parallel = evaluate(make_builtin(name).predictor, dataset, workers=2, batch_size=3)
        assert state_of(parallel) == state_of(serial)
    shard = evaluate(make_builtin("oracle").predictor, dataset, workers=2, shard=(1, 2))
    assert state_of(shard) == state_of(evaluate(make_builtin("oracle").predictor, dataset, shard=(1, 2)))


@pytest.mark.slow
def test_eval_workers_writes_the_same_bytes(small_set: Path, tmp_path: Path) -> None:
    for workers in ("0", "2"):
        result = cli("eval", "--model", "builtin:flicker,rate=0.1", "--set", small_set, "--out", tmp_path / workers,
                     "--no-leaderboard", "--no-plot", "-q", "--workers", workers)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "0" / "results.json").read_bytes() == (tmp_path / "2" / "results.json").read_bytes()


class KillsAWorker:
    """Kills one worker process on its ``at``-th call (as the OOM killer would): depending on the
    moment, the worker is idle, rendering, or in the middle of sending frames."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def predict(self, frames):
        self.calls += 1
        if self.calls == self.at:
            workers = [p for p in multiprocessing.active_children() if p.name == "stabbench-eval-worker"]
            os.kill(workers[self.calls % len(workers)].pid, signal.SIGKILL)
        return np.zeros(frames.shape[:3], np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("at", [1, 2, 3])  # both workers still have sequences to send
def test_a_killed_worker_ends_the_run_clearly(small_set: Path, at: int) -> None:
    """Never a hang (a ProcessPoolExecutor waits forever when a worker dies mid-send): exit 6."""
    with pytest.raises(IOFailure, match="worker process died") as info:
        evaluate(KillsAWorker(at), open_set(small_set), workers=2)
    assert info.value.exit_code == 6
    assert not [p for p in multiprocessing.active_children() if p.name == "stabbench-eval-worker"]


@pytest.mark.slow
def test_a_worker_data_error_is_raised_as_itself(small_set: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(small_set, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sequences"][2]["frames"][1]["frame_pixels_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="seq_00002, frame 1"):
        evaluate(make_builtin("oracle").predictor, open_set(copy), workers=2)


@pytest.mark.parametrize("cores, expected", [(1, 0), (2, 0), (3, 0), (4, 3), (16, 15)])
def test_default_workers_leave_a_core_to_the_model_and_none_on_small_machines(monkeypatch, cores: int, expected: int) -> None:
    from stabbench.evaluation.parallel import default_workers

    monkeypatch.delenv("STABBENCH_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_workers() == expected
    monkeypatch.setenv("STABBENCH_WORKERS", "5")
    assert default_workers() == 5
