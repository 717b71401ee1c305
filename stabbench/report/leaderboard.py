"""``leaderboard.csv``: one row per model x synthetic set x protocol version.

Appending is safe against concurrent runs: the file is read, changed and written back
under an exclusive lock (``<file>.lock``, via ``filelock``), through a temporary file and
``os.replace``, so a reader never sees a half-written file and no row written by another
run is lost. A row for the same key is replaced only when ``replace=True``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_write_text

COLUMNS = (
    "model",
    "model_format",
    "model_sha256",
    "preprocess",
    "dataset",
    "set_sha256",
    "protocol_version",
    "protocol",
    "seed",
    "sequences",
    "boundary_width",
    "S_global",
    "S_boundary",
    "mIoU_syn",
    "stabbench_version",
    "date",
)

#: A row's identity: the same model file on the same set under the same protocol.
KEY = ("model", "model_sha256", "set_sha256", "protocol_version")

METRICS = ("S_global", "S_boundary", "mIoU_syn")


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in KEY)


def read_rows(path: Path) -> list[dict]:
    """All rows of a leaderboard (``[]`` if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("model", *METRICS) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"not a stabbench leaderboard (missing columns: {', '.join(missing)})")
            return [dict(r) for r in reader]
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
        return f"{value:.4f}"
    return "" if value is None else str(value)


def has_row(path: Path, row: dict) -> bool:
    """Whether a row with ``row``'s key is already there (checked before a long eval)."""
    return any(row_key(r) == row_key(row) for r in read_rows(path))


def upsert_row(path: Path, row: dict, replace: bool = False, timeout: float = 60.0) -> None:
    """Append ``row`` (or replace the row with its key when ``replace``), atomically.

    Raises :class:`OutputConflictError` when the key exists and ``replace`` is False.
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=timeout):
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
