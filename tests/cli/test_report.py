"""``stabbench report`` end to end through the CLI (stabbench.cli.report): the page, overwrite, exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, fails, ok, write_visuals


@pytest.fixture
def result_copy(flicker: Path, tmp_path: Path) -> Path:
    """A writable copy of the flicker eval result (results.json only)."""
    out = tmp_path / "eval-copy"
    out.mkdir()
    shutil.copy(flicker / "results.json", out / "results.json")
    return out


def test_report_writes_one_page_and_refuses_to_overwrite(result_copy: Path, tmp_path: Path) -> None:
    write_visuals(result_copy)
    out = tmp_path / "report"
    result = ok(cli("report", result_copy, "--out", out))
    assert result.stdout.strip() == str(out / "index.html")
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    first = (out / "index.html").read_bytes()
    line = fails(cli("report", result_copy, "--out", out), 4)
    assert "index.html: already exists; pass --overwrite" in line
    ok(cli("report", result_copy, "--out", out, "--overwrite"))
    assert (out / "index.html").read_bytes() == first  # same inputs, same bytes


def test_report_errors(result_copy: Path, tmp_path: Path) -> None:
    assert "give at least one result folder or --leaderboard CSV" in fails(cli("report", "--out", tmp_path / "r"), 2)
    line = fails(cli("report", tmp_path / "missing", "--out", tmp_path / "r"), 3)
    assert line.endswith("/missing: results file not found")
    (result_copy / "visuals").mkdir()
    item = {"sequence": "s", "perturbation": "p", "severity": 1, "S_global": None, "S_boundary": None,
            "clip_gif": "../results.json", "heatmap": None, "compare": None}
    write_visuals(result_copy, items=[item], files={})
    line = fails(cli("report", result_copy, "--out", tmp_path / "r"), 3)
    assert "visuals.json: item 0 clip_gif: ../results.json leaves the visuals folder; refused" in line
    assert not (tmp_path / "r").exists()  # nothing written


def test_embedding_cap_warns_on_stderr(result_copy: Path, tmp_path: Path) -> None:
    write_visuals(result_copy)
    result = ok(cli("report", result_copy, "--out", tmp_path / "r", "--max-embed-mb", "0"))
    assert "images left out" in result.stderr and "(--max-embed-mb)" in result.stderr
