"""What ``stabbench report`` reads: eval results, real-video results, leaderboards, visuals.

Every file comes from strangers: JSON is only parsed, an image is embedded only when it lies
inside its visuals folder (after resolving links), is a regular file, starts with the GIF or
PNG signature its field promises, and fits in the embedding budget. Each input's sha256 is
kept so that the page records what it was built from.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from stabbench.errors import DataError
from stabbench.fileio import sha256_bytes
from stabbench.report.results import REAL_VIDEO, check_results

VISUALS_FOLDER = "visuals"
VISUALS_FILE = "visuals.json"
VISUALS_KIND = "stabbench-visuals"
VISUALS_FORMAT_VERSION = 1
#: The embedded images' signatures, per field of a visuals item.
SIGNATURES = {"gif": (b"GIF87a", b"GIF89a"), "png": (b"\x89PNG\r\n\x1a\n",)}
IMAGE_FIELDS = {"clip_gif": "gif", "heatmap": "png"}


@dataclass(frozen=True)
class Source:
    """One file the page was built from: as named on the command line, its kind and sha256."""

    label: str
    kind: str
    sha256: str


@dataclass
class Budget:
    """Bytes of images that may still be embedded (``stabbench report --max-embed-mb``)."""

    limit: int
    used: int = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True


@dataclass
class VisualItem:
    """One visuals item; image fields hold ``data:`` URIs (``None`` when absent or left out)."""

    sequence: str
    perturbation: str
    severity: int
    S_global: float | None
    S_boundary: float | None
    clip_gif: str | None
    heatmap: str | None
    compare_model: str | None = None
    compare_gif: str | None = None
    note: str = ""
    model: str | None = None  # a real-video item's model (``sequence`` is then its video)


@dataclass
class ResultInput:
    """One result given to the report (an eval result or a ``stabbench video`` result) and its visuals."""

    label: str
    results: dict
    visuals: list[VisualItem] = field(default_factory=list)
    visuals_note: str = ""


#: The two kinds of result, named for the functions that render each.
EvalInput = VideoInput = ResultInput


@dataclass
class ReportInputs:
    evals: list[EvalInput] = field(default_factory=list)
    videos: list[VideoInput] = field(default_factory=list)
    leaderboard_rows: list[tuple[str, dict]] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_inputs(results: list[str], leaderboards: list[str], max_embed_bytes: int) -> ReportInputs:
    """Read every input (in the order given); :class:`DataError` (exit 3) on a bad one."""
    from stabbench.report.leaderboard import read_rows

    out, budget = ReportInputs(), Budget(int(max_embed_bytes))
    for label in results:
        _read_result(label, out, budget)
    for label in leaderboards:
        path = Path(label)
        if not path.is_file():
            raise DataError(path, "leaderboard not found (or not a regular file)")
        out.sources.append(Source(label, "leaderboard", sha256_bytes(path.read_bytes())))
        out.leaderboard_rows += [(label, row) for row in read_rows(path)]
    return out


def _read_result(label: str, out: ReportInputs, budget: Budget) -> None:
    path = Path(label)
    folder = path if path.is_dir() else path.parent
    file = path / "results.json" if path.is_dir() else path
    data, digest = _read_json(file)
    if isinstance(data, dict) and data.get("kind") == REAL_VIDEO:
        out.sources.append(Source(label, "real-video results", digest))
        video = VideoInput(label, data)
        _attach_visuals(video, folder, budget, out, "stabbench video --visuals")
        out.videos.append(video)
        return
    out.sources.append(Source(label, "eval results", digest))
    entry = EvalInput(label, check_results(file, data))
    _attach_visuals(entry, folder, budget, out, "stabbench show")
    out.evals.append(entry)


def _attach_visuals(entry: ResultInput, folder: Path, budget: Budget, out: ReportInputs, writer: str) -> None:
    """The items of ``folder/visuals/visuals.json`` into ``entry.visuals``, else a note naming ``writer``."""
    visuals = folder / VISUALS_FOLDER / VISUALS_FILE
    if visuals.is_file():
        entry.visuals = read_visuals(visuals, budget, out)
    else:
        entry.visuals_note = f"no {VISUALS_FOLDER}/{VISUALS_FILE} beside this result ({writer} writes one)"


def _read_json(path: Path) -> tuple[object, str]:
    """The parsed JSON of ``path`` and the sha256 of its bytes."""
    try:
        raw = path.read_bytes()
        return json.loads(raw), sha256_bytes(raw)
    except FileNotFoundError:
        raise DataError(path, "results file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder without results.json") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read JSON ({exc})") from None


# ----------------------------------------------------------------------------- visuals


def read_visuals(path: Path, budget: Budget, out: ReportInputs) -> list[VisualItem]:
    """The items of a ``visuals.json`` with their GIF and PNG files as data URIs.

    Shape: ``{"format_version": 1, "kind": "stabbench-visuals", "model", "set", "items":
    [{"sequence", "perturbation", "severity", "S_global", "S_boundary", "clip_gif", "clip_mp4",
    "heatmap", "compare": null | {"model_b", "clip_gif", "clip_mp4"}}]}``, paths relative to
    the visuals folder (MP4 files are not embedded); a real-video item (``stabbench video
    --visuals``) has ``"kind": "real-video"``, ``video`` and ``model`` instead of ``sequence``,
    ``perturbation`` and ``severity``, and no heatmap. An item whose images do not fit in the
    budget keeps its numbers and loses its images, with a note (and one in ``out.notes``).
    """
    data, digest = _read_json(path)
    out.sources.append(Source(str(path), "visuals", digest))
    if not isinstance(data, dict) or data.get("kind") != VISUALS_KIND:
        raise DataError(path, f"not a stabbench visuals file (kind must be {VISUALS_KIND!r})")
    if data.get("format_version") != VISUALS_FORMAT_VERSION:
        raise DataError(path, f"visuals format_version {data.get('format_version')!r} is not supported "
                              f"(expected {VISUALS_FORMAT_VERSION})")
    items = data.get("items")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise DataError(path, "malformed visuals file: items must be a list of objects")
    return [_visual_item(path, i, item, budget, out) for i, item in enumerate(items)]


def _visual_item(path: Path, index: int, item: dict, budget: Budget, out: ReportInputs) -> VisualItem:
    where = f"item {index}"
    compare = item.get("compare")
    if compare is not None and not isinstance(compare, dict):
        raise DataError(path, f"{where}: compare must be null or an object")
    files = {name: (item.get(name), kind) for name, kind in IMAGE_FIELDS.items()}
    if compare:
        files["compare"] = (compare.get("clip_gif"), "gif")
    found = {name: _image_file(path, f"{where} {name}", rel, kind) for name, (rel, kind) in files.items()}
    size = sum(file.stat().st_size for file, _ in found.values() if file is not None)
    note = ""
    if not budget.take(size):
        note = (f"images left out: embedding them ({size / 2**20:.1f} MiB) would pass the cap of "
                f"{budget.limit / 2**20:.1f} MiB (--max-embed-mb)")
        out.notes.append(f"{path}: {where} ({item.get('sequence')}): {note}")
        found = {name: (None, kind) for name, (_, kind) in found.items()}
    uris = {name: _data_uri(None if file is None else file.read_bytes(), kind) for name, (file, kind) in found.items()}
    real_video = item.get("kind") == REAL_VIDEO
    try:
        return VisualItem(
            sequence=str(item["video" if real_video else "sequence"]), perturbation=str(item.get("perturbation", "")),
            severity=int(item.get("severity") or 0), S_global=_number(item.get("S_global")),
            S_boundary=_number(item.get("S_boundary")), clip_gif=uris["clip_gif"], heatmap=uris["heatmap"],
            compare_model=str(compare.get("model_b", "")) if compare else None, compare_gif=uris.get("compare"),
            note=note, model=str(item["model"]) if real_video else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"{where}: malformed ({type(exc).__name__}: {exc})") from None


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _image_file(path: Path, where: str, rel, kind: str) -> tuple[Path | None, str]:
    """``rel`` (relative to ``path``'s folder) resolved and its signature checked (its first
    bytes only: the whole file is read only if it is embedded); ``(None, kind)`` when absent."""
    if rel is None:
        return None, kind
    file = inside_folder(path, where, rel)
    with open(file, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(SIGNATURES[kind]):
        raise DataError(path, f"{where}: {rel} is not a {kind.upper()} file")
    return file, kind


def inside_folder(path: Path, where: str, rel) -> Path:
    """``rel`` resolved inside the folder of ``path``; DataError when it is not a relative path,
    is missing, is not a regular file, or leaves the folder (``..``, an absolute path, a link)."""
    folder = path.parent.resolve()
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise DataError(path, f"{where}: not a file name ({rel!r})")
    if PurePosixPath(rel).is_absolute() or Path(rel).is_absolute():
        raise DataError(path, f"{where}: {rel} is an absolute path; paths are relative to the visuals folder")
    try:
        file = (folder / rel).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(path, f"{where}: {rel} not found in the visuals folder") from None
    except (OSError, RuntimeError) as exc:  # a link loop
        raise DataError(path, f"{where}: {rel} cannot be opened ({exc})") from None
    if not file.is_relative_to(folder):
        raise DataError(path, f"{where}: {rel} leaves the visuals folder; refused")
    if not stat.S_ISREG(os.stat(file).st_mode):
        raise DataError(path, f"{where}: {rel} is not a regular file")
    return file


def _data_uri(data: bytes | None, kind: str) -> str | None:
    return None if data is None else f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")
