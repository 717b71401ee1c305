"""stabbench.report.gate: thresholds, checks and their margins, metrics from results.json
or a leaderboard row, range-checked (an invalid result is bad data, not a pass or a fail)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from stabbench.errors import DataError
from stabbench.report.gate import load_metrics, load_result, parse_threshold, run_checks
from stabbench.report.leaderboard import upsert_row
from tests.helpers import make_row


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
    (tmp_path / "results.json").write_text(json.dumps({
        "metrics": {"S_global": 1, "S_boundary": 2, "mIoU_syn": 3},
        "set": {"sha256": "abc", "protocol_version": "v1"},
        "settings": {"boundary_width": 15},
    }))
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


def _results_json(folder: Path, **metrics) -> Path:
    (folder / "results.json").write_text(json.dumps({
        "metrics": {"S_global": 99.0, "S_boundary": 95.0, "mIoU_syn": 80.0, **metrics},
        "set": {"sha256": "abc", "protocol_version": "v1"},
        "settings": {"boundary_width": 15},
        "model_outputs": {"non_finite": metrics.pop("non_finite", 0)},
    }))  # json.dumps writes NaN and Infinity, which json.loads reads back
    return folder / "results.json"


@pytest.mark.parametrize(("value", "problem"), [
    (150.0, "outside [0, 100]"), (-0.5, "outside [0, 100]"), (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"), (None, "null"), ("95", "non-numeric"), (True, "non-numeric"),
])
def test_a_metric_out_of_range_in_results_json_is_an_invalid_result(tmp_path: Path, value, problem) -> None:
    path = _results_json(tmp_path, S_boundary=value)
    with pytest.raises(DataError, match=r"results\.json: invalid result: metrics\.S_boundary is .*" + re.escape(problem)):
        load_result(path)


@pytest.mark.parametrize("value", [-1, 1.5, "2", None])
def test_a_count_must_be_a_non_negative_integer(tmp_path: Path, value) -> None:
    path = _results_json(tmp_path, non_finite=value)
    with pytest.raises(DataError, match=r"invalid result: model_outputs\.non_finite is .*a count"):
        load_result(path)


@pytest.mark.parametrize("cell", ["-1", "1.5", "nan", "two"])
def test_a_count_in_a_leaderboard_row_must_be_a_non_negative_integer(tmp_path: Path, cell) -> None:
    upsert_row(tmp_path / "lb.csv", {**make_row("m1"), "non_finite": cell})
    with pytest.raises(DataError, match=r"lb\.csv: invalid result: non_finite of the row of 'm1' is .*a count"):
        load_result(tmp_path / "lb.csv", "m1")
    upsert_row(tmp_path / "lb.csv", {**make_row("m1"), "non_finite": ""}, replace=True)
    assert load_result(tmp_path / "lb.csv", "m1").non_finite == 0  # a row written before it was recorded


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 100.5, -1.0])
def test_a_metric_out_of_range_in_a_leaderboard_row_is_an_invalid_result(tmp_path: Path, value) -> None:
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row("m1", value))
    with pytest.raises(DataError, match=r"lb\.csv: invalid result: S_global of the row of 'm1' is "):
        load_result(path, "m1")


def test_the_bounds_themselves_are_valid(tmp_path: Path) -> None:
    assert load_metrics(_results_json(tmp_path, S_global=100.0, S_boundary=0.0, mIoU_syn=100)) == {
        "S_global": 100.0, "S_boundary": 0.0, "mIoU_syn": 100.0}
    upsert_row(tmp_path / "lb.csv", {**make_row("m1", 100.0), "S_boundary": 0.0, "non_finite": 0})
    assert load_result(tmp_path / "lb.csv", "m1").metrics == {"S_global": 100.0, "S_boundary": 0.0, "mIoU_syn": 80.25}


def test_a_real_video_row_has_no_miou_to_check(tmp_path: Path) -> None:
    upsert_row(tmp_path / "lb.csv", {**make_row("m1"), "kind": "real-video", "mIoU_syn": float("nan")})
    result = load_result(tmp_path / "lb.csv", "m1")
    assert result.metrics["S_global"] == 99.0 and math.isnan(result.metrics["mIoU_syn"])
    upsert_row(tmp_path / "lb.csv", {**make_row("m1"), "kind": "real-video", "S_boundary": float("nan")}, replace=True)
    with pytest.raises(DataError, match="S_boundary of the row of 'm1' is nan, not a finite number"):
        load_result(tmp_path / "lb.csv", "m1")
