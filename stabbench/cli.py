"""The ``stabbench`` command line. Heavy imports happen inside commands so ``--help`` is instant.

Exit codes (see :mod:`stabbench.errors`): 0 ok, 1 a check failed, 2 usage error,
3 bad input data, 4 output conflict, 5 bad model, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys

import click

EXIT_INTERRUPTED = 130


def reports_errors(command):
    """Turn :class:`StabbenchError` into a one-line message on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from stabbench.errors import StabbenchError

        try:
            return command(*args, **kwargs)
        except StabbenchError as exc:
            click.echo(f"stabbench: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("stabbench: interrupted; re-run the same command to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def split_csv(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def dataset_options(cityscapes_split: str):
    """The options of the labelled-image datasets, shared by `synth` and `finetune`."""
    options = [
        click.option("--split", help=f"davis/cityscapes: split name (davis: ImageSets/<year>/<split>.txt; cityscapes default: {cityscapes_split})."),
        click.option("--year", type=click.Choice(["2016", "2017"]), help="davis: which ImageSets folder to read the split from."),
        click.option("--davis-objects", type=click.Choice(["merge", "ids"]), default="merge", show_default=True,
                     help="davis: merge objects into one foreground, or keep object ids as classes."),
        click.option("--frames-per-sequence", type=click.IntRange(min=1), default=1, show_default=True,
                     help="davis: annotated frames used per video (1 = the first, the paper protocol)."),
        click.option("--max-images", type=click.IntRange(min=1), help="cityscapes: draw this many images at random (seeded)."),
        click.option("--images", default="images", show_default=True, help="folder: image sub-directory."),
        click.option("--masks", default="masks", show_default=True, help="folder: mask sub-directory."),
        click.option("--mask-mode", type=click.Choice(["binary", "labels"]), default="binary", show_default=True,
                     help="folder: binary (0/255 or >0 is foreground) or labels (values are class ids)."),
        click.option("--num-images", type=click.IntRange(min=1), default=4, show_default=True, help="shapes: number of images."),
    ]

    return stack_options(options)


def stack_options(options):
    """One decorator applying click ``options`` in the order listed."""

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="stabbench", message="%(prog)s %(version)s")
def main():
    """Benchmark the temporal stability of video segmentation models.

    \b
    stabbench synth        build synthetic sequences with exactly known flow
    stabbench info         summarise (and verify) a synthetic set
    stabbench eval         evaluate a model's stability on a synthetic set
    stabbench merge        merge sharded eval results
    stabbench gate         fail (exit 1) when a result falls short of thresholds/baseline
    stabbench leaderboard  print a leaderboard CSV
    stabbench finetune     fine-tune a model with the Coherent Loss (or train one from scratch)
    """


@main.command()
@click.option("--dataset", default="shapes", show_default=True, help="davis | cityscapes | folder | shapes (built-in, no files).")
@click.option("--root", type=click.Path(file_okay=False, path_type=str), help="Dataset root directory.")
@click.option("--out", "-o", default="synth-out", show_default=True, type=click.Path(path_type=str), help="Output directory.")
@click.option("--protocol", type=click.Choice(["paper", "grid"]), default="paper", show_default=True,
              help="paper: one random type per severity (6 seqs/image); grid: every type x severity (30).")
@click.option("--frames", "num_frames", type=click.IntRange(min=2), default=11, show_default=True, help="Frames per sequence.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--perturbations", "perturbation_names", metavar="A,B", help="Subset of types (default: all five).")
@click.option("--severities", metavar="1,2,..", help="Subset of severities (default: 1-6).")
@dataset_options(cityscapes_split="val")
@click.option("--overwrite", is_flag=True, help="Replace an existing set at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@reports_errors
def synth(dataset, root, out, protocol, num_frames, seed, perturbation_names, severities, split, year, davis_objects,
          frames_per_sequence, max_images, images, masks, mask_mode, num_images, overwrite, quiet):
    """Build synthetic sequences with exactly known flow from labelled images.

    Each source image gives sequences of --frames frames (translation, rotation, scaling,
    occlusion, gaussian_noise; severities 1-6), written with their masks, correspondence
    geometry and a manifest. Same command and seed: same bytes. An interrupted run is
    resumed by re-running the same command.
    """
    from pathlib import Path

    from stabbench.synth.cli_support import build_config, print_summary, run_synth

    listing, config = build_config(
        dataset, root, protocol, num_frames, seed, split_csv(perturbation_names), split_csv(severities),
        dict(split=split, year=year, davis_objects=davis_objects, frames_per_sequence=frames_per_sequence,
             max_images=max_images, images=images, masks=masks, mask_mode=mask_mode, num_images=num_images),
    )
    run_synth(listing, config, Path(out), overwrite, quiet)
    print_summary(Path(out))


@main.command()
@click.argument("set_dir", type=click.Path(path_type=str))
@click.option("--verify", is_flag=True, help="Check every file against its sha256 in the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors
def info(set_dir, verify, as_json):
    """Summarise a synthetic set (sequences per perturbation x severity, sizes, versions)."""
    from pathlib import Path

    from stabbench.synth.cli_support import print_summary, verify_set

    if verify:
        verify_set(Path(set_dir))
    print_summary(Path(set_dir), as_json=as_json)


def _model_options(f):
    """Pre/post-processing options shared by commands that load a model."""
    options = [
        click.option("--input-size", metavar="HxW", help="Resize frames to HxW before the model (default: native or the model's static shape)."),
        click.option("--resize", type=click.Choice(["stretch", "none"]), help="Resize mode (default stretch)."),
        click.option("--mean", metavar="R,G,B", help="Per-channel mean after scaling (default 0,0,0)."),
        click.option("--std", metavar="R,G,B", help="Per-channel std after scaling (default 1,1,1)."),
        click.option("--scale", type=float, help="Pixel scale before mean/std (default 1/255)."),
        click.option("--channels", type=click.Choice(["rgb", "bgr"]), help="Channel order the model expects."),
        click.option("--layout", type=click.Choice(["nchw", "nhwc"]), help="Tensor layout of input and output."),
        click.option("--activation", type=click.Choice(["none", "softmax", "sigmoid"]), help="Output activation."),
        click.option("--num-classes", type=click.IntRange(min=2), help="Number of classes the model outputs."),
        click.option("--foreground-class", metavar="ID[,ID]", help="Map these model classes to 1, others to 0 (binary sets)."),
        click.option("--threshold", type=click.FloatRange(0, 1), help="Threshold of a one-channel output (default 0.5)."),
        click.option("--preprocess-json", type=click.Path(dir_okay=False, path_type=str), help="JSON file of these settings (default: <model>.stabbench.json beside the model)."),
        click.option("--allow-pickle", is_flag=True, help="Allow unpickling a whole nn.Module (runs arbitrary code: trusted files only)."),
        click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1)."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Most frames per model call (default: a whole sequence)."),
    ]
    return stack_options(options)(f)


def _overrides(kw: dict) -> dict:
    keys = ("input_size", "resize", "mean", "std", "scale", "channels", "layout", "activation", "num_classes", "foreground_class", "threshold")
    return {k: kw[k] for k in keys if kw.get(k) is not None}


@main.command("eval")
@click.option("--model", "-m", required=True, help="model.pt|.ts|.pt2|.onnx|.tflite, package.module:factory, or builtin:NAME.")
@click.option("--set", "set_dir", required=True, type=click.Path(path_type=str), help="Synthetic set written by `stabbench synth`.")
@click.option("--out", "-o", type=click.Path(path_type=str), help="Output folder (default: eval-<model name>).")
@click.option("--leaderboard", default="leaderboard.csv", show_default=True, type=click.Path(dir_okay=False, path_type=str), help="Leaderboard CSV to add the result to.")
@click.option("--no-leaderboard", is_flag=True, help="Do not touch the leaderboard.")
@click.option("--replace", is_flag=True, help="Replace this model's existing leaderboard row for this set.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--boundary-width", type=click.IntRange(min=1), default=15, show_default=True, help="Width (px) of the band around ground-truth edges for S_boundary.")
@click.option("--shard", metavar="i/n", help="Evaluate every n-th sequence starting at i (merge with `stabbench merge`).")
@click.option("--no-plot", is_flag=True, help="Do not write the PNG plot.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_model_options
@reports_errors
def eval_cmd(model, set_dir, out, leaderboard, no_leaderboard, replace, overwrite, boundary_width, shard, no_plot, quiet, **kw):
    """Evaluate a model's temporal stability on a synthetic set.

    Writes OUT/results.json, per-sequence, per-perturbation-x-severity and per-class CSVs and a
    plot, prints a table, and adds a row to the leaderboard (not for a shard).
    """
    from pathlib import Path

    from stabbench.evaluation.cli_support import print_results, run_eval
    from stabbench.errors import OutputConflictError
    from stabbench.report.leaderboard import upsert_row
    from stabbench.report.results import leaderboard_row, write_outputs

    out_dir = Path(out or default_out_name(model, shard))
    if out_dir.exists() and not overwrite:
        raise OutputConflictError(f"{out_dir}: already exists; pass --overwrite to replace it")
    results, _ = run_eval(model, Path(set_dir), overrides=_overrides(kw), spec_file=kw["preprocess_json"],
                          allow_pickle=kw["allow_pickle"], device=kw["device"], batch_size=kw["batch_size"],
                          band_width=boundary_width, shard_text=shard, quiet=quiet,
                          leaderboard=None if shard is not None or no_leaderboard else Path(leaderboard), replace=replace)
    write_outputs(out_dir, results, overwrite=overwrite, plot=not no_plot)
    print_results(results)
    if shard is None and not no_leaderboard:
        upsert_row(Path(leaderboard), leaderboard_row(results), replace=replace)
        click.echo(f"results: {out_dir}/  leaderboard: {leaderboard}", err=True)


def default_out_name(model: str, shard: str | None) -> str:
    import re

    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", model.split("/")[-1])
    return f"eval-{name}" + (f"-shard{shard.replace('/', 'of')}" if shard else "")


@main.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Output folder of the merged result.")
@click.option("--leaderboard", default="leaderboard.csv", show_default=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--no-leaderboard", is_flag=True)
@click.option("--replace", is_flag=True, help="Replace this model's existing leaderboard row for this set.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--no-plot", is_flag=True)
@reports_errors
def merge(shards, out, leaderboard, no_leaderboard, replace, overwrite, no_plot):
    """Merge the results of `stabbench eval --shard i/n` runs (exactly the single-run numbers)."""
    from pathlib import Path

    from stabbench.evaluation.cli_support import merge_results, print_results
    from stabbench.report.leaderboard import upsert_row
    from stabbench.report.results import leaderboard_row, write_outputs

    results = merge_results([Path(s) for s in shards])
    write_outputs(Path(out), results, overwrite=overwrite, plot=not no_plot)
    print_results(results)
    if not no_leaderboard:
        upsert_row(Path(leaderboard), leaderboard_row(results), replace=replace)


@main.command()
@click.argument("result", type=click.Path(path_type=str))
@click.option("--model", help="Row of RESULT to check when RESULT is a leaderboard CSV.")
@click.option("--min", "thresholds", multiple=True, metavar="METRIC=VALUE", help="Require METRIC >= VALUE (repeatable); METRIC: S_global, S_boundary, mIoU_syn.")
@click.option("--baseline", type=click.Path(path_type=str), help="results.json / eval folder / leaderboard CSV to compare with.")
@click.option("--baseline-model", help="Row of the baseline leaderboard to compare with.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Points each metric may fall below the baseline.")
@reports_errors
def gate(result, model, thresholds, baseline, baseline_model, tolerance):
    """Check a result against thresholds and/or a baseline: exit 0 if all pass, 1 if any fell short.

    \b
    Exit codes: 0 all checks passed, 1 a check failed, 2 usage error, 3 unreadable/invalid result.
    Example: stabbench gate eval-mymodel --min S_boundary=94 --baseline leaderboard.csv --baseline-model main --tolerance 0.2
    """
    from pathlib import Path

    from stabbench.evaluation.cli_support import run_gate

    sys.exit(run_gate(Path(result), model, thresholds, Path(baseline) if baseline else None, baseline_model, tolerance))


@main.command("leaderboard")
@click.argument("path", default="leaderboard.csv", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
@reports_errors
def leaderboard_cmd(path, as_json):
    """Print a leaderboard CSV as a table."""
    from pathlib import Path

    from stabbench.evaluation.cli_support import print_leaderboard

    print_leaderboard(Path(path), as_json)


@main.command()
@click.option("--model", "-m", required=True,
              help="builtin:NAME[,k=v] (fresh, seeded: builtin:tiny_unet), a TorchScript .pt, or package.module:factory.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=str), help="State dict to load into the model first (torch.load weights_only=True).")
@click.option("--labeled", "--dataset", "dataset", default="shapes", show_default=True,
              help="Labelled dataset (as for `stabbench synth`): davis | cityscapes | folder | shapes.")
@click.option("--root", type=click.Path(file_okay=False, path_type=str), help="Labelled dataset root directory.")
@dataset_options(cityscapes_split="train")
@click.option("--videos", multiple=True, type=click.Path(path_type=str),
              help="Unlabeled videos: files or folders, e.g. DAVIS/JPEGImages/480p (repeatable). Without it: supervised training on the labelled set only.")
@click.option("--no-coherent", is_flag=True, help="Control run: the same batches (labelled images + pair frames in one forward pass) and data order, supervised loss only (no L_bc/L_gc).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an existing folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (same settings).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Passes over the labelled images.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps in all (checkpoint + outputs written).")
@click.option("--batch-labeled", type=click.IntRange(min=1), default=12, show_default=True, help="Labelled images per step.")
@click.option("--batch-pairs", type=click.IntRange(min=1), default=6, show_default=True, help="Video pairs per step.")
@click.option("--width", "band", type=click.IntRange(min=1), default=15, show_default=True, help="w: width (px) of the boundary band of L_bc.")
@click.option("--beta", type=click.FloatRange(min=0), default=5e-2, show_default=True, help="Confidence margin of L_gc.")
@click.option("--lambda-bc", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Weight of L_bc.")
@click.option("--lambda-gc", type=click.FloatRange(min=0), default=5e-5, show_default=True, help="Weight of L_gc.")
@click.option("--seg-loss", type=click.Choice(["ce", "lovasz", "ce+lovasz"]), default="ce", show_default=True, help="Supervised loss.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True, help="Optimizer.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True, help="Learning rate.")
@click.option("--momentum", type=click.FloatRange(min=0), default=0.9, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True, help="Weight decay.")
@click.option("--lr-schedule", type=click.Choice(["constant", "poly", "cosine"]), default="constant", show_default=True, help="Learning-rate schedule over all steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the model init (builtin) and of every data choice.")
@click.option("--input-size", metavar="HxW", help="Training resolution (frames and labels resized; default: the first labelled image's size).")
@click.option("--augment", is_flag=True, help="Random flip + scale/crop of labelled images, random flip of pairs.")
@click.option("--mean", metavar="R,G,B", help="Input mean after scaling (default: the model's spec file, else 0; built-ins normalise inside).")
@click.option("--std", metavar="R,G,B", help="Input std after scaling (default: the model's spec file, else 1).")
@click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1).")
@click.option("--pairs-per-video", type=click.IntRange(min=1), default=30, show_default=True, help="Pairs sampled per video at equal intervals.")
@click.option("--flow-preset", type=click.Choice(["ultrafast", "fast", "medium"]), default="medium", show_default=True, help="DIS optical-flow preset.")
@click.option("--flow-cache", type=click.Path(file_okay=False, path_type=str), help="Flow cache folder (default OUT/flow-cache).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=100, show_default=True, help="Checkpoint every N steps (0: only at epoch ends).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True, help="Evaluate stability on --eval-set every N steps (and at the end).")
@click.option("--eval-set", type=click.Path(file_okay=False, path_type=str), help="Synthetic set (`stabbench synth`) for --eval-every.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@reports_errors
def finetune(model, weights, dataset, root, split, year, davis_objects, frames_per_sequence, max_images, images, masks,
             mask_mode, num_images, videos, no_coherent, out, overwrite, resume, band, input_size, mean, std, **settings):
    """Fine-tune a segmentation model with the Coherent Loss (or train one from scratch).

    \b
    CL fine-tune:  stabbench finetune --model base/model.pt --dataset davis --root DAVIS --split train \\
                     --frames-per-sequence 10 --videos clips/ --input-size 240x432 --out ft
    control:       the same plus --no-coherent (same batches and forward pass, supervised loss only)
    baseline:      stabbench finetune --model builtin:tiny_unet --dataset shapes --num-images 64 \\
                     --optimizer adamw --lr 1e-3 --epochs 30 --out base     (no --videos: supervised)

    Writes OUT/model.pt (+ model.stabbench.json: `stabbench eval --model OUT/model.pt`),
    state_dict.pt, train_config.json, train_log.csv, eval_log.csv and checkpoint.pt.
    """
    from stabbench.training import run_training
    from stabbench.training.cli_support import build_train_config, parse_size, parse_triple, print_summary

    config = build_train_config(
        dataset, root,
        dict(split=split, year=year, davis_objects=davis_objects, frames_per_sequence=frames_per_sequence,
             max_images=max_images, images=images, masks=masks, mask_mode=mask_mode, num_images=num_images),
        model=model, out=out, weights=weights, videos=tuple(videos), coherent=not no_coherent, width=band,
        input_size=parse_size(input_size), mean=parse_triple(mean, "mean"), std=parse_triple(std, "std"), **settings,
    )
    result = run_training(config, resume=resume, overwrite=overwrite)
    print_summary(result, config)


if __name__ == "__main__":  # pragma: no cover
    main()
