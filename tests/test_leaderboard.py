"""leaderboard.csv: round trip, replace-only-when-asked, concurrent appends; the gate's checks."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from stabbench.errors import DataError, OutputConflictError
from stabbench.report.gate import load_metrics, parse_threshold, run_checks
from stabbench.report.leaderboard import COLUMNS, has_row, read_rows, upsert_row


def make_row(model: str, s_global: float = 99.0, set_sha: str = "abc") -> dict:
    return {
        "model": model,
        "model_format": "torchscript",
        "model_sha256": "f" * 64,
        "preprocess": json.dumps({"mean": [0.5, 0.5, 0.5], "input_size": None}),
        "dataset": "shapes",
        "set_sha256": set_sha,
        "protocol_version": "v1",
        "protocol": "paper",
        "seed": 0,
        "sequences": 24,
        "boundary_width": 15,
        "S_global": s_global,
        "S_boundary": 95.5,
        "mIoU_syn": 80.25,
        "stabbench_version": "0.1.0",
        "date": "2026-11-23T00:00:00+00:00",
    }


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


def test_thresholds_parse_and_reject() -> None:
    assert parse_threshold("S_boundary=94.5") == ("S_boundary", 94.5)
    with pytest.raises(ValueError, match="METRIC=VALUE"):
        parse_threshold("S_bound=94")
    with pytest.raises(ValueError, match="not a number"):
        parse_threshold("S_global=high")


def test_checks_report_margins() -> None:
    result = {"S_global": 99.0, "S_boundary": 93.0, "mIoU_syn": 80.0}
    checks = run_checks(result, [("S_boundary", 94.0), ("S_global", 98.5)])
    assert [(c.metric, c.passed, round(c.margin, 6)) for c in checks] == [
        ("S_boundary", False, -1.0),
        ("S_global", True, 0.5),
    ]
    base = {"S_global": 99.2, "S_boundary": 93.4, "mIoU_syn": 79.0}
    checks = run_checks(result, [], base, tolerance=0.3)
    assert [c.passed for c in checks] == [True, False, True]  # 99.0>=98.9, 93.0<93.1, 80>=78.7


def test_load_metrics_from_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"metrics": {"S_global": 1, "S_boundary": 2, "mIoU_syn": 3}}))
    assert load_metrics(tmp_path) == {"S_global": 1.0, "S_boundary": 2.0, "mIoU_syn": 3.0}
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("m1"))
    upsert_row(path, make_row("m2", 90.0))
    assert load_metrics(path, "m2")["S_global"] == 90.0
    with pytest.raises(DataError, match="several models"):
        load_metrics(path)
    with pytest.raises(DataError, match="no row for model"):
        load_metrics(path, "nope")
    with pytest.raises(DataError, match="not found"):
        load_metrics(tmp_path / "missing.json")
