"""Exit codes and the exceptions that map to them.

Every command of the CLI exits with one of these codes; library code never calls
``sys.exit`` but raises a :class:`StabbenchError` subclass, and the CLI turns it into
a one-line message on stderr and the matching exit code.

======  ==========================================================================
code    meaning
======  ==========================================================================
0       success
1       a check failed (``stabbench gate``: a metric fell short)
2       usage error (unknown option, bad option value; click's own code)
3       bad input data (missing/corrupt file, wrong layout, size mismatch, ...)
4       output conflict (output exists and ``--overwrite`` was not given, or an
        interrupted output was made with different settings)
5       bad model (cannot be loaded, wrong output shape, NaN/Inf output, fails
        while predicting)
6       failure of the environment: an output cannot be written (read-only
        folder, disk full, a path below a regular file, ...), or a worker
        process or rank died; nothing half-written is left
70      internal error (a bug: please report it; ``STABBENCH_DEBUG=1`` shows the
        traceback)
130     interrupted (re-run the same command to resume)
======  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_DATA = 3
EXIT_OUTPUT_CONFLICT = 4
EXIT_BAD_MODEL = 5
EXIT_IO = 6
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class StabbenchError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_BAD_DATA


class DataError(StabbenchError):
    """Bad input data. The message names the file and the problem."""

    exit_code = EXIT_BAD_DATA

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")

    def __reduce__(self):  # crosses process boundaries (eval workers) intact
        return (type(self), (self.path, self.problem))


class OutputConflictError(StabbenchError):
    """The output exists (or an incompatible partial one) and must not be overwritten."""

    exit_code = EXIT_OUTPUT_CONFLICT


class ModelError(StabbenchError):
    """The model cannot be loaded or its output does not fit the protocol."""

    exit_code = EXIT_BAD_MODEL


class IOFailure(StabbenchError):
    """An output could not be written (or an input folder read) because of the environment."""

    exit_code = EXIT_IO


class UsageError(StabbenchError):
    """Invalid combination of arguments detected after parsing."""

    exit_code = EXIT_USAGE
