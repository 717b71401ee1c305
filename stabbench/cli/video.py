"""``stabbench video``: stability on real video, as a paired comparison with a reference."""

from __future__ import annotations

import shutil
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
    split_csv,
)


@click.command("video")
@click.option("--model", "-m", "models", multiple=True, required=True,
              help="A model to compare (repeatable): anything `stabbench eval --model` takes, or predictions:DIR[,map=foreground].")
@click.option("--videos", "-v", multiple=True, required=True, type=click.Path(path_type=str),
              help="Video files, folders of frames, or folders of those (repeatable; DAVIS: JPEGImages/480p).")
@click.option("--annotations", type=click.Path(file_okay=False, path_type=str),
              help="Reference = ground-truth masks, DIR/<video>/<frame>.png (DAVIS: Annotations/480p); non-zero -> 1.")
@click.option("--reference", "reference_model", help="Reference = this model's prediction (instead of --annotations).")
@click.option("--out", "-o", default="video-out", show_default=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--flow-preset", type=click.Choice(["ultrafast", "fast", "medium"]), default="medium", show_default=True,
              help="DIS preset of the flow.")
@click.option("--flow-cache", type=click.Path(file_okay=False, path_type=str), default="flow-cache", show_default=True,
              help="Flow cache folder (each pair's flow computed once, keyed by its frames and settings).")
@click.option("--no-motion-boundary", is_flag=True, help="Track pixels on motion boundaries too (forward-backward check only).")
@boundary_width_option("Width (px) of the band around the reference's edges for S_boundary.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples of the intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--leaderboard", default="leaderboard.csv", show_default=True, type=click.Path(dir_okay=False, path_type=str),
              help="Leaderboard CSV to add the rows to (marked as real video).")
@click.option("--no-leaderboard", is_flag=True, help="Do not touch the leaderboard.")
@click.option("--replace", is_flag=True, help="Replace existing leaderboard rows of these models for this measurement "
                                            "(rows identical to those there, date aside, are left as they are without it).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--visuals", is_flag=True, help="Also write flicker clips: OUT/visuals/<video>/<model>.gif|.mp4 and "
                                              "visuals.json (predicted outline, flicker red, the reference's band shaded).")
@click.option("--visuals-format", default="gif,mp4", show_default=True, help="With --visuals: clip formats, gif, mp4 or both.")
@click.option("--visuals-compare", is_flag=True, help="With --visuals: also an A|B clip of each model beside the reference.")
@quiet_option
@spec_options
@allow_pickle_option
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), help="Most frames per model call (default: a whole video).")
@reports_errors
def video_cmd(models, videos, annotations, reference_model, out, flow_preset, flow_cache, no_motion_boundary,
              boundary_width, resamples, seed, leaderboard, no_leaderboard, replace, overwrite, visuals, visuals_format,
              visuals_compare, quiet, preprocess_json, allow_pickle, device, batch_size, **spec):
    """Compare models' stability on real video with a reference, on identical pixels.

    Every model predicts every frame; pairs are tracked with DIS flow (both directions), the
    forward-backward check, the motion-boundary criterion and the in-frame mask; the band for
    S_boundary lies around the reference's edges. Reports per video and overall each model's
    S_global, S_boundary, the tracked fraction, and the difference to the reference with a 95 %
    bootstrap interval and a verdict. Writes OUT/results.json, per_video.csv, overall.csv, and
    leaderboard rows marked as real video; with --visuals, OUT/visuals/ (the flicker clips).
    """
    from stabbench.errors import OutputConflictError, UsageError
    from stabbench.flow import FlowCache, FlowParams, list_videos
    from stabbench.predictors import load_predictor
    from stabbench.realvideo import ANNOTATIONS, MotionBoundary, Settings, measure
    from stabbench.realvideo.results import (
        build_results,
        leaderboard_rows,
        measurement_digest,
        row_probes,
        settings_dict,
        write_outputs,
    )
    from stabbench.realvideo.run import video_checksum, video_id
    from stabbench.realvideo.visuals import ClipWriter
    from stabbench.report.leaderboard import refuse_conflicts, upsert_rows

    if (annotations is None) == (reference_model is None):
        raise UsageError("give the reference: --annotations DIR or --reference MODEL (exactly one)")
    formats = _visuals_formats(visuals, visuals_format, visuals_compare)
    out_dir = Path(out)
    if out_dir.exists() and not overwrite:
        raise OutputConflictError(f"{out_dir}: already exists; pass --overwrite to replace it (or --out)")
    overrides = pop_spec_overrides(spec)
    refs = list(dict.fromkeys(models + ((reference_model,) if reference_model else ())))
    loaded = {ref: load_predictor(ref, overrides=overrides, spec_file=preprocess_json, allow_pickle=allow_pickle,
                                  device=device, batch_size=batch_size) for ref in refs}
    names = {ref: loaded[ref].info["name"] for ref in refs}
    if len(set(names.values())) < len(names) or ANNOTATIONS in names.values():
        raise UsageError(f"two models have the same name ({', '.join(names.values())}); compare distinct models")
    by_name = {names[ref]: loaded[ref] for ref in refs}
    reference = _reference(annotations, names.get(reference_model), by_name)
    settings = Settings(FlowParams(flow_preset), None if no_motion_boundary else MotionBoundary(), boundary_width)
    sources = list_videos(videos)
    board = None if no_leaderboard else Path(leaderboard)
    if board is not None and not replace:  # a row known to differ is refused before the long measurement
        digest = measurement_digest({video_id(v): video_checksum(v) for v in sources}, reference,
                                    settings_dict(settings, seed, resamples))
        refuse_conflicts(board, row_probes({n: m.info for n, m in by_name.items()}, reference, digest, boundary_width,
                                           seed))
    staging = None if formats is None else start_staging(out_dir)
    try:
        clips = None if staging is None else ClipWriter(staging, reference["name"], boundary_width, formats,
                                                        visuals_compare)
        with progress_bar("video", "videos", quiet=quiet) as bar:
            state = measure(sources, by_name, reference["name"], None if annotations is None else Path(annotations),
                            settings, FlowCache(flow_cache), batch_size, counter(bar, "video"), clips)
        if clips is not None:
            clips.finish(list(state.meters))
        results = build_results(state, {n: m.info for n, m in by_name.items()}, reference, settings, list(videos), seed,
                                resamples)
        rows = leaderboard_rows(results)
        write_outputs(out_dir, results, overwrite=overwrite, visuals=staging)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # moved into the output on success
    print_comparison(results)
    if board is not None:  # one update: rows identical to those there (the reference's, say) are left as they are
        outcomes = upsert_rows(board, rows, replace=replace)
        told = ", ".join(f"{row['model']}: {ROW_OUTCOMES[o]}" for row, o in zip(rows, outcomes))
        click.echo(f"results: {out_dir}/  leaderboard: {board} ({told})", err=True)


