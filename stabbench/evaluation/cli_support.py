"""Glue for ``stabbench eval``, ``merge``, ``gate`` and ``leaderboard`` (kept out of cli.py)."""

from __future__ import annotations

import math
from pathlib import Path

from stabbench.errors import DataError, UsageError


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, width=110, highlight=False)


def run_eval(model: str, set_dir: Path, *, overrides: dict, spec_file, allow_pickle: bool, device: str,
             batch_size, band_width: int, shard_text, quiet: bool, leaderboard: Path | None = None,
             replace: bool = False):
    """Load the model and the set, evaluate (with a progress bar), return ``(results, state)``.

    With ``leaderboard`` (a full run that will add a row), a row already there for this model
    file, set and protocol is refused *before* the evaluation unless ``replace``.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from stabbench.evaluation import evaluate, parse_shard
    from stabbench.predictors import load_predictor
    from stabbench.report.results import build_results, set_info
    from stabbench.synth import open_set

    shard = parse_shard(shard_text)
    dataset = open_set(set_dir)
    loaded = load_predictor(model, overrides=overrides, spec_file=spec_file, allow_pickle=allow_pickle,
                            device=device, batch_size=batch_size)
    set_meta = set_info(dataset)
    if leaderboard is not None and not replace:
        from stabbench.errors import OutputConflictError
        from stabbench.report.leaderboard import has_row

        probe = {"model": loaded.info["id"], "model_sha256": loaded.info.get("sha256") or "",
                 "set_sha256": set_meta["sha256"], "protocol_version": set_meta["protocol_version"]}
        if has_row(leaderboard, probe):
            raise OutputConflictError(
                f"{leaderboard}: already has a row for model {probe['model']} on this set "
                f"(protocol {probe['protocol_version']}); pass --replace to replace it"
            )
    columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("sequences"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console(stderr=True), disable=quiet) as bar:
        task = bar.add_task("eval", total=None)
        state = evaluate(loaded.predictor, dataset, spec=loaded.spec, band_width=band_width, batch_size=batch_size,
                         shard=shard, progress=lambda d, t: bar.update(task, completed=d, total=t))
    return build_results(state, loaded.info, set_meta, band_width, shard), state


def merge_results(paths: list[Path]) -> dict:
    """Merge shard results of one model on one set into the single-run result."""
    from stabbench.evaluation import EvalState
    from stabbench.report.results import build_results, load_results

    parts = [load_results(p) for p in paths]
    first = parts[0]
    for path, part in zip(paths[1:], parts[1:]):
        for what, key in (("model", "sha256"), ("model", "id"), ("set", "sha256")):
            if part[what].get(key) != first[what].get(key):
                raise DataError(path, f"{what} {key} differs from {paths[0]}: not shards of one evaluation")
        if part["settings"]["boundary_width"] != first["settings"]["boundary_width"]:
            raise DataError(path, "boundary width differs from the other shards")
    state = EvalState.from_state_dict(first["state"])
    for path, part in zip(paths[1:], parts[1:]):
        try:
            state = state.merge(EvalState.from_state_dict(part["state"]))
        except ValueError as exc:
            raise DataError(path, str(exc)) from None
    shards = sorted(tuple(p["settings"]["shard"]) for p in parts)
    n = shards[0][1]
    if shards != [(i, n) for i in range(n)]:
        raise DataError(paths[0], f"shards {shards} do not cover i/{n} for i = 0..{n - 1} exactly once")
    return build_results(state, first["model"], first["set"], first["settings"]["boundary_width"], (0, 1))


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_results(results: dict) -> None:
    """A rich table of the headline and the per perturbation x severity breakdown, on stdout."""
    from rich.table import Table

    out = console()
    m = results["metrics"]
    out.print(f"model {results['model']['id']}  on  {results['set']['path']} ({results['set']['dataset']}, protocol "
              f"{results['set']['protocol_version']}, {m['sequences']} sequences)", soft_wrap=True)  # long paths stay whole
    head = Table(title="headline (percent)")
    for col in ("S_global", "S_boundary", "mIoU_syn"):
        head.add_column(col, justify="right")
    head.add_row(*(_fmt(m[c]) for c in ("S_global", "S_boundary", "mIoU_syn")))
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
            table.add_row(name, *(_fmt(cells[s][metric]) if s in cells else "-" for s in severities))
        out.print(table)
    for w in results["warnings"]:
        console(stderr=True).print(f"[yellow]warning:[/yellow] {w}")


def print_leaderboard(path: Path, as_json: bool = False) -> None:
    import json

    from rich.table import Table

    from stabbench.report.leaderboard import read_rows

    rows = read_rows(path)
    if not rows:
        raise DataError(path, "leaderboard not found or empty")
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"leaderboard {path}")
    columns = ("model", "dataset", "protocol_version", "sequences", "S_global", "S_boundary", "mIoU_syn")
    numeric = ("S_global", "S_boundary", "mIoU_syn")
    for col in columns:
        # a long model path folds over lines (no_wrap let it take the whole width: metrics vanished)
        table.add_column(col.replace("protocol_version", "protocol"), justify="right" if col in numeric else "left",
                         overflow="fold" if col == "model" else "ellipsis")
    for r in rows:
        table.add_row(*(_fmt(float(r[c])) if c in numeric and r.get(c) else r.get(c, "") for c in columns))
    console().print(table)


def run_gate(result_path: Path, model, thresholds, baseline, baseline_model, tolerance) -> int:
    """Print every check and return the exit code (0 all passed, 1 something fell short)."""
    from stabbench.report.gate import load_metrics, parse_threshold, run_checks

    try:
        parsed = [parse_threshold(t) for t in thresholds]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not parsed and baseline is None:
        raise UsageError("nothing to check: give --min METRIC=VALUE and/or --baseline")
    result = load_metrics(result_path, model)
    base = load_metrics(baseline, baseline_model) if baseline is not None else None
    checks = run_checks(result, parsed, base, f"baseline {baseline_model or baseline}", tolerance)
    failed = 0
    for c in checks:
        status = "ok  " if c.passed else "FAIL"
        failed += not c.passed
        print(f"{status} {c.metric:<11} {c.value:8.3f}  required >= {c.required:8.3f} ({c.source})  margin {c.margin:+.3f}")
    print(f"gate: {failed} of {len(checks)} checks fell short" if failed else f"gate: all {len(checks)} checks passed")
    return 1 if failed else 0
