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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="stabbench", message="%(prog)s %(version)s")
def main():
    """Benchmark the temporal stability of video segmentation models.

    \b
    stabbench synth   build synthetic sequences with exactly known flow
    stabbench info    summarise (and verify) a synthetic set
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
@click.option("--split", help="davis/cityscapes: split name (davis: ImageSets/<year>/<split>.txt).")
@click.option("--year", type=click.Choice(["2016", "2017"]), help="davis: which ImageSets folder to read the split from.")
@click.option("--davis-objects", type=click.Choice(["merge", "ids"]), default="merge", show_default=True,
              help="davis: merge objects into one foreground, or keep object ids as classes.")
@click.option("--frames-per-sequence", type=click.IntRange(min=1), default=1, show_default=True,
              help="davis: annotated frames used per video (1 = the first, the paper protocol).")
@click.option("--max-images", type=click.IntRange(min=1), help="cityscapes: draw this many images at random (seeded).")
@click.option("--images", default="images", show_default=True, help="folder: image sub-directory.")
@click.option("--masks", default="masks", show_default=True, help="folder: mask sub-directory.")
@click.option("--mask-mode", type=click.Choice(["binary", "labels"]), default="binary", show_default=True,
              help="folder: binary (>0 is foreground) or labels (values are class ids).")
@click.option("--num-images", type=click.IntRange(min=1), default=4, show_default=True, help="shapes: number of images.")
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


if __name__ == "__main__":  # pragma: no cover
    main()
