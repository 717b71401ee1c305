"""Training: Coherent-Loss fine-tuning (``stabbench finetune``), its control, and supervised
training of a baseline from scratch (the same command without ``--videos``).

    >>> from stabbench.training import TrainConfig, run_training
    >>> cfg = TrainConfig(model="arch:tiny_unet", out="ft", dataset="shapes",
    ...                   dataset_options={"num_images": 8}, videos=("clips/",))   # doctest: +SKIP
    >>> result = run_training(cfg)                                                   # doctest: +SKIP

Modules, in dependency order: :mod:`~stabbench.training.config` (settings),
:mod:`~stabbench.training.data` (labelled images, video pairs as :class:`PairItem`, the seeded
data order), :mod:`~stabbench.training.run` (building a run: an immutable :class:`TrainRun`
and the mutable :class:`TrainState`), :mod:`~stabbench.training.checkpoint` (checkpoints,
resume), :mod:`~stabbench.training.loop` (the step, with an optional :class:`StageTimer`,
periodic evaluation), :mod:`~stabbench.training.outputs` (folder, logs, provenance, export to
``torch.export`` and ONNX), :mod:`~stabbench.training.distributed` (under ``torchrun``:
DistributedDataParallel with the single-process batch statistics and loss); :func:`run_training`
(here) is the loop that ties them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from stabbench.distributed import Ranks, all_succeed, gather, leader_then_share
from stabbench.errors import IOFailure
from stabbench.training.checkpoint import CHECKPOINT
from stabbench.training.config import TrainConfig, lr_at
from stabbench.training.run import Progress


@dataclass
class TrainResult:
    out: Path
    steps: int
    epochs_done: int
    final_losses: dict = field(default_factory=dict)
    last_eval: dict | None = None
    stopped_early: bool = False


def run_training(config: TrainConfig, *, resume: bool = False, overwrite: bool = False, onnx: bool = False,
                 progress: Progress | None = None, on_step=None, ranks: Ranks | None = None) -> TrainResult:
    """Build the run, restore its checkpoint (``resume``), train, evaluate, checkpoint, export.

    ``progress(stage, done, total)`` reports setup stages, ``"eval"`` and ``"train"``;
    ``on_step(step, epoch, losses)`` is called after every step (the CLI shows the losses).
    ``ranks`` (under ``torchrun``, :func:`~stabbench.distributed.launched_ranks`): the ranks
    train one model with DistributedDataParallel (:mod:`~stabbench.training.distributed`);
    rank 0 alone writes the folder, the others wait at its collectives. An error on any rank
    is raised on every rank; a rank lost mid-run is an :class:`~stabbench.errors.IOFailure`.
    """
    if ranks is None:
        created = not Path(config.out).exists()
        try:
            return _train(config, resume, overwrite, onnx, progress, on_step, None)
        except BaseException:
            if created:  # a run that failed before writing anything leaves no empty folder behind
                _remove_if_empty(Path(config.out))
            raise
    from stabbench import distributed
    from stabbench.training.distributed import use_local_gpu

    use_local_gpu(config.device)
    distributed.start(ranks, config.device)
    try:
        result = _train(config, resume, overwrite, onnx, progress, on_step, ranks)
    except RuntimeError as exc:  # a collective failed: another rank died, hung past the timeout, or the network broke
        if not _is_collective_failure(exc):
            raise
        raise IOFailure(f"rank {ranks.rank}: lost contact with the other ranks ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}); nothing final was written; the last checkpoint "
                        f"is in {Path(config.out) / CHECKPOINT}: re-run the same command with --resume") from None
    distributed.stop()
    return result


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only an empty folder: anything written (a log, the flow cache) stays
    except OSError:
        pass


def _is_collective_failure(exc: RuntimeError) -> bool:
    """A failed collective: NCCL and the store raise ``torch.distributed.DistError``; gloo (torch
    2.13) raises a plain RuntimeError whose message starts with its transport's source path."""
    import torch.distributed as dist

    return isinstance(exc, dist.DistError) or "gloo/" in str(exc)


def _every_rank(ranks: Ranks | None, value) -> list:
    """``value`` of every rank, in rank order (one process: ``[value]``)."""
    return [value] if ranks is None else gather(ranks, value)


