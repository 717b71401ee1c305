"""File helpers used by every writer: checksums, atomic writes, version stamps.

Atomic writes go through a temporary file in the destination folder (named
``.<name>.<pid>.tmp``), flushed and ``fsync``-ed, then ``os.replace``-d over the
destination: a reader sees the old file or the new one, never half of one, and a failed
write removes its temporary file; one left by a killed process is cleared by the writer of
that output when it next runs (a set's writer, the eval output writer).

Every CSV cell stabbench writes goes through :func:`csv_cell` (formula injection: a model
name ``=HYPERLINK(...)`` is not run by a spreadsheet), and every cell it reads back through
:func:`csv_value`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What :func:`csv_cell` puts before a cell a spreadsheet would run (and :func:`csv_value` removes).
CELL_ESCAPE = "'"
#: A number as Python writes one (``repr`` of a float, an int, ``f"{x:.4f}"``): never escaped.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def csv_cell(value: Any) -> str:
    """The text of a CSV cell, neutralised against formula injection (OWASP's rule).

    A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return and is not a
    number is written with a single quote ``'`` before it, so a spreadsheet shows it as text
    instead of running it (``--name "=cmd|' /C calc'!A0"``, a model file ``=HYPERLINK(1).pt2``).
    Numbers are left as they are (``-0.5``, ``-1e-05``, ``+3``, ``-inf`` stay numbers). A cell that
    itself starts with ``'`` gets one more, so :func:`csv_value` (which removes exactly one leading
    ``'``) gives back every original cell. ``None`` is the empty cell; other values their ``str``.

    >>> [csv_cell(v) for v in ("=1+1", "-2+3", "@SUM(A1)", "-0.5", -0.5, "'quoted", "model", None)]
    ["'=1+1", "'-2+3", "'@SUM(A1)", '-0.5', '-0.5', "''quoted", 'model', '']
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if text.startswith(CELL_ESCAPE) or (text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text)):
        return CELL_ESCAPE + text
    return text


def csv_value(cell: str) -> str:
    """The original text of a cell written by :func:`csv_cell` (one leading ``'`` removed).

    >>> [csv_value(c) for c in ("'=1+1", "''quoted", "-0.5", "model")]
    ['=1+1', "'quoted", '-0.5', 'model']
    """
    return cell[len(CELL_ESCAPE):] if cell.startswith(CELL_ESCAPE) else cell


def temporary_name(path: Path) -> Path:
    """``dir/.name.<pid>.tmp``: where :func:`atomic_write` builds ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Any], None], *, durable: bool = True) -> None:
    """Publish ``path`` atomically: ``write(handle)`` fills a temporary file (binary), which
    is flushed, fsync-ed (unless ``durable=False``, for the many files that a later durable
    publication covers) and renamed over ``path``. On any error the temporary file is
    removed and the error re-raised; ``path`` is untouched."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    atomic_write(path, lambda h: h.write(data), durable=durable)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda h: h.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any, **dump_options: Any) -> None:
    """Sorted, indented JSON (one trailing newline), atomically."""
    options = {"indent": 1, "sort_keys": True, **dump_options}
    atomic_write_text(path, json.dumps(data, **options) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)``, atomically."""
    import torch

    atomic_write(path, lambda h: torch.save(obj, h))


@contextmanager
def locked_dir(folder: str | Path, *, wait: bool = True, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself (no lock file is created, so none is
    ever left behind; the kernel releases it when the process dies). ``wait=False``: raise
    ``BlockingIOError`` at once when another process holds it; else wait up to ``timeout``
    seconds, then raise ``TimeoutError``."""
    import fcntl
    import time

    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{folder}: locked by another process for more than {timeout:.0f} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def pid_alive(pid: int | str) -> bool:
    """Whether process ``pid`` exists (``False`` for text that is not a pid): tells a dead run's
    temporaries from a live one's."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def publish_dir(out: Path, fill: Callable[[Path], None], *, check: Callable[[], None]) -> None:
    """Publish the folder ``out`` atomically: ``fill(tmp)`` builds it in ``.OUT.tmp-PID`` beside
    it, which is then renamed into place (an existing ``out`` swapped out and removed), all
    while holding a lock on the parent folder. ``check()`` runs first under the lock and raises
    to refuse (an existing output without ``--overwrite``). On any failure the temporary folder
    is removed and ``out`` is untouched; stale temporaries of dead runs are removed too."""
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    with locked_dir(out.parent):
        check()
        for stale in out.parent.glob(f".{out.name}.tmp-*"):
            if stale.is_dir() and not pid_alive(stale.name.rsplit("-", 1)[-1]):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            fill(tmp)
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(out.parent)


def package_version(*dists: str) -> str | None:
    """The installed version of the first distribution of ``dists`` found, else ``None``."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def versions(*, torch: bool = False) -> dict[str, Any]:
    """Version stamp of an output: stabbench, Python, NumPy, OpenCV (and torch on request)."""
    import cv2
    import numpy as np

    from stabbench import __version__

    stamp: dict[str, Any] = {"stabbench": __version__, "python": platform.python_version(),
                             "numpy": np.__version__, "opencv": cv2.__version__}
    if torch:
        import torch as _torch

        stamp["torch"] = _torch.__version__
        stamp["torch_threads"] = _torch.get_num_threads()
    return stamp


__all__ = [
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "csv_cell",
    "csv_value",
    "fsync_dir",
    "locked_dir",
    "package_version",
    "pid_alive",
    "publish_dir",
    "sha256_bytes",
    "sha256_file",
    "temporary_name",
    "versions",
]
