"""Evaluation across processes and machines with ``torch.distributed`` (``torchrun``).

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), each rank
evaluates one exact shard of the set (sequences ``rank, rank + world, ...``: no padding, no
sequence twice), then every rank's mergeable count state is gathered on all ranks; rank 0
merges them (the counts are those of a single process, so the metrics are too) and alone
writes ``results.json``, the CSVs, the plot and the leaderboard row. An error on any rank
(bad data, a bad model) is raised on every rank with the failing rank named, so every rank
exits non-zero and nothing is written; a rank that dies is handled by ``torchrun``, which
stops the others. The backend is gloo on the CPU and NCCL when ``--device`` is a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from stabbench.errors import StabbenchError, UsageError
from stabbench.evaluation.merge import merge_states
from stabbench.evaluation.state import EvalState

#: How long a rank waits for the others at the gather (a slow rank on a big shard may take long).
GATHER_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def launched_ranks() -> Ranks | None:
    """The ranks of a ``torchrun`` launch with more than one process, else ``None``."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise UsageError("WORLD_SIZE and RANK must be integers (set by torchrun)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise UsageError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return Ranks(rank, world)


def start(ranks: Ranks, device: str) -> None:
    """Join the process group (gloo on the CPU, NCCL on GPUs)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, rank=ranks.rank, world_size=ranks.world, timeout=GATHER_TIMEOUT)


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def gather(ranks: Ranks, outcome) -> list:
    """Every rank's ``outcome`` (a state dict, or the error it raised), in rank order, on every rank.

    If any rank failed, its error is raised on every rank (its class, so its exit code, kept).
    """
    import torch.distributed as dist

    payload = ("error", type(outcome).__name__, str(outcome), getattr(outcome, "exit_code", 1)) if isinstance(
        outcome, StabbenchError) else ("ok", outcome)
    everything: list = [None] * ranks.world
    dist.all_gather_object(everything, payload)
    for rank, item in enumerate(everything):
        if item[0] == "error":
            if rank == ranks.rank and isinstance(outcome, StabbenchError):
                raise outcome
            error = StabbenchError(f"rank {rank}: {item[2]}")
            error.exit_code = item[3]
            raise error
    return [item[1] for item in everything]


def evaluate_across_ranks(ranks: Ranks, device: str, run: Callable[[], EvalState]) -> EvalState | None:
    """Join the group, ``run()`` this rank's shard, gather every rank's counts; the merged state
    (counts of a single process) on rank 0, ``None`` on the others. An error on any rank is
    raised on every rank (:func:`gather`)."""
    start(ranks, device)
    try:
        outcome = run().state_dict()
    except StabbenchError as exc:
        outcome = exc  # every rank hears of it at the gather
    parts = gather(ranks, outcome)
    stop()
    return merge_states(parts) if ranks.leader else None
