"""``stabbench gate`` end to end through the CLI (stabbench.cli.gate): thresholds, a baseline
leaderboard row with a tolerance, exit codes, usage errors, bad data and invalid results (a
metric outside [0, 100], NaN or inf in the result or the baseline: exit 3, never a pass or a fail)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import HEADLINE, cli, fails, results_of


def test_gate_passes(oracle: Path) -> None:
    result = cli("gate", oracle, "--min", "S_boundary=99.5", "--min", "mIoU_syn=99")
    assert result.exit_code == 0, result.output
    assert "gate: all 2 checks passed" in result.stdout
    assert cli("gate", oracle / "results.json", "--min", "S_global=100").exit_code == 0


def test_gate_fails_and_says_by_how_much(flicker: Path) -> None:
    s_b = results_of(flicker)["metrics"]["S_boundary"]
    result = cli("gate", flicker, "--min", "S_global=90", "--min", "S_boundary=95")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok") and "S_global" in lines[0]
    fail = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fail) == 1 and "S_boundary" in fail[0] and "95.000" in fail[0]
    assert f"margin {s_b - 95:+.3f}" in fail[0]
    assert "1 of 2 checks fell short" in result.stdout


def test_gate_against_a_baseline_row_with_tolerance(work: Path, flicker: Path, oracle: Path) -> None:
    lb = work / "lb.csv"
    args = ("--baseline", lb, "--baseline-model", "builtin:oracle")
    assert cli("gate", oracle, *args).exit_code == 0  # equal to the baseline, tolerance 0
    m = results_of(flicker)["metrics"]
    worst = 100.0 - min(m[k] for k in HEADLINE)  # how far flicker is below the oracle
    result = cli("gate", flicker, *args, "--tolerance", f"{worst - 0.5:.3f}")
    assert result.exit_code == 1, result.output
    assert "baseline builtin:oracle" in result.stdout and "FAIL S_boundary" in result.stdout
    result = cli("gate", flicker, *args, "--tolerance", f"{worst + 0.5:.3f}")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok  ") == 3
    # the result may itself be a leaderboard row
    row_model = results_of(flicker)["model"]["id"]
    assert cli("gate", lb, "--model", row_model, *args, "--tolerance", "1").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ("--min", "S_foo=1"),
        ("--min", "S_boundary=high"),
        ("--min", "S_boundary"),
        (),  # nothing to check
    ],
    ids=["unknown-metric", "not-a-number", "no-value", "nothing-to-check"],
)
def test_gate_usage_errors(oracle: Path, args) -> None:
    line = fails(cli("gate", oracle, *args), 2)
    assert ("METRIC=VALUE" in line) or ("not a number" in line) or ("nothing to check" in line), line


def test_gate_bad_data(oracle: Path, shapes_set: Path, tmp_path: Path) -> None:
    line = fails(cli("gate", tmp_path / "missing.json", "--min", "S_global=1"), 3)
    assert "missing.json" in line and "not found" in line
    line = fails(cli("gate", shapes_set / "manifest.json", "--min", "S_global=1"), 3)
    assert "manifest.json" in line and "not a stabbench results.json" in line
    garbage = tmp_path / "results.json"
    garbage.write_text("{not json")
    fails(cli("gate", garbage, "--min", "S_global=1"), 3)
    line = fails(cli("gate", oracle, "--baseline", tmp_path / "nope.csv", "--baseline-model", "x"), 3)
    assert "nope.csv" in line


def _edited_result(oracle: Path, folder: Path, **metrics) -> Path:
    """A copy of the oracle's results.json with ``metrics`` changed (JSON writes NaN and Infinity)."""
    results = results_of(oracle)
    results["metrics"].update(metrics)
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _edited_board(work: Path, path: Path, model: str, **cells) -> Path:
    """A copy of ``work/lb.csv`` with ``cells`` changed in the row of ``model``."""
    with open(work / "lb.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, **cells} if r["model"] == model else r for r in rows)
    return path


@pytest.mark.parametrize(("value", "problem"), [(150.0, "150.0, outside [0, 100]"), (float("nan"), "nan, not a finite"),
                                                (float("inf"), "inf, not a finite"), (-1.0, "-1.0, outside [0, 100]")])
def test_an_invalid_metric_in_the_result_is_exit_3(oracle: Path, tmp_path: Path, value, problem) -> None:
    result = _edited_result(oracle, tmp_path / "bad", S_boundary=value)
    line = fails(cli("gate", result, "--min", "S_global=1"), 3)
    assert str(result / "results.json") in line and f"invalid result: metrics.S_boundary is {problem}" in line
    line = fails(cli("gate", oracle, "--baseline", result), 3)  # as a baseline too
    assert "metrics.S_boundary" in line


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "150.0", "NaN"])
def test_an_invalid_metric_in_a_baseline_row_is_exit_3(work: Path, oracle: Path, tmp_path: Path, cell: str) -> None:
    board = _edited_board(work, tmp_path / "lb.csv", "builtin:oracle", S_boundary=cell)
    line = fails(cli("gate", oracle, "--baseline", board, "--baseline-model", "builtin:oracle", "--tolerance", "1"), 3)
    assert "lb.csv: invalid result: S_boundary of the row of 'builtin:oracle'" in line
    fails(cli("gate", board, "--model", "builtin:oracle", "--min", "S_global=1"), 3)  # as the result too


def test_the_bounds_are_valid_and_pass_or_fail_as_before(work: Path, oracle: Path, tmp_path: Path) -> None:
    assert results_of(oracle)["metrics"]["S_global"] == 100.0
    assert cli("gate", oracle, "--min", "S_global=100", "--min", "S_boundary=100").exit_code == 0
    zero = _edited_result(oracle, tmp_path / "zero", S_global=0.0, S_boundary=0.0, mIoU_syn=0.0)
    result = cli("gate", zero, "--min", "S_global=0.5")
    assert result.exit_code == 1 and "FAIL S_global" in result.stdout, result.output
    assert cli("gate", zero, "--min", "S_global=0").exit_code == 0
    board = _edited_board(work, tmp_path / "lb.csv", "builtin:oracle", S_global="0.0", S_boundary="0.0", mIoU_syn="0.0")
    args = ("--baseline", board, "--baseline-model", "builtin:oracle")
    assert cli("gate", zero, *args).exit_code == 0  # 0.0 against a baseline of 0.0
    assert cli("gate", oracle, *args).exit_code == 0  # 100.0 against 0.0
    result = cli("gate", zero, "--baseline", work / "lb.csv", "--baseline-model", "builtin:oracle")
    assert result.exit_code == 1 and result.stdout.count("FAIL") == 3, result.output  # 0.0 against 100.0
