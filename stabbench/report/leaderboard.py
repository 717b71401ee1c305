"""``leaderboard.csv``: one row per model name x synthetic set x protocol version x band width.

A row's ``model`` is its name (``stabbench eval --name``, default the model id), ``model_id``
what was loaded, ``set`` and ``set_sha256`` the set it was measured on. Metrics are stored at
full precision (``repr`` of the float: reading them back gives the same number).

Appending is safe against concurrent runs: the file is read, changed and written back while
holding an exclusive ``flock`` on the leaderboard's folder (no lock file is created, so none
is left behind), through a temporary file, ``fsync`` and ``os.replace``, so a reader never
sees a half-written file and no row written by another run is lost. A row for the same key is
replaced only when ``replace=True``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_write_text, locked_dir

COLUMNS = (
    "model",
    "model_id",
    "model_format",
    "model_sha256",
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
            return [{k: ("" if v is None else v) for k, v in r.items() if k is not None} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read leaderboard ({exc})") from None


def format_rows(rows: list[dict]) -> str:
    buf = io.StringIO()
    columns = list(COLUMNS) + sorted({k for r in rows for k in r} - set(COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in columns})
    return buf.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value)  # full precision: a gate against this row compares the numbers measured
    return "" if value is None else str(value)


def has_row(path: Path, row: dict) -> bool:
    """Whether a row with ``row``'s key is already there (checked before a long eval)."""
    return any(row_key(r) == row_key(row) for r in read_rows(path))


def upsert_row(path: Path, row: dict, replace: bool = False, timeout: float = 60.0) -> None:
    """Append ``row`` (or replace the row with its key when ``replace``), atomically.

    Raises :class:`OutputConflictError` when the key exists and ``replace`` is False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with locked_dir(path.parent, timeout=timeout):
            rows = read_rows(path)
            key = row_key(row)
            hits = [i for i, r in enumerate(rows) if row_key(r) == key]
            if hits and not replace:
                raise OutputConflictError(
                    f"{path}: already has a row for model {row['model']} on this set "
                    f"(protocol {row.get('protocol_version')}); pass --replace to replace it"
                )
            rows = [r for i, r in enumerate(rows) if i not in hits] + [row]
            atomic_write_text(path, format_rows(rows))
    except TimeoutError as exc:
        raise OutputConflictError(f"{path}: {exc}") from None


def recognise(path: Path, model_sha256: str, set_sha256: str, protocol_version: str, boundary_width) -> str | None:
    """The name of an existing row for the same model bytes on the same set (another path to the
    same file is the same model), else ``None``."""
    if not model_sha256:
        return None
    for r in read_rows(path):
        if (r.get("model_sha256"), r.get("set_sha256"), r.get("protocol_version"), r.get("boundary_width")) == (
            model_sha256, set_sha256, str(protocol_version), str(boundary_width)
        ):
            return r["model"]
    return None