def _train(config: TrainConfig, resume: bool, overwrite: bool, onnx: bool, progress: Progress | None, on_step,
           ranks: Ranks | None) -> TrainResult:
    from stabbench.training import checkpoint as ckpt
    from stabbench.training import outputs
    from stabbench.training.loop import evaluate_run, train_step
    from stabbench.training.run import build_run, new_state

    out = Path(config.out)
    leader = ranks is None or ranks.leader

    def open_out_dir() -> dict | None:
        outputs.prepare_out_dir(out, resume=resume, overwrite=overwrite)
        saved = ckpt.read_checkpoint(out) if resume else None
        if saved is not None:
            ckpt.check_resumable(saved, config, out)
        return saved

    saved = leader_then_share(ranks, open_out_dir)  # rank 0 reads the checkpoint, every rank restores it
    share = (0, 1) if ranks is None else (ranks.rank, ranks.world)
    run = all_succeed(ranks, lambda: build_run(config, out, progress=progress, share=share))
    state = new_state(run)
    if saved is not None:
        ckpt.restore(run, state, saved)
    if ranks is not None:
        from stabbench.training.distributed import distributed_network

        run = dataclasses.replace(run, ranks=ranks, network=distributed_network(run.model, ranks, run.device))
    train_log = outputs.CsvLog(out / outputs.TRAIN_LOG, outputs.TRAIN_COLUMNS)
    eval_log = outputs.CsvLog(out / outputs.EVAL_LOG, outputs.EVAL_COLUMNS)

    def open_logs() -> None:
        if saved is not None:
            train_log.truncate_after(state.order.global_step)
            eval_log.truncate_after(state.order.global_step)
        outputs.write_provenance(run, state)

    leader_then_share(ranks, open_logs)

    def evaluate() -> None:
        report = None if progress is None else (lambda done, total: progress("eval", done, total))
        row = evaluate_run(run, state, report)
        if leader:
            eval_log.append({**row, **{k: outputs.fmt(row[k]) for k in ("S_global", "S_boundary", "mIoU_syn")},
                             "eval_time_s": f"{row['eval_time_s']:.3f}"})

    order = state.order
    stop_at = run.total_steps if config.max_steps is None else min(run.total_steps, config.max_steps)
    last: dict = {}
    try:
        while order.global_step < stop_at:
            t0 = time.perf_counter()
            epoch = order.epoch
            last = train_step(run, state)
            epoch_done = order.advance()
            dt = time.perf_counter() - t0
            state.elapsed += dt
            if leader:
                train_log.append({"step": order.global_step, "epoch": epoch + 1, "lr": outputs.fmt(last["lr"]),
                                  **{k: outputs.fmt(last[k]) for k in ("total", "seg", "bc", "gc", "liu")},
                                  "step_time_s": f"{dt:.4f}", "elapsed_s": f"{state.elapsed:.3f}"})
            if progress is not None:
                progress("train", order.global_step, run.total_steps)
            if on_step is not None:
                on_step(order.global_step, epoch + 1, last)
            if config.eval_every and order.global_step % config.eval_every == 0:
                evaluate()
            if epoch_done or (config.checkpoint_every and order.global_step % config.checkpoint_every == 0):
                leader_then_share(ranks, lambda: ckpt.save_checkpoint(run, state))
    except KeyboardInterrupt:
        if (out / ckpt.CHECKPOINT).exists():
            raise KeyboardInterrupt(f"training stopped after step {order.global_step}; the last checkpoint is in "
                                    f"{out / ckpt.CHECKPOINT}: continue with the same command plus --resume") from None
        raise KeyboardInterrupt(f"training stopped after step {order.global_step}, before its first checkpoint: nothing "
                                f"to resume; start again with --overwrite (--checkpoint-every N saves more often)") from None
    if run.eval_set is not None and state.last_eval_step != order.global_step:
        evaluate()
    flow_stats = None if run.flow_cache is None else _every_rank(ranks, run.flow_cache.stats())
    if ranks is not None:
        from stabbench.training.distributed import plain_batchnorm

        plain_batchnorm(run.model)  # the exported model and state dict are those of a plain module

    def finish() -> None:
        ckpt.save_checkpoint(run, state)  # the position (and the last evaluated step) at the end
        written = outputs.write_model(run, onnx=onnx)
        outputs.write_provenance(run, state, final=written, flow_stats=flow_stats)

    leader_then_share(ranks, finish)
    return TrainResult(out, order.global_step, order.epoch, last, state.last_eval, order.global_step < run.total_steps)


__all__ = ["TrainConfig", "TrainResult", "lr_at", "run_training"]
