"""``leaderboard.csv``: one row per model name x synthetic set x protocol version x band width.

A row's ``model`` is its name (``stabbench eval --name``, default the model's name: its id, and
its weights), ``model_id`` what was loaded, ``model_sha256`` the checksum of its file,
``model_fingerprint`` what it computes (:func:`stabbench.predictors.resolver.fingerprint`: the
file's sha256 for a bare model file; else also the factory, options and weights), ``set`` and
``set_sha256`` the set it was measured on. Metrics are stored at full precision (``repr`` of
the float: reading them back gives the same number). A text cell a spreadsheet would run as a
formula (a name ``=HYPERLINK(...)``) is written with a ``'`` before it and read back without
(:func:`stabbench.fileio.csv_cell`).

Appending is safe against concurrent runs: the file is read, changed and written back while
holding an exclusive ``flock`` on the leaderboard's folder (no lock file is created, so none
is left behind), through a temporary file, ``fsync`` and ``os.replace``, so a reader never
sees a half-written file and no row written by another run is lost.

A row whose key is already there: equal to that row in every column but ``date`` (the same
measurement again), it is a no-op, neither an error nor a second row; with another value in
any column it is refused, or replaces the row when ``replace=True``. Before a long run,
:func:`refuse_conflicts` refuses a row whose columns known in advance (the model's) already
differ from the row there.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_write_text, csv_cell, csv_value, locked_dir

COLUMNS = (
    "model",
    "model_id",
    "model_format",
    "model_sha256",
    "model_fingerprint",
    "preprocess",
    "dataset",
    "set",
    "set_sha256",
    "protocol_version",
    "protocol",
    "seed",
    "sequences",
    "boundary_width",
    "definitions",
    "non_finite",
    "S_global",
    "S_boundary",
    "mIoU_syn",
    "stabbench_version",
    "date",
)

#: A row's identity: one name, one set, one protocol, one band width.
KEY = ("model", "set_sha256", "protocol_version", "boundary_width")

METRICS = ("S_global", "S_boundary", "mIoU_syn")

#: Columns that say when a row was written, not what it records (two rows equal elsewhere are one).
WRITTEN = ("date",)
#: Columns named in the message of a refused row (of those that differ).
SHOWN_DIFFERENCES = 3


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in KEY)


def read_rows(path: Path) -> list[dict]:
    """All rows of a leaderboard (``[]`` if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise DataError(path, "leaderboard is not a regular file")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("model", *METRICS) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"not a stabbench leaderboard (missing columns: {', '.join(missing)})")
            # cells beyond the header (key None) are dropped; missing cells read as ""
            return [{k: ("" if v is None else csv_value(v)) for k, v in r.items() if k is not None} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read leaderboard ({exc})") from None


def format_rows(rows: list[dict]) -> str:
    buf = io.StringIO()
    columns = list(COLUMNS) + sorted({k for r in rows for k in r} - set(COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(_cell(row.get(k, ""))) for k in columns})
    return buf.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value)  # full precision: a gate against this row compares the numbers measured
    return "" if value is None else str(value)


def differing_columns(existing: dict, row: dict, given_only: bool = False) -> list[str]:
    """The columns where ``row`` and ``existing`` (a row read back) differ, :data:`WRITTEN` aside,
    compared as the file holds them; ``given_only``: only ``row``'s columns (a partial row)."""
    columns = row if given_only else dict.fromkeys([*row, *existing])
    return [k for k in columns if k not in WRITTEN and _cell(row.get(k, "")) != _cell(existing.get(k, ""))]


def _conflict(path: Path, row: dict, existing: dict, columns: list[str]) -> OutputConflictError:
    shown = "; ".join(f"{c} {existing.get(c, '')!r} there, {_cell(row.get(c, ''))!r} now"
                      for c in columns[:SHOWN_DIFFERENCES])
    more = f" and {len(columns) - SHOWN_DIFFERENCES} more" if len(columns) > SHOWN_DIFFERENCES else ""
    return OutputConflictError(
        f"{path}: already has a row for model {row['model']} on this set (protocol {row.get('protocol_version')}) "
        f"with other values ({shown}{more}); pass --replace to replace it"
    )


def refuse_conflicts(path: Path, rows: list[dict]) -> None:
    """Before a long run: :class:`OutputConflictError` for the first of ``rows`` (partial rows: the
    key and what is known before measuring) whose key is there with another value in one of its
    columns. A row that may come out identical to the one there passes (it will be a no-op)."""
    existing = {row_key(r): r for r in read_rows(path)}
    for row in rows:
        old = existing.get(row_key(row))
        if old is not None and (columns := differing_columns(old, row, given_only=True)):
            raise _conflict(Path(path), row, old, columns)


def upsert_rows(path: Path, rows: list[dict], replace: bool = False, timeout: float = 60.0) -> list[str]:
    """Write ``rows`` in one atomic update; per row what happened: ``"added"``, ``"unchanged"`` (an
    identical row is there: a no-op) or ``"replaced"``.

    A row whose key is there with other values raises :class:`OutputConflictError` unless
    ``replace`` (which replaces the row there, identical or not); then nothing is written, not
    even the other rows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with locked_dir(path.parent, timeout=timeout):
            board = read_rows(path)
            outcomes = []
            for row in rows:
                hits = [i for i, r in enumerate(board) if row_key(r) == row_key(row)]
                if not replace and hits:
                    differing = [(i, c) for i in hits if (c := differing_columns(board[i], row))]
                    if not differing:
                        outcomes.append("unchanged")
                        continue
                    raise _conflict(path, row, board[differing[0][0]], differing[0][1])
                board = [r for i, r in enumerate(board) if i not in hits] + [row]
                outcomes.append("replaced" if hits else "added")
            if any(o != "unchanged" for o in outcomes):
                atomic_write_text(path, format_rows(board))
            return outcomes
    except TimeoutError as exc:
        raise OutputConflictError(f"{path}: {exc}") from None


def upsert_row(path: Path, row: dict, replace: bool = False, timeout: float = 60.0) -> str:
    """:func:`upsert_rows` of one row: ``"added"``, ``"unchanged"`` or ``"replaced"``."""
    return upsert_rows(path, [row], replace, timeout)[0]


def recognise(path: Path, probe: dict) -> str | None:
    """The name of an existing row for the same model on the same set: the same fingerprint (the
    same file under another path is the same model; another factory, option or weights file is
    not) and the same pre/post-processing, with ``probe``'s set, protocol and band; else ``None``.

    A row written before fingerprints were recorded is matched by its ``model_sha256`` (a bare
    model file's fingerprint is its sha256)."""
    fingerprint = probe.get("model_fingerprint")
    if not fingerprint:
        return None
    same = ("preprocess", "set_sha256", "protocol_version", "boundary_width")
    for r in read_rows(path):
        if (r.get("model_fingerprint") or r.get("model_sha256")) == fingerprint and all(
                _cell(r.get(k, "")) == _cell(probe.get(k, "")) for k in same):
            return r["model"]
    return None
