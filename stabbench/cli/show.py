"""``stabbench show``: see the flicker of a result (clips, source-space heatmaps, A|B)."""

from __future__ import annotations

from pathlib import Path

import click

from stabbench.cli.common import (
    allow_pickle_option,
    counter,
    device_option,
    overwrite_option,
    pop_spec_overrides,
    progress_bar,
    quiet_option,
    reports_errors,
    spec_options,
    split_csv,
    weights_option,
)


@click.command()
@click.argument("result_dir", type=click.Path(path_type=str))
@click.option("--set", "set_dir", type=click.Path(path_type=str),
              help="The synthetic set (default: the path recorded in results.json); must be the set evaluated.")
@click.option("--sequences", metavar="ID,...", help="Sequences to render (default: the --worst N by S_boundary).")
@click.option("--worst", type=click.IntRange(min=1), help="Render the N sequences with the lowest S_boundary [default: 3].")
@click.option("--compare", "compare_dir", type=click.Path(path_type=str),
              help="A second result on the same set (with saved predictions): adds an A|B clip per sequence.")
@click.option("--format", "formats", default="gif,mp4", show_default=True, help="Clip formats: gif, mp4 or both.")
@click.option("--out", "-o", type=click.Path(path_type=str), help="Output folder (default: RESULT_DIR/visuals).")
@overwrite_option
@quiet_option
@click.option("--model", "-m", help="Run the result's own model (same id/file/weights/pre-processing, else exit 3) on the "
                                    "chosen sequences instead of reading saved predictions; options as for eval.")
@weights_option("With --model: the state dict the result's model was evaluated with.")
@spec_options
@allow_pickle_option
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), help="With --model: most frames per model call.")
@reports_errors
def show(result_dir, set_dir, sequences, worst, compare_dir, formats, out, overwrite, quiet, model, weights,
         preprocess_json, allow_pickle, device, batch_size, **spec):
    """Render clips and source-space flicker heatmaps of a result's sequences.

    Needs the predictions saved by `stabbench eval --save-predictions` (no model run), or
    --model, the result's own model, run on the chosen sequences only. Per
    sequence: clip.gif / clip.mp4 (predicted outline, flicker pixels red, boundary band shaded),
    heatmap.png (inconsistent pixels mapped back to the source image, rate per source pixel),
    and with --compare an A|B clip; visuals.json lists them.
    """
    from stabbench.errors import UsageError
    from stabbench.visuals.show import show as render

    chosen = split_csv(sequences)
    if chosen is not None and worst is not None:
        raise UsageError("--sequences and --worst both choose sequences: give one of them")
    loaded = None
    if model is not None:
        from stabbench.predictors import load_predictor
        from stabbench.report.results import load_results

        classes = load_results(Path(result_dir))["set"].get("classes") or []
        loaded = load_predictor(model, overrides=pop_spec_overrides(spec), spec_file=preprocess_json,
                                allow_pickle=allow_pickle, device=device, batch_size=batch_size, weights=weights,
                                num_classes=len(classes) or None)
    with progress_bar("show", "sequences", quiet=quiet) as bar:
        folder = render(Path(result_dir), set_dir=None if set_dir is None else Path(set_dir), sequences=chosen,
                        worst=3 if worst is None else worst, compare_dir=None if compare_dir is None else Path(compare_dir),
                        formats=split_csv(formats) or (), out=None if out is None else Path(out), overwrite=overwrite,
                        progress=counter(bar, "show"), model=loaded, batch_size=batch_size)
    click.echo(f"visuals: {folder}/", err=True)
