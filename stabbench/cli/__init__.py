"""The ``stabbench`` command line: one module per command group, option groups in :mod:`.common`.

Exit codes (see :mod:`stabbench.errors`): 0 ok, 1 a check failed, 2 usage error,
3 bad input data, 4 output conflict, 5 bad model, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from stabbench.cli.common import one_line
from stabbench.cli.evaluate import eval_cmd, merge
from stabbench.cli.finetune import finetune
from stabbench.cli.gate import gate, leaderboard_cmd
from stabbench.cli.report import report_cmd
from stabbench.cli.show import show
from stabbench.cli.synth import export, info, synth
from stabbench.cli.video import video_cmd
from stabbench.errors import EXIT_INTERRUPTED


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``stabbench: warning:`` line (no source file and line of code)."""
    click.echo(f"stabbench: warning: {one_line(str(message))}", err=True)


class StabbenchGroup(click.Group):
    """The command group: errors of the command line itself (an unknown option, a bad value) are
    one ``stabbench: error:`` line with exit 2, like every other error; ``--help`` lists the
    commands once (the group's docstring holds the list)."""

    def format_commands(self, ctx, formatter) -> None:  # the docstring lists them, with better summaries
        pass

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            self._main_standalone(args, prog_name, complete_var, **extra)
        except SystemExit as exc:
            leave(exc)

    def _main_standalone(self, args, prog_name, complete_var, **extra) -> None:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line
                super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"stabbench: error: {one_line(exc.format_message())}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"stabbench: error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("stabbench: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(0)


def leave(exc: SystemExit) -> None:
    """Exit with ``exc``'s code. In a rank started by ``torchrun`` (``TORCHELASTIC_RUN_ID`` set), once
    every output is written and the streams are flushed, leave with ``os._exit``: the interpreter's
    teardown is where torch's gloo threads now and then abort the process ("terminate called without
    an active exception", SIGABRT, seen in about 1 of 70 two-rank runs with torch 2.9.1 and 2.13.0),
    which would turn a finished run into a failed one."""
    if not os.environ.get("TORCHELASTIC_RUN_ID"):
        raise exc
    code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)


@click.group(cls=StabbenchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="stabbench", message="%(prog)s %(version)s")
def main():
    """Benchmark the temporal stability of video segmentation models.

    \b
    stabbench synth        build synthetic sequences with exactly known flow
    stabbench info         summarise (and verify) a synthetic set
    stabbench export       write a set's frames and masks as PNG files or MP4 videos
    stabbench eval         evaluate a model's stability on a synthetic set
    stabbench merge        merge sharded eval results
    stabbench gate         fail (exit 1) when a result falls short of thresholds/baseline
    stabbench leaderboard  print a leaderboard CSV
    stabbench report       one self-contained HTML page from results (leaderboard, plots, clips)
    stabbench finetune     fine-tune a model with the Coherent Loss (or train one from scratch)
    stabbench video        compare models' stability on real video with a reference
    stabbench show         clips and flicker heatmaps of a result's sequences (saved predictions)
    """


for command in (synth, info, export, eval_cmd, merge, gate, leaderboard_cmd, finetune, video_cmd, show, report_cmd):
    main.add_command(command)

__all__ = ["main"]
