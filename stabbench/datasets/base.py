"""What every dataset loader returns: cheap references to labelled images.

A loader lists :class:`SourceRef` objects (paths only, nothing decoded), so memory does
not grow with the size of the dataset; :meth:`SourceRef.load` decodes one image and its
label map into a :class:`Sample`, validating both.

Label convention (all datasets): ``uint8`` class ids, ``255`` = ignore (no label).
Binary datasets use ``0`` = background, ``1`` = foreground.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stabbench.conventions import IGNORE_LABEL  # re-exported: the datasets' label convention
from stabbench.errors import DataError
from stabbench.fileio import sha256_file
from stabbench.limits import check_pixels


@dataclass(frozen=True)
class Sample:
    """One decoded labelled image.

    Attributes:
        name: unique id inside the dataset, e.g. ``"blackswan/00000"``.
        image: ``(H, W, 3)`` uint8, RGB.
        label: ``(H, W)`` uint8 class ids, 255 = ignore.
    """

    name: str
    image: np.ndarray
    label: np.ndarray


@dataclass(frozen=True)
class SourceRef:
    """A labelled image not yet decoded.

    ``decode_label`` turns the raw label file into class ids (dataset specific: DAVIS-2016
    maps {0, 255} to {0, 1}, Cityscapes maps labelIds to trainIds, ...).
    """

    name: str
    image_path: Path
    label_path: Path
    decode_label: Callable[[Path], np.ndarray] = field(compare=False, repr=False)
    empty_ok: bool = field(default=False, compare=False, repr=False)

    def load(self) -> Sample:
        """Decode and validate; raises :class:`DataError` naming the file on any problem."""
        image = read_rgb(self.image_path)
        label = self.decode_label(self.label_path)
        if label.shape != image.shape[:2]:
            raise DataError(
                self.label_path,
                f"mask is {label.shape[1]}x{label.shape[0]} but its image "
                f"{self.image_path.name} is {image.shape[1]}x{image.shape[0]} (WxH)",
            )
        if not self.empty_ok and is_empty_label(label):
            raise DataError(self.label_path, "mask is empty (no foreground / labelled pixel)")
        return Sample(self.name, image, label)

    def describe(self, root: Path | None = None) -> dict:
        """Provenance for the manifest: file paths (relative to ``root`` where possible) and
        their sha256."""
        return {
            "name": self.name,
            "image": _relative(self.image_path, root),
            "label": _relative(self.label_path, root),
            "image_sha256": sha256_file(self.image_path),
            "label_sha256": sha256_file(self.label_path),
        }


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def is_empty_label(label: np.ndarray) -> bool:
    """A label map is empty when it has no pixel whose class is neither 0 nor ignore.

    For binary masks that is "no foreground". Multi-class loaders where class 0 is a real
    class (Cityscapes: road) set ``empty_ok`` and check ``all ignore`` themselves.
    """
    return not bool(np.any((label != 0) & (label != IGNORE_LABEL)))


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grayscale is replicated)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as im:
            check_pixels(path, *im.size)  # the header only: nothing decoded yet
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, f"cannot decode image ({exc.__class__.__name__}: {exc})") from None


def read_index_png(path: Path) -> np.ndarray:
    """Read a label PNG as raw ``(H, W)`` uint8 values.

    Palette PNGs give their palette indices (DAVIS-2017 object ids), grayscale PNGs their
    gray values; an RGB label file is an error (labels must be one channel).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "mask file not found")
    try:
        with Image.open(path) as im:
            check_pixels(path, *im.size)  # the header only: nothing decoded yet
            im.load()
            if im.mode in ("P", "L"):
                return np.asarray(im, dtype=np.uint8).copy()
            if im.mode in ("I;16", "I", "I;16B"):
                arr = np.asarray(im)
                if arr.max(initial=0) > 255:
                    raise DataError(path, f"label values up to {arr.max()} do not fit uint8")
                return arr.astype(np.uint8)
            if im.mode == "1":
                return np.asarray(im, dtype=np.uint8).copy()
            raise DataError(path, f"mask must be a one-channel (L or P) PNG, got mode {im.mode}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, f"cannot decode mask ({exc.__class__.__name__}: {exc})") from None


def check_root(root: str | Path | None, dataset: str) -> Path:
    """Return a loader's ``root`` as a Path; DataError if it is missing or not a folder."""
    if root is None:
        raise DataError(None, f"the {dataset} dataset needs a root folder")
    root = Path(root)
    if not root.exists():
        raise DataError(root, f"{dataset} root folder not found")
    if not root.is_dir():
        raise DataError(root, f"{dataset} root is not a folder")
    return root


@dataclass(frozen=True)
class DatasetListing:
    """The result of a loader: the sources, the class names and loader settings."""

    name: str
    sources: list[SourceRef]
    classes: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
