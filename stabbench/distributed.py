"""Ranks of a ``torchrun`` launch: who this process is, the process group, and how the ranks
agree (used by ``stabbench eval`` and ``stabbench finetune``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ... ; :func:`launched_ranks` reads
them (``None`` for a single process). The backend is gloo on the CPU and NCCL on GPUs. Every
collective has a timeout (``STABBENCH_DIST_TIMEOUT`` seconds, default 7200): a rank never waits
forever for one that hangs. An error on one rank reaches every rank through :func:`gather`
(its class, so its exit code, kept; the failing rank named), so every rank exits non-zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from stabbench.errors import IOFailure, StabbenchError, UsageError

#: Default of ``STABBENCH_DIST_TIMEOUT``: how long a rank waits for the others at a collective
#: (a slow rank on a big eval shard, or computing its share of the flows, may take long).
DEFAULT_TIMEOUT_S = 7200


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


def collective_timeout() -> timedelta:
    """``STABBENCH_DIST_TIMEOUT`` (seconds > 0), default :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get("STABBENCH_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"STABBENCH_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return timedelta(seconds=seconds)


def start(ranks: Ranks, device: str) -> None:
    """Join the process group (gloo on the CPU, NCCL on GPUs)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, rank=ranks.rank, world_size=ranks.world, timeout=collective_timeout())


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def gather(ranks: Ranks, outcome) -> list:
    """Every rank's ``outcome`` (any picklable value, or the error it raised), in rank order, on every rank.

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


def outcome_of(action: Callable[[], Any]) -> Any:
    """``action()``, or the :class:`StabbenchError` it raised (for :func:`gather`); an ``OSError``
    (a write that failed: disk full, read-only folder) becomes an :class:`IOFailure` naming the file."""
    try:
        return action()
    except StabbenchError as exc:
        return exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return IOFailure(f"{where}cannot write or read ({exc.strerror or exc}); nothing was half-written")


def all_succeed(ranks: Ranks | None, action: Callable[[], Any]) -> Any:
    """Run ``action`` on every rank and agree: this rank's result once every rank succeeded, or
    (if any rank raised a :class:`StabbenchError`) that error on every rank. Only the outcome
    travels, never the result. One process: ``action()``."""
    if ranks is None:
        return action()
    outcome = outcome_of(action)
    gather(ranks, outcome if isinstance(outcome, StabbenchError) else None)
    return outcome


def leader_then_share(ranks: Ranks | None, action: Callable[[], Any]) -> Any:
    """Run ``action`` on rank 0 alone; every rank gets its result (or raises its error).
    The others wait meanwhile (a barrier). One process: ``action()``."""
    if ranks is None:
        return action()
    return gather(ranks, outcome_of(action) if ranks.leader else None)[0]
