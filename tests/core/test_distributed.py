"""stabbench.distributed: who this process is under torchrun, the collective timeout, and the
one-process forms of the agreement helpers (the multi-rank forms run in
tests/evaluation/test_distributed.py and tests/training/test_distributed.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stabbench.distributed import (
    DEFAULT_TIMEOUT_S,
    Ranks,
    all_succeed,
    collective_timeout,
    launched_ranks,
    leader_then_share,
    outcome_of,
)
from stabbench.errors import DataError, IOFailure, UsageError


@pytest.mark.parametrize(("world", "rank", "want"), [(None, None, None), ("1", "0", None), ("2", "1", Ranks(1, 2))])
def test_launched_ranks(monkeypatch, world, rank, want) -> None:
    for name, value in (("WORLD_SIZE", world), ("RANK", rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert launched_ranks() == want


@pytest.mark.parametrize(("world", "rank", "words"), [("2", "2", "outside WORLD_SIZE 2"), ("two", "0", "integers")])
def test_launched_ranks_refuses_a_bad_environment(monkeypatch, world, rank, words) -> None:
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(UsageError, match=words):
        launched_ranks()


def test_collective_timeout(monkeypatch) -> None:
    monkeypatch.delenv("STABBENCH_DIST_TIMEOUT", raising=False)
    assert collective_timeout() == timedelta(seconds=DEFAULT_TIMEOUT_S)
    monkeypatch.setenv("STABBENCH_DIST_TIMEOUT", "90.5")
    assert collective_timeout() == timedelta(seconds=90.5)
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv("STABBENCH_DIST_TIMEOUT", bad)
        with pytest.raises(UsageError, match="STABBENCH_DIST_TIMEOUT"):
            collective_timeout()


def test_one_process_agreement_is_the_action_itself() -> None:
    assert all_succeed(None, lambda: 7) == 7
    assert leader_then_share(None, lambda: "checkpoint") == "checkpoint"
    error = DataError("x.png", "broken")

    def fail():
        raise error

    assert outcome_of(fail) is error

    def write():
        raise PermissionError(13, "Permission denied", "out/checkpoint.pt")

    failure = outcome_of(write)  # travels to the other ranks as an exit-6 error naming the file
    assert isinstance(failure, IOFailure) and str(failure).startswith("out/checkpoint.pt: cannot write or read")
    with pytest.raises(DataError):
        all_succeed(None, fail)
    assert Ranks(0, 2).leader and not Ranks(1, 2).leader
