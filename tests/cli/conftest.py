"""Fixtures of the end-to-end CLI tests: the eval outputs that several commands' tests read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import EPOCH, FLICKER_RATE, eval_cli, ok


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a stray default output (leaderboard.csv, eval-*) never lands in the repo


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    """The folder of the shared eval outputs and of their leaderboard ``work/lb.csv``."""
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="session")
def oracle(work: Path, shapes_set: Path) -> Path:
    """The oracle's eval folder (with plot), its row in ``work/lb.csv``."""
    out = work / "eval-oracle"
    ok(eval_cli("builtin:oracle", shapes_set, out, "--leaderboard", work / "lb.csv", env={"SOURCE_DATE_EPOCH": EPOCH}))
    return out


@pytest.fixture(scope="session")
def flicker(work: Path, shapes_set: Path, oracle: Path) -> Path:
    """``builtin:flicker,rate=0.1`` (band 15 = the metric's), its row in ``work/lb.csv``."""
    out = work / "eval-flicker"
    ok(eval_cli(f"builtin:flicker,rate={FLICKER_RATE}", shapes_set, out, "--no-plot", "--leaderboard", work / "lb.csv"))
    return out
