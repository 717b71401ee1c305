"""stabbench.report.leaderboard: leaderboard.csv round trip, replace-only-when-asked,
concurrent appends, a file that is not a leaderboard."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from stabbench.errors import DataError, OutputConflictError
from stabbench.report.leaderboard import COLUMNS, has_row, read_rows, upsert_row
from tests.helpers import make_row


def test_round_trip_keeps_every_column(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("m1"))
    rows = read_rows(path)
    assert len(rows) == 1
    assert tuple(rows[0]) == COLUMNS
    assert rows[0]["model"] == "m1" and float(rows[0]["S_global"]) == 99.0
    assert json.loads(rows[0]["preprocess"]) == {"mean": [0.5, 0.5, 0.5], "input_size": None}


def test_same_key_is_refused_then_replaced_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("m1", 99.0))
    upsert_row(path, make_row("m2", 98.0))
    assert has_row(path, make_row("m1"))
    with pytest.raises(OutputConflictError, match="--replace"):
        upsert_row(path, make_row("m1", 97.0))
    assert [float(r["S_global"]) for r in read_rows(path)] == [99.0, 98.0]
    upsert_row(path, make_row("m1", 97.0), replace=True)
    rows = read_rows(path)
    assert sorted((r["model"], float(r["S_global"])) for r in rows) == [("m1", 97.0), ("m2", 98.0)]
    # another set is another row
    upsert_row(path, make_row("m1", 96.0, set_sha="other"))
    assert len(read_rows(path)) == 3


def _append_many(args) -> None:
    path, worker, n = args
    for i in range(n):
        upsert_row(Path(path), make_row(f"w{worker}-m{i}"))


def test_concurrent_appends_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    workers, per_worker = 4, 15
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_append_many, [(str(path), w, per_worker) for w in range(workers)])
    models = sorted(r["model"] for r in read_rows(path))
    assert models == sorted(f"w{w}-m{i}" for w in range(workers) for i in range(per_worker))
    assert not list(tmp_path.glob("*.tmp"))


def test_not_a_leaderboard_is_bad_data(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a stabbench leaderboard"):
        read_rows(path)
