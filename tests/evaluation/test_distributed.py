"""``torchrun --nproc-per-node 2 -m stabbench eval``: one exact shard per rank, counts gathered,
rank 0 alone writes, the bytes of a single-process run; an error on one rank stops every rank."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, cli

ARGS = ("--model", "builtin:flicker,rate=0.1", "--no-plot", "-q")


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "stabbench", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_eval_writes_the_single_process_bytes_once(small_set: Path, tmp_path: Path) -> None:
    single = cli("eval", *ARGS, "--set", small_set, "--out", tmp_path / "single", "--leaderboard", tmp_path / "a.csv")
    assert single.exit_code == 0, single.output
    ran = torchrun("eval", *ARGS, "--set", str(small_set), "--out", str(tmp_path / "ranks"), "--leaderboard",
                   str(tmp_path / "b.csv"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert (tmp_path / "ranks" / "results.json").read_bytes() == (tmp_path / "single" / "results.json").read_bytes()
    rows_a = (tmp_path / "a.csv").read_text().splitlines()
    rows_b = (tmp_path / "b.csv").read_text().splitlines()
    assert len(rows_b) == 2 and rows_a[1].rsplit(",", 1)[0] == rows_b[1].rsplit(",", 1)[0]  # one row (the date aside)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_an_error_on_one_rank_stops_every_rank(small_set: Path, tmp_path: Path) -> None:
    broken = tmp_path / "set"
    shutil.copytree(small_set, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["sequences"][3]["frames"][0]["mask_pixels_sha256"] = "0" * 64  # rank 1's shard
    (broken / "manifest.json").write_text(json.dumps(manifest))
    ran = torchrun("eval", *ARGS, "--set", str(broken), "--out", str(tmp_path / "ranks"), "--no-leaderboard", cwd=tmp_path)
    assert ran.returncode != 0
    assert "seq_00003, mask 0" in ran.stderr and "rank 1" in ran.stderr  # rank 0 names the failing rank
    assert not (tmp_path / "ranks").exists()


@pytest.mark.slow
def test_torchrun_saves_every_ranks_predictions_as_one_process_does(small_set: Path, tmp_path: Path) -> None:
    from tests.helpers import tree_hashes

    single = cli("eval", *ARGS, "--set", small_set, "--out", tmp_path / "single", "--no-leaderboard", "--save-predictions")
    assert single.exit_code == 0, single.output
    ran = torchrun("eval", *ARGS, "--set", str(small_set), "--out", str(tmp_path / "ranks"), "--no-leaderboard",
                   "--save-predictions", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert tree_hashes(tmp_path / "ranks") == tree_hashes(tmp_path / "single")  # results.json, PNGs, index
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no rank's staging left
