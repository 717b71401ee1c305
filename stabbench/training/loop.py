"""The step and the loop of a run, with an optional stage timer (used by ``benchmarks/``).

One step (mode ``coherent``): a batch of ``batch_labeled`` labelled images and
``batch_pairs`` video pairs goes through the network in one forward pass (the paper's batch
of 24 = 12 + 6 x 2: BatchNorm sees all of it); the loss is
``coherent_loss(segmentation_loss(labelled), logits_t, logits_t1, flows, masks)``.
Mode ``liu`` (``--temporal-loss liu``): the same batch and flows; the loss is
``L_seg + lambda_liu * liu_temporal_loss(logits_t, logits_t1, frames, flow_fw)`` (the peer,
:mod:`stabbench.losses.temporal`; bc = gc = 0 in the log).
Mode ``control`` (``--temporal-loss none``, alias ``--no-coherent``): exactly the same batch (the same labelled images and
pair frames, in the same order, in the same single forward pass, so BatchNorm sees the same
24 images and computes the same batch statistics) and the same data order and pair draws;
only the loss differs: the supervised one alone (bc = gc = 0 in the log). The control step
does not use the flows (they are neither stacked nor sent to the device), but the run still
computes or reads them (cached on disk, once per pair ever), so both modes list and validate
the same pairs and can share one cache. Mode ``supervised`` (no ``--videos``): labelled images only.
Under torchrun (:func:`forward_batch`) each rank forwards its slice of that batch and gets the
logits of all of it back, so the loss is the one of the whole batch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from stabbench.conventions import IGNORE_LABEL
from stabbench.errors import ModelError
from stabbench.training.config import lr_at
from stabbench.training.run import TrainRun, TrainState

LOSS_TERMS = ("total", "seg", "bc", "gc", "liu")


class StageTimer:
    """Accumulates wall time per named stage of a step (``data``, ``forward``, ``loss``, ``backward``,
    ``optimizer``); pass one to :func:`train_step` to time a step without copying it."""

    def __init__(self, synchronize: Callable[[], None] | None = None):
        self.seconds: dict[str, float] = defaultdict(float)
        self.synchronize = synchronize

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize is not None:
                self.synchronize()
            self.seconds[name] += time.perf_counter() - t0


@contextmanager
def _untimed(name: str) -> Iterator[None]:
    yield


def flow_tensors(run: TrainRun, flow) -> tuple:
    """A batch's :class:`~stabbench.flow.PairFlow` as ``(flow_fw [B,2,H,W], valid_fw, flow_bw, valid_bw)`` tensors."""
    import torch

    def tensor(a, is_flow):
        t = torch.from_numpy(np.ascontiguousarray(a)).to(run.device)
        return t.permute(0, 3, 1, 2).contiguous() if is_flow else t

    return tensor(flow.flow_fw, True), tensor(flow.valid_fw, False), tensor(flow.flow_bw, True), tensor(flow.valid_bw, False)


def draw_batch(run: TrainRun, state: TrainState):
    """The next batch, drawn from the run's generator in the documented order:
    ``(images, labels, pair_batch or None)``."""
    cfg, order, rng = run.config, state.order, state.rng
    images, labels = run.labeled.batch(order.labeled_indices(rng), rng, cfg.augment)
    if run.pairs is None:
        return images, labels, None
    pair_idx = order.pair_indices(rng)
    flips = [bool(rng.random() < 0.5) for _ in pair_idx] if cfg.augment else [False] * len(pair_idx)
    # the control run forwards the same pair frames (same BatchNorm batch), without flows
    return images, labels, run.pairs.batch(pair_idx, flips, with_flow=cfg.uses_flow)


