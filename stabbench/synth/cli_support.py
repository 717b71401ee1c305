"""Glue between ``stabbench synth`` / ``stabbench info`` and the library (kept out of cli.py
so ``--help`` imports nothing heavy)."""

from __future__ import annotations

import json
from pathlib import Path

from perturbations import PERTURBATION_NAMES, SEVERITIES
from stabbench.datasets import DATASET_NAMES, DatasetListing, list_sources
from stabbench.errors import DataError
from stabbench.synth.writer import SynthConfig, synthesize


def dataset_options(dataset: str, opts: dict) -> dict:
    """The CLI options that apply to ``dataset``, under the loader's keyword names."""
    if dataset == "davis":
        year = None if opts["year"] is None else int(opts["year"])
        return dict(split=opts["split"], objects=opts["davis_objects"], frames_per_sequence=opts["frames_per_sequence"], year=year)
    if dataset == "cityscapes":
        return dict(split=opts["split"] or "val", max_images=opts["max_images"])
    if dataset == "folder":
        return dict(images=opts["images"], masks=opts["masks"], mask_mode=opts["mask_mode"])
    return dict(num_images=opts["num_images"])


def check_names(names: tuple[str, ...] | None, choices: tuple, what: str) -> tuple:
    """Validate a user-given subset; bad names are bad input (exit 3), listing the choices."""
    if names is None:
        return tuple(choices)
    bad = [n for n in names if n not in choices]
    if bad or not names:
        raise DataError(None, f"unknown {what} {', '.join(map(repr, bad)) or '(empty list)'}; choose from {', '.join(map(str, choices))}")
    return tuple(dict.fromkeys(names))


def parse_severities(values: tuple[str, ...] | None) -> tuple[int, ...]:
    if values is None:
        return SEVERITIES
    try:
        ints = tuple(int(v) for v in values)
    except ValueError:
        raise DataError(None, f"severities must be integers 1-6, got {','.join(values)}") from None
    return check_names(ints, SEVERITIES, "severity")


def build_config(dataset, root, protocol, num_frames, seed, perturbation_names, severities, opts) -> tuple[DatasetListing, SynthConfig]:
    """List the dataset and assemble the run's :class:`SynthConfig`."""
    check_names((dataset,), DATASET_NAMES, "dataset")
    names = check_names(perturbation_names, PERTURBATION_NAMES, "perturbation")
    sev = parse_severities(severities)
    options = dataset_options(dataset, opts)
    if dataset == "cityscapes":
        options["seed"] = seed
    try:
        listing = list_sources(dataset, root, **options)
    except ValueError as exc:
        raise DataError(None, str(exc)) from None
    config = SynthConfig(dataset, root, listing.options or options, protocol, num_frames, seed, names, sev)
    return listing, config


def run_synth(listing: DatasetListing, config: SynthConfig, out: Path, overwrite: bool, quiet: bool) -> None:
    """Run :func:`synthesize` with a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("sequences"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task("synth", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = synthesize(listing, config, out, overwrite=overwrite, progress=progress)
    if report.resumed:
        console.print(f"resumed: {report.resumed} sequences kept from an interrupted run, {report.written} written")


def summarize(out: Path) -> dict:
    """Machine-readable summary of a set."""
    from stabbench.synth.reader import open_set

    ds = open_set(out)
    counts: dict[str, dict[str, int]] = {}
    total_bytes = frames = 0
    for record in ds.manifest["sequences"]:
        plan = record["plan"]
        row = counts.setdefault(plan["perturbation"], {})
        row[str(plan["severity"])] = row.get(str(plan["severity"]), 0) + 1
        frames += len(record["frames"])
        total_bytes += sum(f["frame_bytes"] + f["mask_bytes"] for f in record["frames"])
    manifest_bytes = (out / "manifest.json").stat().st_size
    return {
        "set": str(out),
        "protocol_version": ds.protocol_version,
        "config": ds.config,
        "classes": list(ds.classes),
        "sources": len({r["plan"]["source_index"] for r in ds.manifest["sequences"]}),
        "sequences": len(ds),
        "frames": frames,
        "image_bytes": total_bytes,
        "manifest_bytes": manifest_bytes,
        "counts": counts,
        "versions": ds.manifest["versions"],
    }


def print_summary(out: Path, as_json: bool = False) -> None:
    """Print the summary: a rich table, or JSON, on stdout."""
    summary = summarize(out)
    if as_json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    cfg = summary["config"]
    sev = [str(s) for s in cfg["severities"]]
    table = Table(title=f"synthetic set {summary['set']}  (protocol {summary['protocol_version']}, seed {cfg['seed']})")
    table.add_column("perturbation")
    for s in sev:
        table.add_column(f"sev {s}", justify="right")
    for name, row in summary["counts"].items():
        table.add_row(name, *[str(row.get(s, 0)) for s in sev])
    console = Console(width=100)
    console.print(table)
    console.print(
        f"dataset {cfg['dataset']}: {summary['sources']} source images -> {summary['sequences']} sequences, "
        f"{summary['frames']} frames; {summary['image_bytes'] / 1e6:.1f} MB of PNG, "
        f"{summary['manifest_bytes'] / 1e3:.1f} kB of manifest (correspondence geometry included); "
        f"classes: {', '.join(summary['classes'])}",
        highlight=False,
    )


def verify_set(out: Path) -> None:
    from stabbench.synth.reader import open_set

    open_set(out).verify()
