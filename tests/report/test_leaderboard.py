"""stabbench.report.leaderboard: leaderboard.csv round trip, replace-only-when-asked, an
identical row is a no-op, rows refused early or together, the same model recognised,
concurrent appends, a file that is not a leaderboard, no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from stabbench.errors import DataError, OutputConflictError
from stabbench.report.leaderboard import COLUMNS, read_rows, recognise, refuse_conflicts, upsert_row, upsert_rows
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
    with pytest.raises(OutputConflictError, match=r"model m1 .*S_global '99\.0' there, '97\.0' now.*--replace"):
        upsert_row(path, make_row("m1", 97.0))
    assert [float(r["S_global"]) for r in read_rows(path)] == [99.0, 98.0]
    upsert_row(path, make_row("m1", 97.0), replace=True)
    rows = read_rows(path)
    assert sorted((r["model"], float(r["S_global"])) for r in rows) == [("m1", 97.0), ("m2", 98.0)]
    # another set is another row
    upsert_row(path, make_row("m1", 96.0, set_sha="other"))
    assert len(read_rows(path)) == 3


def test_an_identical_row_is_a_no_op_whatever_its_date(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    assert upsert_row(path, make_row("m1", 99.0)) == "added"
    before = path.read_bytes()
    again = {**make_row("m1", 99.0), "date": "2027-01-01T00:00:00+00:00"}
    assert upsert_row(path, again) == "unchanged"
    assert path.read_bytes() == before  # not rewritten, no second row, the first date kept
    assert upsert_row(path, again, replace=True) == "replaced"  # --replace still replaces (the date too)
    assert [r["date"] for r in read_rows(path)] == ["2027-01-01T00:00:00+00:00"]
    # a column the first row lacks counts as a difference too
    with pytest.raises(OutputConflictError, match="model_fingerprint"):
        upsert_row(path, {**again, "model_fingerprint": "e" * 64})


def test_rows_are_written_together_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("ref", 99.0))
    assert upsert_rows(path, [make_row("a", 90.0), make_row("ref", 99.0)]) == ["added", "unchanged"]
    before = path.read_bytes()
    with pytest.raises(OutputConflictError, match="model ref"):
        upsert_rows(path, [make_row("b", 80.0), make_row("ref", 98.0)])
    assert path.read_bytes() == before  # b not added either


def test_early_refusal_only_for_columns_known_to_differ(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("m1", 99.0))
    key = {k: make_row("m1")[k] for k in ("model", "set_sha256", "protocol_version", "boundary_width")}
    refuse_conflicts(path, [{**key, "model_sha256": "f" * 64}])  # may come out identical: passes
    refuse_conflicts(path, [{**key, "model": "m2", "model_sha256": "0" * 64}])  # another key: passes
    with pytest.raises(OutputConflictError, match="model_sha256"):
        refuse_conflicts(path, [{**key, "model_sha256": "0" * 64}])


def test_recognise_by_fingerprint_and_preprocessing(tmp_path: Path) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, {**make_row("first"), "model_fingerprint": "a" * 64})
    upsert_row(path, {**make_row("old"), "model_sha256": "b" * 64})  # written before fingerprints
    probe = {k: make_row("x")[k] for k in ("preprocess", "set_sha256", "protocol_version", "boundary_width")}
    assert recognise(path, {**probe, "model_fingerprint": "a" * 64}) == "first"
    assert recognise(path, {**probe, "model_fingerprint": "b" * 64}) == "old"
    assert recognise(path, {**probe, "model_fingerprint": "c" * 64}) is None
    assert recognise(path, {**probe, "model_fingerprint": ""}) is None
    assert recognise(path, {**probe, "model_fingerprint": "a" * 64, "preprocess": "{}"}) is None
    assert recognise(path, {**probe, "model_fingerprint": "a" * 64, "set_sha256": "other"}) is None


FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1+1", "-2+3", "'quoted", "\t=1"]


@pytest.mark.parametrize("name", FORMULAS)
def test_no_cell_is_a_formula_and_names_read_back(tmp_path: Path, name: str) -> None:
    path = tmp_path / "lb.csv"
    row = {**make_row(name, -0.5), "model_id": "=HYPERLINK(1).pt2", "dS_boundary": -1.25e-05}
    assert upsert_row(path, row) == "added"
    raw = list(csv.DictReader(open(path, newline="")))[0]
    assert raw["model"] == "'" + name and raw["model_id"] == "'=HYPERLINK(1).pt2"  # a spreadsheet shows text
    assert raw["S_global"] == "-0.5" and raw["dS_boundary"] == "-1.25e-05"  # numbers stay numbers
    back = read_rows(path)[0]
    assert back["model"] == name and back["model_id"] == "=HYPERLINK(1).pt2" and float(back["S_global"]) == -0.5
    assert upsert_row(path, row) == "unchanged"  # compared as written, not as escaped
    probe = {k: row[k] for k in ("preprocess", "set_sha256", "protocol_version", "boundary_width")}
    upsert_row(path, {**make_row("other"), "model_fingerprint": "a" * 64, "model": name}, replace=True)
    assert recognise(path, {**probe, "model_fingerprint": "a" * 64}) == name


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
