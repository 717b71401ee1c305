"""Evaluation across processes and machines with ``torch.distributed`` (``torchrun``).

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), each rank
evaluates one exact shard of the set (sequences ``rank, rank + world, ...``: no padding, no
sequence twice), then every rank's mergeable count state is gathered on all ranks; rank 0
merges them (the counts are those of a single process, so the metrics are too) and alone
writes ``results.json``, the CSVs, the plot and the leaderboard row. An error on any rank
(bad data, a bad model) is raised on every rank with the failing rank named, so every rank
exits non-zero and nothing is written; a rank that dies is handled by ``torchrun``, which
stops the others. The rank plumbing (process group, timeouts, :func:`gather`) is shared with
``stabbench finetune`` in :mod:`stabbench.distributed`.
"""

from __future__ import annotations

from typing import Callable

from stabbench.distributed import Ranks, gather, start, stop
from stabbench.errors import StabbenchError
from stabbench.evaluation.merge import merge_states
from stabbench.evaluation.state import EvalState


def gather_eval_states(ranks: Ranks, run: Callable[[], EvalState]) -> EvalState:
    """``run()`` this rank's shard (the group already joined) and gather every rank's counts:
    the merged state, the counts of a single process, on every rank. An error on any rank is
    raised on every rank (:func:`~stabbench.distributed.gather`)."""
    try:
        outcome = run().state_dict()
    except StabbenchError as exc:
        outcome = exc  # every rank hears of it at the gather
    return merge_states(gather(ranks, outcome))


def evaluate_across_ranks(ranks: Ranks, device: str, run: Callable[[], EvalState]) -> EvalState | None:
    """Join the group, ``run()`` this rank's shard, gather every rank's counts; the merged state
    (counts of a single process) on rank 0, ``None`` on the others. An error on any rank is
    raised on every rank (:func:`~stabbench.distributed.gather`)."""
    start(ranks, device)
    state = gather_eval_states(ranks, run)
    stop()
    return state if ranks.leader else None


__all__ = ["evaluate_across_ranks", "gather_eval_states"]
