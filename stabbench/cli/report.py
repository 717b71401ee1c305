"""``stabbench report``: one self-contained HTML page from eval results, leaderboards and real-video results."""

from __future__ import annotations

from pathlib import Path

import click

from stabbench.cli.common import overwrite_option, reports_errors


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Folder of the page (index.html).")
@click.option("--leaderboard", "leaderboards", multiple=True, type=click.Path(path_type=str),
              help="A leaderboard CSV whose rows join the leaderboard table (repeatable).")
@click.option("--worst", type=click.IntRange(min=0), default=5, show_default=True,
              help="Least stable sequences (by S_boundary) listed per eval result.")
@click.option("--max-embed-mb", type=click.FloatRange(min=0), default=64.0, show_default=True,
              help="Cap on the clips and heatmaps embedded in the page; items past it keep their numbers only.")
@overwrite_option
@reports_errors
def report_cmd(results, out, leaderboards, worst, max_embed_mb, overwrite):
    """Write OUT/index.html: the leaderboard, stability against severity, the worst sequences with
    their clips and heatmaps, and real-video comparisons, in one file that needs no network.

    \b
    RESULTS: eval result folders (or their results.json; a visuals/visuals.json beside one, from
    stabbench show, adds its clips and heatmaps) and real-video results.json files.
    Example: stabbench report eval-base eval-cl --leaderboard leaderboard.csv --out report
    """
    from stabbench.errors import UsageError
    from stabbench.report.html import render_page, write_page
    from stabbench.report.sources import read_inputs

    if not results and not leaderboards:
        raise UsageError("give at least one result folder or --leaderboard CSV")
    target = Path(out) / "index.html"
    if target.exists() and not overwrite:  # refused before reading anything
        from stabbench.errors import OutputConflictError

        raise OutputConflictError(f"{target}: already exists; pass --overwrite to replace it")
    inputs = read_inputs(list(results), list(leaderboards), int(max_embed_mb * 2**20))
    for line in inputs.notes:
        click.echo(f"stabbench: {line}", err=True)
    page = write_page(Path(out), render_page(inputs, worst), overwrite=overwrite)
    click.echo(str(page))
