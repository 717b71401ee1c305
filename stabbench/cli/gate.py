"""``stabbench gate`` and ``stabbench leaderboard``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stabbench.cli.common import console, fmt_metric, reports_errors


@click.command()
@click.argument("result", type=click.Path(path_type=str))
@click.option("--model", help="Row of RESULT to check when RESULT is a leaderboard CSV.")
@click.option("--min", "thresholds", multiple=True, metavar="METRIC=VALUE", help="Require METRIC >= VALUE (repeatable); METRIC: S_global, S_boundary, mIoU_syn.")
@click.option("--baseline", type=click.Path(path_type=str), help="results.json / eval folder / leaderboard CSV to compare with.")
@click.option("--baseline-model", help="Row of the baseline leaderboard to compare with.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Points each metric may fall below the baseline.")
@click.option("--allow-different-set", is_flag=True, help="Compare with a baseline measured on another set, protocol, band or "
                                                          "metric definitions (loudly; the numbers are then not comparable).")
@reports_errors
def gate(result, model, thresholds, baseline, baseline_model, tolerance, allow_different_set):
    """Check a result against thresholds and/or a baseline: exit 0 if all pass, 1 if any fell short.

    \b
    Exit codes: 0 all checks passed, 1 a check failed, 2 usage error, 3 unreadable/invalid result
    or a baseline measured differently (set, protocol, band width, metric definitions).
    Example: stabbench gate eval-mymodel --min S_boundary=94 --baseline leaderboard.csv --baseline-model main --tolerance 0.2
    """
    from stabbench.report.gate import gate as run_gate

    report = run_gate(Path(result), model, thresholds, Path(baseline) if baseline else None, baseline_model, tolerance,
                      allow_different_set)
    for note in report.notes:
        click.echo(f"stabbench: {note}", err=True)
    for line in report.lines():
        print(line)
    sys.exit(report.exit_code)


@click.command("leaderboard")
@click.argument("path", default="leaderboard.csv", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
@reports_errors
def leaderboard_cmd(path, as_json):
    """Print a leaderboard CSV as a table."""
    import json

    from rich.table import Table

    from stabbench.errors import DataError
    from stabbench.report.leaderboard import read_rows

    rows = read_rows(Path(path))
    if not rows:
        raise DataError(path, "leaderboard not found or empty")
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"leaderboard {path}")
    columns = ("model", "dataset", "set", "protocol_version", "sequences", "S_global", "S_boundary", "mIoU_syn")
    numeric = ("S_global", "S_boundary", "mIoU_syn")
    for col in columns:
        # a long model path folds over lines (no_wrap let it take the whole width: metrics vanished)
        table.add_column(col.replace("protocol_version", "protocol"), justify="right" if col in numeric else "left",
                         overflow="fold" if col == "model" else "ellipsis")
    for r in rows:
        set_text = f"{r.get('set', '')} {str(r.get('set_sha256', ''))[:8]}".strip()
        table.add_row(*(_metric_cell(r.get(c)) if c in numeric else (set_text if c == "set" else r.get(c, "")) for c in columns))
    console().print(table)


def _metric_cell(text) -> str:
    try:
        return fmt_metric(float(text))
    except (TypeError, ValueError):
        return str(text or "")
