"""``stabbench show``: see the flicker of a result (clips, source-space heatmaps, A|B)."""

from __future__ import annotations

from pathlib import Path

import click

from stabbench.cli.common import counter, overwrite_option, progress_bar, quiet_option, reports_errors, split_csv


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
@reports_errors
def show(result_dir, set_dir, sequences, worst, compare_dir, formats, out, overwrite, quiet):
    """Render clips and source-space flicker heatmaps of a result's sequences.

    Needs the predictions saved by `stabbench eval --save-predictions` (no model run). Per
    sequence: clip.gif / clip.mp4 (predicted outline, flicker pixels red, boundary band shaded),
    heatmap.png (inconsistent pixels mapped back to the source image, rate per source pixel),
    and with --compare an A|B clip; visuals.json lists them.
    """
    from stabbench.errors import UsageError
    from stabbench.visuals.show import show as render

    chosen = split_csv(sequences)
    if chosen is not None and worst is not None:
        raise UsageError("--sequences and --worst both choose sequences: give one of them")
    with progress_bar("show", "sequences", quiet=quiet) as bar:
        folder = render(Path(result_dir), set_dir=None if set_dir is None else Path(set_dir), sequences=chosen,
                        worst=3 if worst is None else worst, compare_dir=None if compare_dir is None else Path(compare_dir),
                        formats=split_csv(formats) or (), out=None if out is None else Path(out), overwrite=overwrite,
                        progress=counter(bar, "show"))
    click.echo(f"visuals: {folder}/", err=True)
