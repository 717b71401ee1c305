"""Unlabeled video for the correspondences: video files and folders of frames, and pairs.

What :func:`list_videos` accepts (each argument a path):

* a **video file** whose suffix is one of :data:`VIDEO_SUFFIXES` (case-insensitive: mp4,
  mov, mkv, avi, webm, ...), decoded by imageio's ffmpeg plugin (``imageio-ffmpeg`` ships
  its own ffmpeg binary);
* a **folder of frames**: a folder that directly holds images with a suffix in
  :data:`FRAME_SUFFIXES` (jpg, jpeg, png); frames are ordered by name in natural order
  (digit runs compare as numbers, so ``f2.png`` < ``f10.png``; zero-padded names sort the
  same either way);
* a **folder of videos**: any other folder is searched recursively (sorted, hidden entries
  skipped); every video file found is one video and every folder that directly holds frames
  is one video (e.g. DAVIS ``JPEGImages/480p`` gives one video per sequence). Other files are
  ignored.

The paths are the user's own (named on the command line), so symbolic links are followed,
to folders and to frames (a dataset symlinked into place is read as it is); a folder reached
again through a link (a loop) is not searched twice. A linked folder's video is named by the
link.

Videos are listed cheaply (nothing is decoded); a video that cannot be decoded or has fewer
than two frames raises :class:`~stabbench.errors.DataError` (naming the file) when it is
first used: :attr:`VideoSource.num_frames`, :func:`sample_pairs`, :meth:`read_frame`.

Random access into video files: frame ``i`` is read by imageio's ffmpeg reader, which
seeks by time (``i / fps``: exact for constant-frame-rate video; variable-frame-rate files
should be converted to frames first). A pair ``(i, i+1)`` is read with one seek and one
sequential read. At most :data:`MAX_OPEN_READERS` decoders (ffmpeg processes) are kept
open per process, least recently used closed first; after a fork (data-loader workers) the
child opens its own.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from stabbench.errors import DataError

#: Suffixes (lower case) read as video files with imageio's ffmpeg plugin.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".ts", ".3gp")
#: Suffixes (lower case) of frame images in a folder of frames.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Decoders kept open per process (each is an ffmpeg subprocess).
MAX_OPEN_READERS = 4
#: Pairs sampled per video in the paper.
DEFAULT_PAIRS_PER_VIDEO = 30


def natural_key(name: str) -> tuple:
    """Sort key: digit runs compare as numbers (``"f2"`` < ``"f10"``); ties by the raw name."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


# --------------------------------------------------------------------------- sources


