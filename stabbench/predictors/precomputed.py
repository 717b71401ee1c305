"""Precomputed predictions: masks produced elsewhere, one PNG per frame (``--model predictions:DIR``).

Layout (the DAVIS results layout)::

    DIR/<sequence id>/<frame name>.png

For a synthetic set the sequence id is the set's ``seq.id`` and the frame name is
:func:`mask_name` of the frame index (``00000`` .. ``00010``); for a real video (``stabbench
video``) the frame name is the stem of the frame file (DAVIS: ``00000``), or
:func:`mask_name` of the index for a video file. A PNG is 8-bit gray (values are class ids)
or palette (the values are the palette indices, e.g. DAVIS-2017 object ids); nothing else is
accepted.

``map``: ``keep`` (default) uses the values as labels; ``foreground`` maps any non-zero value
to 1 (DAVIS-2017 object ids, or DAVIS-2016's 0/255 masks, against a binary set).

Checks, each a :class:`~stabbench.errors.DataError` (exit 3) naming the file: the sequence
folder or a frame's mask is missing; the folder holds a ``.png`` that is no frame of the
sequence (extra); a mask cannot be decoded, is not 8-bit gray or palette, or is not the size
of the frames. Loading reads PNG files only (never code, decompression bombs refused) and only
inside ``DIR``: a sequence id that would leave it (``..``, a path separator) is refused, and
so is a mask that is a link to a file outside its sequence folder (a sequence folder may itself
be a link, e.g. to a dataset's sequence). The annotations of ``stabbench video
--annotations`` (``confined=False``: the user's own dataset, which may be symlinked file by
file) follow every link.

Identity: ``model_sha256`` is :func:`predictions_digest`, a sha256 over every mask file of
``DIR`` (relative path and content); the fingerprint adds the ``map``, so the same predictions
are recognised on the leaderboard whatever the folder is called.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from stabbench.errors import DataError, UsageError

MASK_SUFFIX = ".png"
MAPS = ("keep", "foreground")


def mask_name(k: int) -> str:
    """The frame name of frame ``k`` of a synthetic sequence or a video file: ``f"{k:05d}"``."""
    return f"{int(k):05d}"


def mask_path(root: str | Path, seq_id: str, frame_name: str) -> Path:
    """``root/<seq_id>/<frame_name>.png`` (the layout of the module docstring)."""
    return Path(root) / seq_id / f"{frame_name}{MASK_SUFFIX}"


def _mask_files(root: Path) -> list[Path]:
    """Every ``*.png`` one level below ``root`` (in a sequence folder), sorted."""
    files = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files += sorted(p for p in folder.iterdir() if p.suffix.lower() == MASK_SUFFIX and not p.name.startswith("."))
    return files


def predictions_digest(root: str | Path) -> str:
    """sha256 over every mask file of ``root``: each file's relative path, then its sha256."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "folder of masks not found")
    digest = hashlib.sha256(b"stabbench-predictions/1\n")
    for path in _mask_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_mask(path: Path, folder: Path | None = None) -> np.ndarray:
    """One mask PNG as ``(H, W)`` uint8 values (gray) or palette indices; DataError otherwise.

    ``folder``: the mask must resolve to a file inside it (a link out of it is refused)."""
    from PIL import Image, UnidentifiedImageError

    if folder is not None and not _inside(path, folder):
        raise DataError(path, f"mask is a link to a file outside its folder {folder}; refused")
    if not path.is_file():
        raise DataError(path, "mask file not found")
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise DataError(path, f"not a PNG file (found {image.format})")
            if image.mode not in ("L", "P"):
                raise DataError(path, f"mask must be 8-bit gray (L) or palette (P) PNG, found mode {image.mode}")
            return np.array(image, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode mask PNG ({type(exc).__name__}: {exc})") from None


def _inside(path: Path, root: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def apply_map(values: np.ndarray, mapping: str) -> np.ndarray:
    """``keep``: the values; ``foreground``: 1 where non-zero, else 0 (uint8)."""
    return values if mapping == "keep" else (values != 0).astype(np.uint8)


class PrecomputedPredictor:
    """Serves the masks of ``root`` for the sequence announced by ``begin_sequence``.

    ``begin_sequence(sequence)``: ``sequence.id`` and ``sequence.num_frames`` (a synthetic
    sequence) and, optionally, ``sequence.frame_names`` (a real video: the frame files' stems;
    default :func:`mask_name` of each index). ``predict(frames)`` returns the masks of the
    next ``B`` frames, ``(B, H, W)`` uint8, checked against the frames' size. ``confined``:
    refuse a mask that links out of its sequence folder (masks from elsewhere); ``False`` for
    the user's own annotations.
    """

    max_batch = None

    def __init__(self, root: str | Path, mapping: str = "keep", what: str = "predictions", confined: bool = True):
        self.root = Path(root)
        self.what = what  # named in errors: "predictions", "annotations"
        self.confined = confined  # masks linking out of their sequence folder are refused
        if mapping not in MAPS:
            raise UsageError(f"predictions:{root}: map={mapping!r}; choose one of {', '.join(MAPS)}")
        if not self.root.is_dir():
            raise DataError(self.root, f"{what} folder not found")
        self.mapping = mapping
        self._paths: list[Path] | None = None
        self._t = 0

    def reset(self) -> None:
        self._t = 0

    def begin_sequence(self, sequence: Any) -> None:
        seq_id = str(sequence.id)
        if seq_id in ("", ".", "..") or "/" in seq_id or os.sep in seq_id:
            raise DataError(self.root, f"sequence id {seq_id!r} is not a folder name; refused")
        names = getattr(sequence, "frame_names", None) or [mask_name(k) for k in range(int(sequence.num_frames))]
        folder = self.root / seq_id
        if not folder.is_dir():
            raise DataError(folder, f"no {self.what} for sequence {seq_id} (folder not found; expected "
                                    f"{self.root}/<sequence>/<frame>.png)")
        expected = {f"{name}{MASK_SUFFIX}" for name in names}
        extra = sorted(p for p in folder.iterdir() if p.suffix.lower() == MASK_SUFFIX and p.name not in expected)
        if extra:
            raise DataError(extra[0], f"extra mask: sequence {seq_id} has no frame {extra[0].stem!r} "
                                      f"({len(extra)} extra file(s); expected {names[0]}..{names[-1]})")
        self._paths = [mask_path(self.root, seq_id, name) for name in names]
        self._t = 0

    def predict(self, frames: np.ndarray) -> np.ndarray:
        if self._paths is None:
            raise DataError(self.root, "precomputed predictions need the sequence: the runner must call "
                                       "begin_sequence(sequence)")
        t0, height, width = self._t, frames.shape[1], frames.shape[2]
        if t0 + len(frames) > len(self._paths):
            raise DataError(self.root, f"frame {t0 + len(frames) - 1} requested, the sequence has {len(self._paths)}")
        out = np.empty((len(frames), height, width), np.uint8)
        for i, path in enumerate(self._paths[t0 : t0 + len(frames)]):
            mask = read_mask(path, path.parent if self.confined else None)
            if mask.shape != (height, width):
                raise DataError(path, f"mask is {mask.shape[1]}x{mask.shape[0]}, the frames are {width}x{height}")
            out[i] = apply_map(mask, self.mapping)
        self._t += len(frames)
        return out


__all__ = ["MAPS", "PrecomputedPredictor", "apply_map", "mask_name", "mask_path", "predictions_digest", "read_mask"]
