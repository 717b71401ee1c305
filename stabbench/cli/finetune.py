"""``stabbench finetune``."""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager

import click

from stabbench.cli.common import (
    boundary_width_option,
    console,
    dataset_options,
    device_option,
    loader_options,
    pop_dataset_options,
    progress_bar,
    quiet_option,
    reports_errors,
    weights_option,
)
from stabbench.conventions import LIU_ALPHA, LIU_WEIGHT

#: The choices of --temporal-loss (stabbench.training.config.TEMPORAL_LOSSES; not imported here: --help stays instant).
TEMPORAL_LOSS_CHOICES = ("coherent", "liu", "none")


@click.command()
@click.option("--model", "-m", required=True,
              help="arch:NAME[,k=v] (fresh, seeded: arch:tiny_unet; builtin:NAME is an alias), package.module:factory, "
                   "a .tflite model or builtin:mediapipe-selfie[,variant=landscape] (imported as a module), "
                   "or a legacy TorchScript .pt.")
@weights_option("State dict to load into the model first (torch.load weights_only=True), e.g. an earlier run's state_dict.pt.")
@click.option("--labeled", "--dataset", "dataset", default="shapes", show_default=True,
              help="Labelled dataset (as for `stabbench synth`): davis | cityscapes | folder | shapes.")
@click.option("--root", type=click.Path(file_okay=False, path_type=str), help="Labelled dataset root directory.")
@dataset_options(cityscapes_split="train")
@click.option("--videos", multiple=True, type=click.Path(path_type=str),
              help="Unlabeled videos: files or folders, e.g. DAVIS/JPEGImages/480p (repeatable). Without it: supervised training on the labelled set only.")
@click.option("--temporal-loss", type=click.Choice(TEMPORAL_LOSS_CHOICES), default="coherent", show_default=True,
              help="Loss on the video pairs: coherent (the Coherent Loss), liu (Liu et al. ECCV 2020's temporal loss, the peer), "
                   "none (the control: same batches and forward pass, supervised loss only).")
