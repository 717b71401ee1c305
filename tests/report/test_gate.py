"""stabbench.report.gate: thresholds, checks and their margins, metrics from results.json
or a leaderboard row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stabbench.errors import DataError
from stabbench.report.gate import load_metrics, parse_threshold, run_checks
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