def frames_01(run: TrainRun, frames: np.ndarray):
    """uint8 ``(B, H, W, 3)`` RGB -> float32 ``[B, 3, H, W]`` in ``[0, 1]`` on the device (the
    photometric weight of the Liu loss reads the frames, whatever the model's normalisation)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).to(run.device).permute(0, 3, 1, 2).float() / 255.0


def forward_batch(run: TrainRun, parts: list[np.ndarray]) -> list:
    """Logits of the batch's ``parts`` (labelled images, then frames ``t`` and ``t+1``: uint8
    ``(B_k, H, W, 3)``) in one forward pass: ``[B_k, C, H, W]`` per part.

    Under torchrun this rank forwards its contiguous slice of each part and the global logits
    are all-gathered with autograd (:mod:`~stabbench.training.distributed`): every rank gets the
    single-process logits of the whole batch.
    """
    import torch

    from stabbench.predictors.output import first_tensor

    ranks = run.ranks
    if ranks is not None:
        from stabbench.training.distributed import gather_parts, rank_slice

        parts = [part[rank_slice(len(part), ranks)] for part in parts]
    sizes = [len(part) for part in parts]
    logits = first_tensor(run.trained(torch.cat([run.to_input(part) for part in parts])))
    if ranks is not None:
        return gather_parts(logits, sizes, ranks)
    return list(logits.split(sizes))


def compute_loss(run: TrainRun, images, labels, pair_batch) -> dict:
    """One forward pass of the whole batch; the loss terms (tensors, :data:`LOSS_TERMS`)."""
    import torch

    from stabbench.losses import coherent_loss, liu_temporal_loss, segmentation_loss

    cfg = run.config
    y_l = torch.from_numpy(labels).to(run.device).long()

    def terms(seg, **active):
        zero = seg.detach() * 0
        return {"seg": seg, "bc": zero, "gc": zero, "liu": zero, **active}

    if pair_batch is None:
        (logits_l,) = forward_batch(run, [images])
        seg = segmentation_loss(logits_l, y_l, kind=cfg.seg_loss, ignore_index=IGNORE_LABEL)
        return {"total": seg, **terms(seg)}
    logits_l, logits_t, logits_t1 = forward_batch(run, [images, pair_batch.frames_t, pair_batch.frames_t1])
    seg = segmentation_loss(logits_l, y_l, kind=cfg.seg_loss, ignore_index=IGNORE_LABEL)
    if cfg.temporal_loss == "none":  # control: same forward pass, supervised loss only
        return {"total": seg, **terms(seg)}
    flow_fw, valid_fw, flow_bw, valid_bw = flow_tensors(run, pair_batch.flow)
    if cfg.temporal_loss == "liu":
        liu = liu_temporal_loss(logits_t, logits_t1, frames_01(run, pair_batch.frames_t),
                                frames_01(run, pair_batch.frames_t1), flow_fw, alpha=cfg.liu_alpha)
        return {"total": seg + cfg.lambda_liu * liu, **terms(seg, liu=liu)}
    coherent = coherent_loss(seg, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw, width=cfg.width,
                             beta=cfg.beta, lambda_bc=cfg.lambda_bc, lambda_gc=cfg.lambda_gc)
    return {**terms(seg), **coherent}


def train_step(run: TrainRun, state: TrainState, timer: StageTimer | None = None) -> dict:
    """Draw the next batch, take one optimizer step; returns ``{"lr", "total", "seg", "bc", "gc", "liu"}``."""
    import torch

    stage = timer.stage if timer is not None else _untimed
    with stage("data"):
        images, labels, pair_batch = draw_batch(run, state)
    lr = lr_at(run.config, state.order.global_step, run.total_steps)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with stage("forward+loss"):
        terms = compute_loss(run, images, labels, pair_batch)
    total = terms["total"]
    if not bool(torch.isfinite(total.detach())):
        parts = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        raise ModelError(f"the loss is not finite at step {state.order.global_step + 1} ({parts}); lower --lr or check the data")
    with stage("backward"):
        state.optimizer.zero_grad(set_to_none=True)
        total.backward()
    with stage("optimizer"):
        state.optimizer.step()
    return {"lr": lr, **{k: float(terms[k].detach()) for k in LOSS_TERMS}}


def evaluate_run(run: TrainRun, state: TrainState, progress: Callable[[int, int], None] | None = None) -> dict:
    """Stability of the current model (eval mode) on ``--eval-set``: ``{step, epoch, S_global, ...}``.

    Under torchrun each rank scores one shard of the set and the counts are gathered (the
    single-process counts, on every rank)."""
    from stabbench.conventions import BAND_WIDTH
    from stabbench.evaluation import evaluate
    from stabbench.metrics import summarize
    from stabbench.predictors import TorchPredictor

    t0 = time.perf_counter()
    ranks = run.ranks
    shard = (0, 1) if ranks is None else (ranks.rank, ranks.world)

    def score():
        try:
            predictor = TorchPredictor(run.model, run.spec, device=str(run.device))
            return evaluate(predictor, run.eval_set, spec=run.spec, band_width=BAND_WIDTH, shard=shard, progress=progress)
        finally:
            run.model.train()

    if ranks is None:
        result = score()
    else:
        from stabbench.evaluation.distributed import gather_eval_states

        result = gather_eval_states(ranks, score)
    overall = summarize(result.stability, result.confusion)
    order = state.order
    state.last_eval = {"step": order.global_step, "epoch": order.epoch if order.step_in_epoch == 0 else order.epoch + 1,
                       "S_global": float(overall["S_global"]), "S_boundary": float(overall["S_boundary"]),
                       "mIoU_syn": float(overall["mIoU"]), "sequences": len(run.eval_set),
                       "eval_time_s": round(time.perf_counter() - t0, 3)}
    state.last_eval_step = order.global_step
    return state.last_eval


__all__ = ["LOSS_TERMS", "StageTimer", "compute_loss", "draw_batch", "evaluate_run", "flow_tensors", "forward_batch",
           "frames_01", "train_step"]
