"""``stabbench report`` end to end through the CLI (stabbench.cli.report): the page, overwrite, exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import cli, fails, ok, results_of, write_visuals


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


def test_report_of_a_real_video_result(tmp_path: Path) -> None:
    """``stabbench video`` on a tiny clip (24x24, 4 frames, an object moving 1 px right, the model
    wrong on a few pixels), then the report: the overall and per-video tables with the paired
    differences, their intervals and verdicts, and the models in the leaderboard."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
    for t in range(4):
        mask = np.zeros((24, 24), np.uint8)
        mask[6:18, 6 + t:14 + t] = 1
        frame = base[:, 8 - t:32 - t].copy()  # the scene moves right by 1 px per frame
        pred = mask.copy()
        pred[rng.integers(0, 24, 6), rng.integers(0, 24, 6)] ^= 1
        for folder, image in (("frames", frame), ("ann", mask * 255), ("pred", pred)):
            (tmp_path / folder / "clip").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / folder / "clip" / f"{t:05d}.png")
    video = tmp_path / "video"
    ok(cli("video", "-q", "--model", f"predictions:{tmp_path / 'pred'}", "--videos", tmp_path / "frames",
           "--annotations", tmp_path / "ann", "--flow-cache", tmp_path / "cache", "--bootstrap", "200",
           "--boundary-width", "3", "--no-leaderboard", "--out", video))
    results = results_of(video)
    ok(cli("report", video, "--out", tmp_path / "r"))
    page = (tmp_path / "r" / "index.html").read_text()
    for row in results["overall"] + results["per_video"]:
        for metric in ("S_global", "S_boundary"):
            lo, hi = row[f"d{metric}_lo"], row[f"d{metric}_hi"]
            assert f"<td>[{lo:.2f}, {hi:.2f}]</td>" in page
            assert f"<td>{row[f'{metric}_verdict']}</td>" in page
    assert "<h3>Over all videos</h3>" in page and "<h3>Per video</h3>" in page
    assert page.count("<td>real-video/1</td>") == len(results["overall"])  # leaderboard rows: protocol shown
