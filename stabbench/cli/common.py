"""What every command shares: the error edge, option groups declared once, the console and progress bars.

Heavy imports (torch, rich) happen inside functions so that ``--help`` is instant.
"""

from __future__ import annotations

import functools
import math
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import click

from stabbench.conventions import BAND_WIDTH

#: What the leaderboard line on stderr says of a row (:func:`~stabbench.report.leaderboard.upsert_rows`).
ROW_OUTCOMES = {"added": "row added", "replaced": "row replaced",
                "unchanged": "an identical row is already there: left as it is"}


def reports_errors(command):
    """The error edge: every failure becomes one line on stderr and a documented exit code.

    :class:`StabbenchError` -> its code; ``OSError`` (read-only folder, disk full, a path below
    a regular file, ...) -> 6 naming the file; ``KeyboardInterrupt`` -> 130; anything else is a
    bug -> 70 (``STABBENCH_DEBUG=1`` re-raises it with its traceback).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import os

        from stabbench.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_IO, StabbenchError

        try:
            return command(*args, **kwargs)
        except StabbenchError as exc:
            click.echo(f"stabbench: error: {one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # a command may say what to do next (finetune: resume or not)
            what = one_line(str(exc)) if exc.args else "re-run the same command to resume"
            click.echo(f"stabbench: interrupted: {what}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"stabbench: error: {where}cannot write or read ({exc.strerror or exc}); nothing was half-written", err=True)
            sys.exit(EXIT_IO)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback reaches a user
            if os.environ.get("STABBENCH_DEBUG"):
                raise
            click.echo(f"stabbench: internal error: {type(exc).__name__}: {one_line(str(exc))} (a bug: please report it; "
                       "STABBENCH_DEBUG=1 shows the traceback)", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper


def one_line(text: str, limit: int = 800) -> str:
    """A message on one line (a library's multi-line text folded), at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_csv(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def stack_options(options: list[Callable]) -> Callable:
    """One decorator applying click ``options`` in the order listed."""

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


# ----------------------------------------------------------------------------- option groups

#: The labelled-dataset options (``synth`` and ``finetune``), as parameter names.
DATASET_OPTION_NAMES = ("split", "year", "davis_objects", "frames_per_sequence", "max_images", "images", "masks",
                        "mask_mode", "num_images")


def dataset_options(cityscapes_split: str) -> Callable:
    """The options of the labelled-image datasets, shared by `synth` and `finetune`."""
    return stack_options([
        click.option("--split", help=f"davis/cityscapes: split name (davis: ImageSets/<year>/<split>.txt; cityscapes default: {cityscapes_split})."),
        click.option("--year", type=click.Choice(["2016", "2017"]), help="davis: which ImageSets folder to read the split from."),
        click.option("--davis-objects", type=click.Choice(["merge", "ids"]), default="merge", show_default=True,
                     help="davis: merge objects into one foreground, or keep object ids as classes."),
        click.option("--frames-per-sequence", type=click.IntRange(min=1), default=1, show_default=True,
                     help="davis: annotated frames used per video (1 = the first, the paper protocol)."),
        click.option("--max-images", type=click.IntRange(min=1), help="cityscapes: draw this many images at random (seeded)."),
        click.option("--images", default="images", show_default=True, help="folder: image sub-directory."),
        click.option("--masks", default="masks", show_default=True, help="folder: mask sub-directory."),
        click.option("--mask-mode", type=click.Choice(["binary", "labels"]), default="binary", show_default=True,
                     help="folder: binary (0/255 or >0 is foreground) or labels (values are class ids)."),
        click.option("--num-images", type=click.IntRange(min=1), default=4, show_default=True, help="shapes: number of images."),
    ])


def pop_dataset_options(kw: dict) -> dict:
    """Remove the dataset options from a command's keyword arguments and return them."""
    return {name: kw.pop(name) for name in DATASET_OPTION_NAMES}


def loader_options(dataset: str, opts: dict) -> dict:
    """The dataset options that apply to ``dataset``, under the loader's keyword names."""
    if dataset == "davis":
        year = None if opts["year"] is None else int(opts["year"])
        return dict(split=opts["split"], objects=opts["davis_objects"], frames_per_sequence=opts["frames_per_sequence"], year=year)
    if dataset == "cityscapes":
        return dict(split=opts["split"] or "val", max_images=opts["max_images"])
    if dataset == "folder":
        return dict(images=opts["images"], masks=opts["masks"], mask_mode=opts["mask_mode"])
    return dict(num_images=opts["num_images"])


#: The pre/post-processing options (:class:`~stabbench.predictors.spec.ModelSpec` fields).
SPEC_OPTION_NAMES = ("input_size", "resize", "mean", "std", "scale", "channels", "layout", "activation", "num_classes",
                     "foreground_class", "threshold")

spec_options = stack_options([
    click.option("--input-size", metavar="HxW", help="Resize frames to HxW before the model (default: native or the model's static shape)."),
    click.option("--resize", type=click.Choice(["stretch", "none"]), help="Resize mode (default stretch)."),
    click.option("--mean", metavar="R,G,B", help="Per-channel mean after scaling (default 0,0,0)."),
    click.option("--std", metavar="R,G,B", help="Per-channel std after scaling (default 1,1,1)."),
    click.option("--scale", type=float, help="Pixel scale before mean/std (default 1/255)."),
    click.option("--channels", type=click.Choice(["rgb", "bgr"]), help="Channel order the model expects."),
    click.option("--layout", type=click.Choice(["nchw", "nhwc"]), help="Tensor layout of input and output."),
    click.option("--activation", type=click.Choice(["none", "softmax", "sigmoid"]), help="Output activation."),
    click.option("--num-classes", type=click.IntRange(min=2), help="Number of classes the model outputs."),
    click.option("--foreground-class", metavar="ID[,ID]", help="Map these model classes to 1, others to 0 (binary sets)."),
    click.option("--threshold", type=click.FloatRange(0, 1), help="Threshold of a one-channel output (default 0.5)."),
    click.option("--preprocess-json", type=click.Path(dir_okay=False, path_type=str), help="JSON file of these settings (default: <model>.stabbench.json beside the model)."),
])


def pop_spec_overrides(kw: dict) -> dict:
    """Remove the spec options from ``kw``; return those given (the ``cli`` layer of the spec)."""
    values = {name: kw.pop(name) for name in SPEC_OPTION_NAMES}
    return {k: v for k, v in values.items() if v is not None}


def weights_option(help_text: str) -> Callable:
    return click.option("--weights", type=click.Path(dir_okay=False, path_type=str), help=help_text)


allow_pickle_option = click.option(
    "--trust-model", "--allow-pickle", "allow_pickle", is_flag=True,
    help="Load model content that can run code (a pickled nn.Module, a .pt2 with pickles or code): trusted files only.")
device_option = click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output.")


def _odd(ctx, param, value):
    if value is not None and value % 2 == 0:
        raise click.BadParameter(f"{value} is even; the band is centred on the edge line, so its width is odd (e.g. 15)")
    return value


def boundary_width_option(help_text: str, name: str = "--boundary-width", dest: str = "boundary_width") -> Callable:
    return click.option(name, dest, type=click.IntRange(min=1), default=BAND_WIDTH, show_default=True, help=help_text,
                        callback=_odd)


# ----------------------------------------------------------------------------- console and progress


def fmt_metric(value, digits: int = 2) -> str:
    """A metric for a table: ``n/a`` for None or NaN."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def console(stderr: bool = False, width: int = 110):
    """A rich console for tables (stdout) or messages (stderr), without syntax highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, width=width, highlight=False)


@contextmanager
def progress_bar(label: str, unit: str = "", *, quiet: bool = False, fields: bool = False) -> Iterator:
    """A rich progress bar on stderr (disabled with ``quiet``); yields the ``Progress``.

    ``fields=True`` adds a free-text column, set with ``update(task, info=...)``.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    stream = Console(stderr=True, highlight=False)
    if not stream.is_terminal:
        stream = Console(stderr=True, highlight=False, width=120)
    columns = [TextColumn("{task.description:<5}"), BarColumn(bar_width=30), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    if fields:
        columns.append(TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=stream, disable=quiet) as bar:
        yield bar


def counter(bar, label: str, **fields) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives a new task of ``bar``."""
    task = bar.add_task(label, total=None, **fields)
    return lambda done, total: bar.update(task, completed=done, total=total)