def _visuals_formats(visuals: bool, formats: str, compare: bool) -> tuple[str, ...] | None:
    """The clip formats of ``--visuals`` (``None`` without it); bad values are usage errors (exit 2)."""
    from stabbench.errors import UsageError
    from stabbench.visuals.show import FORMATS

    chosen = split_csv(formats) or ()
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UsageError(f"--visuals-format: {', '.join(unknown) or 'nothing'} given; choose from {', '.join(FORMATS)}")
    if not visuals:
        if compare:
            raise UsageError("--visuals-compare needs --visuals")
        return None
    return tuple(dict.fromkeys(chosen))


def start_staging(out_dir: Path) -> Path:
    """An empty ``.OUT.visuals-PID`` beside the output, where the clips are drawn during the run (those
    of dead runs removed); :func:`~stabbench.realvideo.results.write_outputs` moves it into the output."""
    import os

    from stabbench.report.predictions import remove_stale_staging, staging_folder

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir, "visuals")
    staging = staging_folder(out_dir, str(os.getpid()), "visuals")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _reference(annotations: str | None, model_name: str | None, by_name: dict) -> dict:
    from stabbench.predictors.precomputed import predictions_digest
    from stabbench.realvideo import ANNOTATIONS

    if annotations is not None:
        return {"name": ANNOTATIONS, "id": f"annotations:{Path(annotations).name}", "kind": "annotations",
                "path": annotations, "sha256": predictions_digest(annotations)}
    info = by_name[model_name].info
    return {"name": model_name, "id": info["id"], "kind": "model", "sha256": info.get("sha256")}


def print_comparison(results: dict) -> None:
    """The overall table (and the verdicts per video) on stdout."""
    from rich.table import Table

    out = console()
    ref = results["reference"]["name"]
    table = Table(title=f"real video, against {ref} (percent; d = model - reference, 95 % bootstrap interval)")
    for col in ("model", "S_global", "S_boundary", "coverage", "dS_boundary [95 % CI]", "verdict (boundary)"):
        table.add_column(col, justify="left" if col in ("model", "verdict (boundary)") else "right")
    for r in results["overall"]:
        interval = f"{fmt_metric(r['dS_boundary'])} [{fmt_metric(r['dS_boundary_lo'])}, {fmt_metric(r['dS_boundary_hi'])}]"
        table.add_row(r["model"], fmt_metric(r["S_global"]), fmt_metric(r["S_boundary"]), fmt_metric(r["coverage_pct"]),
                      "-" if r["model"] == ref else interval, "reference" if r["model"] == ref else r["S_boundary_verdict"])
    out.print(table)
