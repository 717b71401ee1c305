"""``stabbench synth`` and ``stabbench info``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stabbench.cli.common import (
    console,
    counter,
    dataset_options,
    loader_options,
    pop_dataset_options,
    progress_bar,
    quiet_option,
    reports_errors,
    split_csv,
)
from stabbench.synth.manifest import COMPACT_FORMAT


@click.command()
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
@click.option("--materialize", is_flag=True, help="Write every frame and mask as a PNG (set format 1) instead of a compact "
                                                  "set rendered on demand (format 3, the default).")
@click.option("--overwrite", is_flag=True, help="Replace an existing set at --out.")
@quiet_option
@reports_errors
def synth(dataset, root, out, protocol, num_frames, seed, perturbation_names, severities, materialize, overwrite, quiet, **kw):
    """Build synthetic sequences with exactly known flow from labelled images.

    Each source image gives sequences of --frames frames (translation, rotation, scaling,
    occlusion, gaussian_noise; severities 1-6). By default the set is compact: each source
    once, every trajectory and the checksum of every rendered frame; frames, masks and flow
    are rendered on demand, bit-identical to --materialize, which writes them all as PNGs.
    Same command and seed: same bytes. An interrupted run is resumed by re-running the
    same command.
    """
    from stabbench.synth.writer import synthesize

    listing, config = build_config(dataset, root, protocol, num_frames, seed, split_csv(perturbation_names),
                                   split_csv(severities), pop_dataset_options(kw), materialize)
    with progress_bar("synth", "sequences", quiet=quiet) as bar:
        report = synthesize(listing, config, Path(out), overwrite=overwrite, progress=counter(bar, "synth"))
    if report.resumed:
        console(stderr=True).print(f"resumed: {report.resumed} sequences kept from an interrupted run, {report.written} written")
    print_summary(Path(out))


@click.command()
@click.argument("set_dir", type=click.Path(path_type=str))
@click.option("--verify", is_flag=True, help="Check every file against its sha256 in the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors
def info(set_dir, verify, as_json):
    """Summarise a synthetic set (sequences per perturbation x severity, sizes, versions)."""
    from stabbench.synth import open_set

    if verify:
        dataset = open_set(Path(set_dir))
        dataset.verify()
    print_summary(Path(set_dir), as_json=as_json)
    if verify:
        what = "rendered frame and mask" if dataset.format_version == COMPACT_FORMAT else "file"
        click.echo(f"verified: every {what} of the {len(dataset)} sequences matches its sha256 in the manifest", err=True)


def check_names(names: tuple[str, ...] | None, choices: tuple, what: str) -> tuple:
    """Validate a user-given subset; bad names are bad input (exit 3), listing the choices."""
    from stabbench.errors import DataError

    if names is None:
        return tuple(choices)
    bad = [n for n in names if n not in choices]
    if bad or not names:
        raise DataError(None, f"unknown {what} {', '.join(map(repr, bad)) or '(empty list)'}; choose from {', '.join(map(str, choices))}")
    return tuple(dict.fromkeys(names))


def parse_severities(values: tuple[str, ...] | None) -> tuple[int, ...]:
    from perturbations import SEVERITIES
    from stabbench.errors import DataError

    if values is None:
        return SEVERITIES
    try:
        ints = tuple(int(v) for v in values)
    except ValueError:
        raise DataError(None, f"severities must be integers 1-6, got {','.join(values)}") from None
    return check_names(ints, SEVERITIES, "severity")


@click.command()
@click.argument("set_dir", type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--format", "fmt", type=click.Choice(["png", "mp4"]), default="png", show_default=True,
              help="png: a materialized set (every frame and mask a PNG, set format 1, readable by stabbench); "
                   "mp4: one video per sequence (lossy, for viewing or pipelines) and its masks as PNGs.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty --out.")
@quiet_option
@reports_errors
def export(set_dir, out, fmt, overwrite, quiet):
    """Write a set's frames and masks as files (renders a compact set, checking every frame)."""
    from stabbench.synth import open_set
    from stabbench.synth.export import export_set

    dataset = open_set(Path(set_dir))
    with progress_bar("export", "sequences", quiet=quiet) as bar:
        export_set(dataset, Path(out), fmt, overwrite=overwrite, progress=counter(bar, "export"))


def build_config(dataset, root, protocol, num_frames, seed, perturbation_names, severities, opts, materialize=False):
    """List the dataset and assemble the run's :class:`~stabbench.synth.writer.SynthConfig`."""
    from perturbations import PERTURBATION_NAMES
    from stabbench.datasets import DATASET_NAMES, list_sources
    from stabbench.errors import DataError
    from stabbench.synth.writer import SynthConfig

    check_names((dataset,), DATASET_NAMES, "dataset")
    names = check_names(perturbation_names, PERTURBATION_NAMES, "perturbation")
    sev = parse_severities(severities)
    options = loader_options(dataset, opts)
    if dataset == "cityscapes":
        options["seed"] = seed
    try:
        listing = list_sources(dataset, root, **options)
    except ValueError as exc:
        raise DataError(None, str(exc)) from None
    config = SynthConfig(dataset, root, listing.options or options, protocol, num_frames, seed, names, sev, materialize)
    return listing, config


def print_summary(out: Path, as_json: bool = False) -> None:
    """Print the summary: a rich table, or JSON, on stdout."""
    from stabbench.synth.summary import summarize_set

    summary = summarize_set(out)
    if as_json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return
    from rich.table import Table

    cfg = summary["config"]
    sev = [str(s) for s in cfg["severities"]]
    table = Table(title=f"synthetic set {summary['set']}  (protocol {summary['protocol_version']}, seed {cfg['seed']})")
    table.add_column("perturbation")
    for s in sev:
        table.add_column(f"sev {s}", justify="right")
    for name, row in summary["counts"].items():
        table.add_row(name, *[str(row.get(s, 0)) for s in sev])
    out_console = console(width=100)
    out_console.print(table)
    out_console.print(
        f"dataset {cfg['dataset']}: {summary['sources']} source images -> {summary['sequences']} sequences, "
        f"{summary['frames']} frames; {summary['layout']} set, {summary['image_bytes'] / 1e6:.1f} MB of PNG, "
        f"{summary['manifest_bytes'] / 1e3:.1f} kB of manifest (correspondence geometry included); "
        f"classes: {', '.join(summary['classes'])}",
        highlight=False,
    )
