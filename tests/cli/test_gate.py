"""``stabbench gate`` end to end through the CLI (stabbench.cli.gate): thresholds, a baseline
leaderboard row with a tolerance, exit codes, usage errors and bad data."""

from __future__ import annotations

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
