"""Fine-tuning across ranks (``torchrun ... -m stabbench finetune``): DistributedDataParallel
that trains the weights of a single process with the same global batch.

How (the reasons are in ``docs/scaling.md``):

* **Data**: every rank draws the same global batch from the run's seeded generator (the
  single-process data order, augmentation draws included) and forwards its contiguous slice
  of it: labelled images ``[r n/W, (r+1) n/W)`` and pairs ``[r m/W, (r+1) m/W)`` (both frames
  of a pair on the same rank). Every batch size of the schedule must divide by the world size
  ``W`` (:func:`check_batches`).
* **BatchNorm**: :class:`RankSyncedBatchNorm` normalises with the mean and variance of the
  *global* batch (differentiable all-reduces), as the single process's one forward pass of
  ``n + 2m`` images does. (``torch.nn.SyncBatchNorm`` refuses CPU tensors.)
* **Loss**: the rank's logits are all-gathered with autograd (:func:`gather_parts`) into the
  global batch in single-process order, and every rank computes the loss of the whole batch
  exactly as one process would (the Coherent Loss' Lovasz terms sort over all pairs' band
  pixels at once: they do not split into per-rank sums). With ``L_k = L`` on every rank, the
  backward of the collectives gives rank ``r`` the gradient ``W dL/dθ_r`` (its share of the
  computation, counted once from each rank's copy of the loss); DistributedDataParallel
  averages over ranks: ``(1/W) sum_r W dL/dθ_r = dL/dθ``, the single-process gradient.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from stabbench.distributed import Ranks
from stabbench.errors import ModelError, UsageError


def schedule_batch_sizes(num_labeled: int, batch_labeled: int, num_pairs: int, batch_pairs: int) -> dict[str, set[int]]:
    """The batch sizes a run's :class:`~stabbench.training.data.DataOrder` produces:
    labelled (full batches and an epoch's shorter last one) and pairs."""
    full = min(batch_labeled, num_labeled)
    last = num_labeled - (-(-num_labeled // batch_labeled) - 1) * batch_labeled
    sizes = {"labelled images": {full, last}}
    if num_pairs:
        sizes["video pairs"] = {min(batch_pairs, num_pairs)}
    return sizes


def check_batches(num_labeled: int, batch_labeled: int, num_pairs: int, batch_pairs: int, world: int) -> None:
    """UsageError unless every batch of the schedule splits evenly over ``world`` ranks."""
    for what, sizes in schedule_batch_sizes(num_labeled, batch_labeled, num_pairs, batch_pairs).items():
        uneven = sorted(size for size in sizes if size % world)
        if uneven:
            raise UsageError(
                f"under torchrun the global batch is split over the {world} ranks: a batch of {uneven[0]} {what} "
                f"does not divide by {world} (batches of {', '.join(map(str, sorted(sizes)))} {what} with "
                f"{num_labeled} labelled images{f', {num_pairs} pairs' if num_pairs else ''}); "
                f"choose --batch-labeled/--batch-pairs (and the data) so that every batch is a multiple of {world}"
            )


def rank_slice(size: int, ranks: Ranks) -> slice:
    """This rank's contiguous share of a batch of ``size`` items (``size`` divisible by the world)."""
    share = size // ranks.world
    return slice(ranks.rank * share, (ranks.rank + 1) * share)


# --------------------------------------------------------------------------- BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the adjoint of a sum seen by every rank is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class _AllGather(torch.autograd.Function):
    """Every rank's tensor (equal shapes), concatenated in rank order along dim 0; backward: the sum
    over ranks of the gradient of this rank's slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        ctx.rank, ctx.size = dist.get_rank(), tensor.shape[0]
        chunks = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(chunks, tensor.contiguous())
        return torch.cat(chunks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)  # gloo has no reduce-scatter: sum everything, keep this rank's slice
        return total[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class RankSyncedBatchNorm(_BatchNorm):
    """BatchNorm (1d/2d/3d) whose training-mode statistics are those of the batch of all ranks.

    Mean and biased variance per channel come from two differentiable all-reduces (the sum,
    then the sum of squared deviations from the global mean: the two-pass formula, as precise
    as one process's), so the gradient through the statistics is the single-process one too.
    Running statistics are updated as :class:`torch.nn.BatchNorm2d` does (unbiased variance,
    ``momentum`` or the cumulative average), identically on every rank. In eval mode it is a
    plain BatchNorm on this rank's input (no collective). Every rank must forward the same
    number of items (equal slices).

    Convention: input ``[B, C, *]`` (channels second); statistics over every dim but ``C``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, world: int = 1, plain: type = nn.BatchNorm2d):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.world = int(world)
        self.plain = plain

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _average_factor(self) -> float:
        if not (self.track_running_stats and self.num_batches_tracked is not None):
            return 0.0 if self.momentum is None else self.momentum
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not self.training:  # never a collective in eval mode (ranks evaluate shards of different sizes)
            return nn.functional.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                                            self.running_mean is None, 0.0, self.eps)
        factor = self._average_factor()
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.numel() // input.shape[1] * self.world
        mean = _all_reduce(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = _all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                unbiased = var.detach() * (count / max(count - 1, 1))
                self.running_mean.mul_(1.0 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _swap_batchnorm(module: nn.Module, make) -> nn.Module:
    """``module`` with every BatchNorm child replaced by ``make(child)`` (recursively, in place)."""
    for name, child in module.named_children():
        replacement = make(child)
        if replacement is not child:
            setattr(module, name, replacement)
        else:
            _swap_batchnorm(child, make)
    return module


def _move_state(source: _BatchNorm, target: _BatchNorm) -> _BatchNorm:
    """``target`` holding ``source``'s parameters and buffers (the same tensors: optimizers keep working)."""
    if source.affine:
        target.weight, target.bias = source.weight, source.bias
    target.running_mean, target.running_var = source.running_mean, source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.train(source.training)
    return target


def synchronise_batchnorm(module: nn.Module, world: int) -> nn.Module:
    """Replace every ``BatchNorm{1,2,3}d`` of ``module`` by a :class:`RankSyncedBatchNorm`
    (same parameters and buffers, same state-dict keys); in place, returns ``module``."""

    def make(child):
        if not isinstance(child, _BatchNorm) or isinstance(child, RankSyncedBatchNorm):
            return child
        synced = RankSyncedBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, world=world, plain=type(child))
        return _move_state(child, synced)

    return _swap_batchnorm(module, make)


def plain_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`synchronise_batchnorm` (before export: a plain module); in place, returns ``module``."""

    def make(child):
        if not isinstance(child, RankSyncedBatchNorm):
            return child
        plain = child.plain(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
        return _move_state(child, plain)

    return _swap_batchnorm(module, make)


# --------------------------------------------------------------------------- model and logits


def use_local_gpu(device: str) -> None:
    """``--device cuda`` under torchrun: this rank's GPU is ``LOCAL_RANK`` (one GPU per rank, NCCL)."""
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def distributed_network(model: nn.Module, ranks: Ranks, device: torch.device) -> Any:
    """``model`` with synchronised BatchNorm, wrapped in DistributedDataParallel (a collective:
    every rank calls it). A TorchScript model is refused (its layers cannot be replaced)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, torch.jit.ScriptModule):
        raise ModelError("a TorchScript model cannot be fine-tuned under torchrun (its BatchNorm layers cannot be "
                         "synchronised across ranks): pass its architecture (package.module:factory) and weights")
    synchronise_batchnorm(model, ranks.world)
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=device_ids)


def gather_parts(local: torch.Tensor, sizes: list[int], ranks: Ranks) -> list[torch.Tensor]:
    """The global batch from every rank's ``local`` output, part by part, in single-process order.

    ``local``: ``[sum(sizes), ...]``, this rank's slices of the parts (e.g. labelled images,
    frames ``t``, frames ``t+1``) one after the other; returns one tensor per part, the ranks'
    slices concatenated in rank order. Differentiable (all-gather with autograd).
    """
    per_rank = [chunk.split(sizes) for chunk in _AllGather.apply(local).split(sum(sizes))]
    return [torch.cat([chunks[k] for chunks in per_rank]) for k in range(len(sizes))]


__all__ = ["RankSyncedBatchNorm", "check_batches", "distributed_network", "gather_parts", "plain_batchnorm",
           "rank_slice", "schedule_batch_sizes", "synchronise_batchnorm", "use_local_gpu"]
