"""``stabbench eval`` and ``stabbench merge``."""

from __future__ import annotations

import re
from pathlib import Path

import click

from stabbench.cli.common import (
    ROW_OUTCOMES,
    allow_pickle_option,
    boundary_width_option,
    console,
    counter,
    device_option,
    fmt_metric,
    pop_spec_overrides,
    progress_bar,
    quiet_option,
    reports_errors,
    spec_options,
    weights_option,
)

leaderboard_options = [
    click.option("--leaderboard", default="leaderboard.csv", show_default=True, type=click.Path(dir_okay=False, path_type=str),
                 help="Leaderboard CSV to add the result to."),
    click.option("--no-leaderboard", is_flag=True, help="Do not touch the leaderboard."),
    click.option("--replace", is_flag=True, help="Replace this model's existing leaderboard row for this set (a row "
                 "identical to the one there, date aside, is left as it is without it)."),
    click.option("--overwrite", is_flag=True, help="Replace an existing output folder."),
    click.option("--no-plot", is_flag=True, help="Do not write the PNG plot."),
]


def with_leaderboard_options(f):
    for option in reversed(leaderboard_options):
        f = option(f)
    return f


@click.command("eval")
@click.option("--model", "-m", required=True,
              help="model.pt2|.onnx|.tflite (legacy .pt/.ts), package.module:factory, builtin:NAME, arch:NAME or "
                   "predictions:DIR[,map=foreground] (precomputed masks, DIR/<sequence id>/<frame>.png).")
@weights_option("State dict to load into the model (an arch:NAME or a factory's nn.Module; torch.load weights_only=True).")
@click.option("--set", "set_dir", required=True, type=click.Path(path_type=str), help="Synthetic set written by `stabbench synth`.")
@click.option("--out", "-o", type=click.Path(path_type=str), help="Output folder (default: eval-<name>, see the README).")
@click.option("--name", help="Name of the result and of its leaderboard row (default: the model id, with its weights; "
                             "the same model already on the leaderboard, e.g. its file under another path, keeps its "
                             "row's name).")
@with_leaderboard_options
@boundary_width_option("Width (px) of the band around ground-truth edges for S_boundary.")
@click.option("--shard", metavar="i/n", help="Evaluate every n-th sequence starting at i (merge with `stabbench merge`).")
@quiet_option
@spec_options
@allow_pickle_option
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), help="Most frames per model call (default: a whole sequence).")
@click.option("--workers", type=click.IntRange(min=0), help="Worker processes that read/render and score sequences "
              "(0: all in this process; default: STABBENCH_WORKERS, else cores - 1 with 4 cores or more, else 0).")
@click.option("--allow-nonfinite", is_flag=True, help="Score a model whose outputs hold NaN/Inf (as 0 / +-1e30) and record "
                                                      "it as a warning, instead of failing (exit 5); the gate fails such a result.")
@click.option("--save-predictions", is_flag=True, help="Also write the predicted labels, OUT/predictions/<sequence>/"
              "<k:05d>.png (8-bit class ids, sha256 indexed), for `stabbench show` and re-scoring without the model.")