class VideoSource:
    """One video: a file or a folder of frames. Frames are ``(H, W, 3)`` uint8 RGB."""

    kind = "video"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._num_frames: int | None = None

    def __repr__(self) -> str:
        n = "?" if self._num_frames is None else self._num_frames
        return f"{type(self).__name__}({str(self.path)!r}, frames={n})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.path == other.path

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def num_frames(self) -> int:
        """Number of frames (decodes the container's index once for a video file)."""
        if self._num_frames is None:
            self._num_frames = self._count_frames()
        return self._num_frames

    def read_frame(self, i: int) -> np.ndarray:
        """Frame ``i``: ``(H, W, 3)`` uint8 RGB."""
        self._check_index(i, self.num_frames)
        return self._read(i, 1)[0]

    def read_pair(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``t`` and ``t+1`` (same size, else :class:`DataError`)."""
        self._check_index(t, self.num_frames - 1)
        frame_t, frame_t1 = self._read(t, 2)
        if frame_t.shape != frame_t1.shape:
            raise DataError(self.frame_path(t + 1), f"frame {t + 1} is {_size(frame_t1)}, frame {t} is {_size(frame_t)}")
        return frame_t, frame_t1

    def frame_path(self, i: int) -> Path:
        """The file frame ``i`` comes from (for messages)."""
        return self.path

    def close(self) -> None:
        """Release any open decoder (reopened on demand)."""

    def _check_index(self, i: int, n: int) -> None:
        if not 0 <= i < n:
            raise IndexError(f"{self.path}: index {i} out of range [0, {n - 1}]")

    def _count_frames(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self, start: int, count: int) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError



class FrameFolder(VideoSource):
    """A folder of frame images (jpg/png), in natural name order."""

    kind = "frames"

    def __init__(self, path: str | Path, frames: Sequence[Path] | None = None):
        super().__init__(path)
        self.frames = tuple(frames) if frames is not None else tuple(_frame_files(self.path))
        self._num_frames = len(self.frames)

    def _count_frames(self) -> int:
        return len(self.frames)

    def frame_path(self, i: int) -> Path:
        return self.frames[i]

    def _read(self, start: int, count: int) -> list[np.ndarray]:
        out = []
        for i in range(start, start + count):
            path = self.frames[i]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                problem = "frame file not found" if not path.is_file() else "cannot decode frame image (corrupt or not an image)"
                raise DataError(path, problem)
            out.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return out


class VideoFile(VideoSource):
    """A video file decoded with imageio's ffmpeg plugin."""

    kind = "file"

    def _count_frames(self) -> int:
        if not self.path.is_file():
            raise DataError(self.path, "video file not found")
        with _READERS.lock:
            reader = _READERS.get(self.path)
            try:
                n = reader.count_frames()
            except Exception as exc:  # noqa: BLE001 -- ffmpeg failures come in many types
                _READERS.discard(self.path)
                raise DataError(self.path, f"cannot count the frames of the video ({_first_line(exc)})") from None
        return int(n)

    def _read(self, start: int, count: int) -> list[np.ndarray]:
        out = []
        with _READERS.lock:
            reader = _READERS.get(self.path)
            for i in range(start, start + count):
                try:
                    frame = reader.get_data(i)
                except Exception as exc:  # noqa: BLE001
                    _READERS.discard(self.path)
                    raise DataError(
                        self.path, f"cannot decode frame {i} (the video reports {self.num_frames} frames; {_first_line(exc)})"
                    ) from None
                out.append(_to_rgb(np.array(frame), self.path, i))
        return out

    def close(self) -> None:
        with _READERS.lock:
            _READERS.discard(self.path)


def _to_rgb(frame: np.ndarray, path: Path, i: int) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise DataError(path, f"frame {i} decodes as {frame.dtype}, expected 8-bit")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(frame[..., :3])
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame)
    raise DataError(path, f"frame {i} has an unexpected shape {frame.shape}")


def _size(frame: np.ndarray) -> str:
    return f"{frame.shape[1]}x{frame.shape[0]}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _ReaderPool:
    """Open imageio ffmpeg readers of this process, least recently used first."""

    def __init__(self, size: int):
        self.size = size
        self.lock = threading.RLock()
        self._pid = os.getpid()
        self._readers: OrderedDict[Path, object] = OrderedDict()

    def _after_fork(self) -> None:
        if self._pid != os.getpid():  # the parent's decoders are not ours to close
            self._readers = OrderedDict()
            self._pid = os.getpid()

    def get(self, path: Path):
        self._after_fork()
        reader = self._readers.get(path)
        if reader is not None:
            self._readers.move_to_end(path)
            return reader
        reader = _open_reader(path)
        self._readers[path] = reader
        while len(self._readers) > self.size:
            _, old = self._readers.popitem(last=False)
            _close_quietly(old)
        return reader

    def discard(self, path: Path) -> None:
        self._after_fork()
        reader = self._readers.pop(path, None)
        if reader is not None:
            _close_quietly(reader)

    def close_all(self) -> None:
        self._after_fork()
        while self._readers:
            _close_quietly(self._readers.popitem()[1])


_READERS = _ReaderPool(MAX_OPEN_READERS)


def close_all_readers() -> None:
    """Close every decoder this process holds open."""
    with _READERS.lock:
        _READERS.close_all()


def _open_reader(path: Path):
    try:
        import imageio.v3 as iio
    except ImportError as exc:  # pragma: no cover - imageio is a dependency
        raise DataError(path, f"cannot read video files: {exc}") from None
    try:
        return iio.imopen(path, "r", plugin="FFMPEG").legacy_get_reader()
    except FileNotFoundError:
        raise DataError(path, "video file not found") from None
    except Exception as exc:  # noqa: BLE001 -- OSError "Could not load meta information", ImportError, ...
        raise DataError(path, f"unreadable video ({_first_line(exc)})") from None


def _close_quietly(reader) -> None:
    try:
        reader.close()
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------- listing