@click.option("--no-coherent", is_flag=True, help="The control run: alias of --temporal-loss none.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an existing folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (same settings).")
@click.option("--onnx", is_flag=True, help="Also write model.onnx (the same network as model.pt2).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Passes over the labelled images.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps in all (checkpoint + outputs written).")
@click.option("--batch-labeled", type=click.IntRange(min=1), default=12, show_default=True, help="Labelled images per step.")
@click.option("--batch-pairs", type=click.IntRange(min=1), default=6, show_default=True, help="Video pairs per step.")
@boundary_width_option("w: width (px) of the boundary band of L_bc.", name="--width", dest="width")
@click.option("--beta", type=click.FloatRange(min=0), default=5e-2, show_default=True, help="Confidence margin of L_gc.")
@click.option("--lambda-bc", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Weight of L_bc.")
@click.option("--lambda-gc", type=click.FloatRange(min=0), default=5e-5, show_default=True, help="Weight of L_gc.")
@click.option("--lambda-liu", type=click.FloatRange(min=0), default=LIU_WEIGHT, show_default=True, help="Weight of the Liu temporal loss.")
@click.option("--liu-alpha", type=click.FloatRange(min=0), default=LIU_ALPHA, show_default=True,
              help="Sharpness of the Liu loss's photometric weight exp(-alpha |sum_c dI|), images in [0, 1].")
@click.option("--seg-loss", type=click.Choice(["ce", "lovasz", "ce+lovasz"]), default="ce", show_default=True, help="Supervised loss.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True, help="Optimizer.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True, help="Learning rate.")
@click.option("--momentum", type=click.FloatRange(min=0), default=0.9, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True, help="Weight decay.")
@click.option("--lr-schedule", type=click.Choice(["constant", "poly", "cosine"]), default="constant", show_default=True, help="Learning-rate schedule over all steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the model init (arch:) and of every data choice.")
@click.option("--input-size", metavar="HxW", help="Training resolution (frames and labels resized; default: the first labelled image's size).")
@click.option("--augment", is_flag=True, help="Random flip + scale/crop of labelled images, random flip of pairs.")
@click.option("--mean", metavar="R,G,B", help="Input mean after scaling (default: the model's spec file, else 0; built-ins normalise inside).")
@click.option("--std", metavar="R,G,B", help="Input std after scaling (default: the model's spec file, else 1).")
@device_option
@click.option("--pairs-per-video", type=click.IntRange(min=1), default=30, show_default=True, help="Pairs sampled per video at equal intervals.")
@click.option("--flow-preset", type=click.Choice(["ultrafast", "fast", "medium"]), default="medium", show_default=True, help="DIS optical-flow preset.")
@click.option("--flow-cache", type=click.Path(file_okay=False, path_type=str), help="Flow cache folder (default OUT/flow-cache).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=100, show_default=True, help="Checkpoint every N steps (0: only at epoch ends).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True, help="Evaluate stability on --eval-set every N steps (and at the end).")
@click.option("--eval-set", type=click.Path(file_okay=False, path_type=str), help="Synthetic set (`stabbench synth`) for --eval-every.")
@quiet_option
@reports_errors
def finetune(dataset, root, videos, temporal_loss, no_coherent, resume, overwrite, onnx, input_size, mean, std, **settings):
    """Fine-tune a segmentation model with the Coherent Loss (or train one from scratch).

    \b
    baseline:      stabbench finetune --model arch:tiny_unet --dataset shapes --num-images 64 \\
                     --optimizer adamw --lr 1e-3 --epochs 30 --out base     (no --videos: supervised)
    CL fine-tune:  stabbench finetune --model arch:tiny_unet --weights base/state_dict.pt --dataset davis \\
                     --root DAVIS --split train --frames-per-sequence 10 --videos clips/ --input-size 240x432 --out ft
    control:       the same plus --temporal-loss none (same batches and forward pass, supervised loss only)
    peer:          the same plus --temporal-loss liu (Liu et al.'s temporal loss on the same flows and batches)
    TFLite model:  --model builtin:mediapipe-selfie (or --model model.tflite) --dataset davis ... (its input size)

    Writes OUT/model.pt2 (+ model.stabbench.json: `stabbench eval --model OUT/model.pt2`),
    state_dict.pt, train_config.json, train_log.csv, eval_log.csv and checkpoint.pt.
    """
    from stabbench.distributed import launched_ranks
    from stabbench.errors import UsageError
    from stabbench.training import run_training

    if no_coherent and temporal_loss not in ("coherent", "none"):
        raise UsageError(f"--no-coherent (the control) contradicts --temporal-loss {temporal_loss}")
    ranks = launched_ranks()  # under torchrun: DistributedDataParallel, rank 0 writes
    leader = ranks is None or ranks.leader
    if not leader:
        settings["quiet"] = True
    config = build_train_config(
        dataset, root, pop_dataset_options(settings), videos=tuple(videos),
        temporal_loss="none" if no_coherent else temporal_loss,
        input_size=parse_size(input_size), mean=parse_triple(mean, "mean"), std=parse_triple(std, "std"), **settings,
    )
    quiet = config.quiet
    with progress_bar("train", quiet=quiet, fields=True) as bar:
        tasks: dict = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = stage if stage in ("train", "eval") else "prep"
                info = "" if stage == "train" else ("stability on the eval set" if stage == "eval" else stage)
                tasks[stage] = bar.add_task(label, total=total, info=info)
            bar.update(tasks[stage], completed=done, total=total)
            if stage == "eval" and done >= total:
                bar.remove_task(tasks.pop(stage))

        def on_step(step: int, epoch: int, losses: dict) -> None:
            if "train" in tasks:
                text = (f"ep {epoch}/{config.epochs}  total {losses['total']:.4f}  seg {losses['seg']:.4f}  "
                        f"bc {losses['bc']:.4f}  gc {losses['gc']:.3g}  liu {losses['liu']:.4f}")
                bar.update(tasks["train"], info=text)

        with stopped_by_launcher(ranks, config.out):
            result = run_training(config, resume=resume, overwrite=overwrite, onnx=onnx, progress=progress,
                                  on_step=on_step, ranks=ranks)
    if leader:
        print_summary(result, config)


@contextmanager
def stopped_by_launcher(ranks, out: str):
    """Under torchrun, SIGTERM (what torchrun sends every rank when one fails, and what Slurm and
    Kubernetes send on cancel) becomes an error line and exit 6 instead of a silent death;
    atomic writes in progress are cleaned up as for any error."""
    from stabbench.errors import IOFailure

    if ranks is None:
        yield
        return

    def stop(signum, frame):
        raise IOFailure(f"rank {ranks.rank}: stopped by SIGTERM (torchrun stops every rank when one fails; or the job "
                        f"was cancelled); nothing final was written; continue with the same command plus --resume "
                        f"(checkpoint in {out})")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"128x224"`` -> ``(128, 224)`` (H, W); ``None`` stays ``None``."""
    from stabbench.errors import UsageError

    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise UsageError(f"--input-size must be HxW with positive integers (e.g. 128x224), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_triple(text: str | None, name: str) -> tuple[float, float, float] | None:
    from stabbench.errors import UsageError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{name} must be three numbers R,G,B, got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"--{name} must be three numbers R,G,B, got {text!r}")
    return tuple(values)  # type: ignore[return-value]


def build_train_config(dataset: str, root, dataset_opts: dict, **settings):
    """The :class:`~stabbench.training.TrainConfig` of the CLI options (dataset options as ``synth`` maps them)."""
    from stabbench.datasets import DATASET_NAMES
    from stabbench.errors import DataError, UsageError
    from stabbench.training import TrainConfig

    if dataset not in DATASET_NAMES:
        raise DataError(None, f"unknown dataset {dataset!r}; choose from {', '.join(DATASET_NAMES)}")
    options = loader_options(dataset, dataset_opts)
    if dataset == "cityscapes":
        options["split"] = dataset_opts.get("split") or "train"
        options["seed"] = settings.get("seed", 0)
    try:
        return TrainConfig(dataset=dataset, root=root, dataset_options=options, **settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def print_summary(result, config) -> None:
    """A short summary on stdout."""
    out = console()
    losses = result.final_losses
    state = "stopped at --max-steps" if result.stopped_early else "complete"
    out.print(f"{config.mode} training {state}: {result.steps} steps, {result.epochs_done} epochs -> {result.out}/")
    if losses:
        out.print("last step: " + "  ".join(f"{k} {losses[k]:.5g}" for k in ("total", "seg", "bc", "gc", "liu")))
    if result.last_eval:
        e = result.last_eval
        out.print(f"eval (step {e['step']}): S_global {e['S_global']:.2f}  S_boundary {e['S_boundary']:.2f}  mIoU_syn {e['mIoU_syn']:.2f}")
    out.print(f"evaluate it: stabbench eval --model {result.out}/model.pt2 --set SET")