@reports_errors
def eval_cmd(model, weights, set_dir, out, name, leaderboard, no_leaderboard, replace, overwrite, no_plot, boundary_width,
             shard, quiet, preprocess_json, allow_pickle, device, batch_size, workers, allow_nonfinite, save_predictions,
             **spec):
    """Evaluate a model's temporal stability on a synthetic set.

    Writes OUT/results.json, per-sequence, per-perturbation-x-severity and per-class CSVs and a
    plot, prints a table, and adds a row to the leaderboard (not for a shard).
    """
    from stabbench.distributed import launched_ranks
    from stabbench.errors import OutputConflictError, UsageError
    from stabbench.evaluation import evaluate, parse_shard
    from stabbench.evaluation.distributed import evaluate_across_ranks
    from stabbench.evaluation.parallel import default_workers
    from stabbench.predictors import load_predictor
    from stabbench.report.leaderboard import recognise, refuse_conflicts, upsert_row
    from stabbench.report.predictions import PredictionWriter
    from stabbench.report.results import build_results, leaderboard_row, row_probe, set_info, write_outputs
    from stabbench.synth import open_set

    ranks = launched_ranks()  # under torchrun: this rank's exact shard, rank 0 writes
    if ranks is not None and shard is not None:
        raise UsageError("--shard and torchrun both split the set: use one of them")
    shard_range = parse_shard(shard) if ranks is None else (ranks.rank, ranks.world)
    dataset = open_set(Path(set_dir))
    loaded = load_predictor(model, overrides=pop_spec_overrides(spec), spec_file=preprocess_json, allow_pickle=allow_pickle,
                            device=device, batch_size=batch_size, weights=weights, num_classes=len(dataset.classes))
    set_meta = set_info(dataset)
    leader = ranks is None or ranks.leader
    board = None if shard is not None or no_leaderboard or not leader else Path(leaderboard)
    if name is None and board is not None:
        name = recognise(board, row_probe(loaded.info, set_meta, boundary_width))
    info = {**loaded.info, "name": name or loaded.info["name"]}
    out_dir = Path(out or default_out_name(info["name"], shard))
    if out_dir.exists() and not overwrite:
        raise OutputConflictError(f"{out_dir}: already exists; pass --overwrite to replace it (or --out)")
    if board is not None and not replace:  # refused before a long evaluation
        refuse_conflicts(board, [row_probe(info, set_meta, boundary_width)])
    if workers is None:
        workers = default_workers() if ranks is None else 0  # under torchrun the ranks are the parallelism

    staging = start_saving_predictions(out_dir, ranks) if save_predictions else None

    def run():
        with progress_bar("eval", "sequences", quiet=quiet or not leader) as bar:
            return evaluate(loaded.predictor, dataset, spec=loaded.spec, band_width=boundary_width,
                            batch_size=batch_size, shard=shard_range, progress=counter(bar, "eval"),
                            allow_non_finite=allow_nonfinite, workers=workers,
                            on_labels=None if staging is None else PredictionWriter(staging))

    try:
        if ranks is None:
            state = run()
        else:
            state = evaluate_across_ranks(ranks, device, run)
            if state is None:  # not rank 0: rank 0 writes (and takes this rank's saved predictions)
                return
            shard_range = (0, 1)
        results = build_results(state, info, set_meta, boundary_width, shard_range)
        if staging is not None:
            results["predictions"] = finish_saving_predictions(staging, out_dir, ranks, dataset, state)
        write_outputs(out_dir, results, overwrite=overwrite, plot=not no_plot, predictions=staging)
    except BaseException:
        discard_saved_predictions(staging, out_dir, ranks)
        raise
    print_results(results)
    if board is not None:
        outcome = upsert_row(board, leaderboard_row(results), replace=replace)
        click.echo(f"results: {out_dir}/  leaderboard: {board} ({ROW_OUTCOMES[outcome]})", err=True)


@click.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Output folder of the merged result.")
@with_leaderboard_options
@reports_errors
def merge(shards, out, leaderboard, no_leaderboard, replace, overwrite, no_plot):
    """Merge the results of `stabbench eval --shard i/n` runs (exactly the single-run numbers)."""
    from stabbench.errors import OutputConflictError
    from stabbench.evaluation import merge_shards
    from stabbench.report.leaderboard import refuse_conflicts, upsert_row
    from stabbench.report.results import build_results, leaderboard_row, load_results, row_probe, write_outputs

    state, first = merge_shards([(str(path), load_results(Path(path))) for path in shards])
    if Path(out).exists() and not overwrite:
        raise OutputConflictError(f"{out}: already exists; pass --overwrite to replace it")
    if not no_leaderboard and not replace:  # refused before anything is written, as eval does
        refuse_conflicts(Path(leaderboard), [row_probe(first["model"], first["set"], first["settings"]["boundary_width"])])
    results = build_results(state, first["model"], first["set"], first["settings"]["boundary_width"], (0, 1))
    write_outputs(Path(out), results, overwrite=overwrite, plot=not no_plot)
    print_results(results)
    if not no_leaderboard:
        outcome = upsert_row(Path(leaderboard), leaderboard_row(results), replace=replace)
        click.echo(f"results: {out}/  leaderboard: {leaderboard} ({ROW_OUTCOMES[outcome]})", err=True)