def _frame_files(folder: Path) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DataError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    files = [
        Path(e.path) for e in entries
        if not e.name.startswith(".") and Path(e.name).suffix.lower() in FRAME_SUFFIXES and e.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _walk(folder: Path, seen: set[str] | None = None) -> list[VideoSource]:
    """The videos under ``folder``, symbolic links followed; ``seen``: the real paths of the folders
    already searched (a link back to one of them is skipped, so a loop ends)."""
    seen = set() if seen is None else seen
    real = os.path.realpath(folder)
    if real in seen:
        return []
    seen.add(real)
    found: list[VideoSource] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: natural_key(e.name))
    except OSError as exc:
        raise DataError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    entries = [e for e in entries if not e.name.startswith(".")]
    frames = [Path(e.path) for e in entries if e.is_file() and Path(e.name).suffix.lower() in FRAME_SUFFIXES]
    if frames:
        found.append(FrameFolder(folder, frames))
    for e in entries:
        if e.is_file() and Path(e.name).suffix.lower() in VIDEO_SUFFIXES:
            found.append(VideoFile(e.path))
        elif e.is_dir():
            found.extend(_walk(Path(e.path), seen))
    return found


def list_videos(paths: str | Path | Iterable[str | Path]) -> list[VideoSource]:
    """The videos under ``paths`` (see the module docstring for what is accepted).

    Raises :class:`DataError` for a missing path, a file that is not a video, and a folder
    with neither videos nor frames in it. Duplicates (the same file or folder reached twice)
    are listed once, at their first place.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[VideoSource] = []
    seen: set[tuple[str, Path]] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _walk(path)
            if not found:
                raise DataError(
                    path,
                    f"no video files ({', '.join(VIDEO_SUFFIXES)}) and no folders of frames "
                    f"({', '.join(FRAME_SUFFIXES)}) found",
                )
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                found = [VideoFile(path)]
            elif suffix in FRAME_SUFFIXES:
                raise DataError(path, "a single image is not a video (pass the folder of frames)")
            else:
                raise DataError(path, f"not a video file (supported suffixes: {', '.join(VIDEO_SUFFIXES)})")
        else:
            raise DataError(path, "no such file or folder")
        for video in found:
            ident = (video.kind, video.path.resolve())
            if ident not in seen:
                seen.add(ident)
                out.append(video)
    return out


# --------------------------------------------------------------------------- pairs


def sample_pairs(video: VideoSource | int, n_pairs: int = DEFAULT_PAIRS_PER_VIDEO) -> list[tuple[int, int]]:
    """``n_pairs`` consecutive-frame pairs ``(t, t+1)`` at equal intervals over the video.

    The first frames ``t`` are ``round(k * (M - 1) / (n_pairs - 1))`` for ``k = 0 .. n_pairs-1``
    over the ``M = num_frames - 1`` pairs (first and last pair included; one pair: the first);
    a video with ``M <= n_pairs`` gives all its pairs. Deterministic, sorted, unique.

    ``video`` is a :class:`VideoSource` or a frame count. Fewer than 2 frames (no pairs)
    raises :class:`DataError` naming the video.
    """
    if isinstance(n_pairs, bool) or int(n_pairs) != n_pairs or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    n_pairs = int(n_pairs)
    num_frames = video if isinstance(video, (int, np.integer)) else video.num_frames
    available = int(num_frames) - 1
    if available < 1:
        where = None if isinstance(video, (int, np.integer)) else video.path
        raise DataError(where, f"{num_frames} frame(s): no pairs (a video needs at least 2 frames)")
    if available <= n_pairs:
        starts = list(range(available))
    elif n_pairs == 1:
        starts = [0]
    else:
        step = (available - 1) / (n_pairs - 1)  # >= 1, so floor(k * step + 0.5) is strictly increasing
        starts = [int(np.floor(k * step + 0.5)) for k in range(n_pairs)]
    return [(t, t + 1) for t in starts]


@dataclass(frozen=True)
class PairRef:
    """Frames ``(t, t+1)`` of a video, loaded on demand (picklable: data-loader friendly)."""

    video: VideoSource
    t: int

    @property
    def indices(self) -> tuple[int, int]:
        return self.t, self.t + 1

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_t, frame_t1)``, ``(H, W, 3)`` uint8 RGB each."""
        return self.video.read_pair(self.t)

    def __str__(self) -> str:
        return f"{self.video.path}[{self.t}:{self.t + 2}]"


def sample_pair_refs(videos: Iterable[VideoSource], n_pairs: int = DEFAULT_PAIRS_PER_VIDEO) -> list[PairRef]:
    """:func:`sample_pairs` of every video, as :class:`PairRef` (video order, then time)."""
    return [PairRef(video, t) for video in videos for t, _ in sample_pairs(video, n_pairs)]
