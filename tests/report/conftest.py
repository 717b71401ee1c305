"""Fixtures of the report tests: one real eval result and a writable copy of it (``write_visuals``
in tests/helpers.py adds a tiny ``visuals/visuals.json``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import EPOCH, eval_cli, ok


@pytest.fixture(scope="session")
def flicker_result(tmp_path_factory, small_set: Path) -> Path:
    """``builtin:flicker,rate=0.1`` on the 6-sequence ``small_set`` (no plot, no leaderboard). Read only."""
    out = tmp_path_factory.mktemp("report-eval") / "eval-flicker"
    ok(eval_cli("builtin:flicker,rate=0.1", small_set, out, "--no-plot", "--no-leaderboard",
                env={"SOURCE_DATE_EPOCH": EPOCH}))
    return out


@pytest.fixture
def result_copy(flicker_result: Path, tmp_path: Path) -> Path:
    """A writable copy of the eval result (results.json only)."""
    out = tmp_path / "eval-copy"
    out.mkdir()
    shutil.copy(flicker_result / "results.json", out / "results.json")
    return out