def start_saving_predictions(out_dir: Path, ranks) -> Path:
    """The staging folder this process writes its predictions to (``.OUT.predictions-PID``, or
    ``-rankRofW`` under torchrun: every rank writes its own sequences beside the shared output)."""
    import os

    from stabbench.report.predictions import remove_stale_staging, staging_folder

    remove_stale_staging(out_dir)
    return staging_folder(out_dir, str(os.getpid()) if ranks is None else rank_tag(ranks.rank, ranks.world))


def rank_tag(rank: int, world: int) -> str:
    return f"rank{rank}of{world}"


def finish_saving_predictions(staging: Path, out_dir: Path, ranks, dataset, state) -> dict:
    """Rank 0 (or the one process): gather every rank's folders, hash, index; the results record."""
    from stabbench.report.predictions import finish_staging, gather_rank_staging, staging_folder

    if ranks is not None:
        gather_rank_staging(staging, [staging_folder(out_dir, rank_tag(r, ranks.world)) for r in range(1, ranks.world)])
    frames = {seq.id: seq.num_frames for seq in dataset if seq.id in state.groups}
    return finish_staging(staging, frames)


def discard_saved_predictions(staging: Path | None, out_dir: Path, ranks) -> None:
    """On a failure: remove this process's staging folder (rank 0: every rank's)."""
    import shutil

    from stabbench.report.predictions import staging_folder

    if staging is None:
        return
    folders = [staging]
    if ranks is not None and ranks.leader:
        folders += [staging_folder(out_dir, rank_tag(r, ranks.world)) for r in range(1, ranks.world)]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def default_out_name(model: str, shard: str | None) -> str:
    """``eval-<parent>-<file>`` for a model file (``base/model.pt2`` and ``ft/model.pt2`` differ),
    ``eval-<name>`` otherwise; characters outside ``[A-Za-z0-9._=-]`` become ``_``."""
    parts = [p for p in model.replace("\\", "/").split("/") if p not in ("", ".")]
    text = "-".join(parts[-2:]) if len(parts) > 1 else model
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", text)
    return f"eval-{name}" + (f"-shard{shard.replace('/', 'of')}" if shard else "")


def print_results(results: dict) -> None:
    """A rich table of the headline and the per perturbation x severity breakdown, on stdout."""
    from rich.table import Table

    out = console()
    m = results["metrics"]
    out.print(f"model {results['model'].get('name') or results['model']['id']}  on  {results['set']['path']} ({results['set']['dataset']}, protocol "
              f"{results['set']['protocol_version']}, {m['sequences']} sequences)", soft_wrap=True)  # long paths stay whole
    head = Table(title="headline (percent)")
    for col in ("S_global", "S_boundary", "mIoU_syn"):
        head.add_column(col, justify="right")
    head.add_row(*(fmt_metric(m[c]) for c in ("S_global", "S_boundary", "mIoU_syn")))
    out.print(head)
    rows = results["per_perturbation_severity"]
    severities = sorted({r["severity"] for r in rows})
    for metric in ("S_global", "S_boundary"):
        table = Table(title=f"{metric} per perturbation x severity (percent)")
        table.add_column("perturbation")
        for s in severities:
            table.add_column(f"sev {s}", justify="right")
        for name in sorted({r["perturbation"] for r in rows}):
            cells = {r["severity"]: r for r in rows if r["perturbation"] == name}
            table.add_row(name, *(fmt_metric(cells[s][metric]) if s in cells else "-" for s in severities))
        out.print(table)
    for w in results["warnings"]:
        console(stderr=True).print(f"[yellow]warning:[/yellow] {w}")
