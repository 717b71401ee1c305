"""Generic loader: ``root/images/<stem>.<ext>`` paired with ``root/masks/<stem>.png``.

Images may be .jpg .jpeg .png .bmp .webp (any case); masks are one-channel PNGs. Pairs
are matched by file stem in the two folders (not recursive). Every image needs a mask and
every mask an image: a stray file is an error, since a user who brings data wants to know.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stabbench.datasets.base import IGNORE_LABEL, DatasetListing, SourceRef, check_root, read_index_png
from stabbench.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MASK_SUFFIXES = (".png",)
MASK_MODES = ("binary", "labels")


def list_folder(
    root: str | Path | None,
    *,
    images: str = "images",
    masks: str = "masks",
    mask_mode: str = "binary",
) -> DatasetListing:
    """List image/mask pairs of a folder.

    Args:
        root: the dataset folder.
        images, masks: sub-folders of ``root`` holding the images and the masks.
        mask_mode: ``"binary"``: 0/255 masks -> {0, 1}; otherwise every value in 1..254
            -> 1 and 255 = ignore; classes background/foreground; ``"labels"``: values are class ids (255 = ignore), classes
            ``class_0..class_M`` with M the largest id over all masks, so this mode reads
            every mask once here. Class 0 is a real class there: a mask is only rejected
            when it is all ignore.

    Returns:
        a listing with sources named by file stem, sorted.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask_mode {mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
    root = check_root(root, "folder")
    image_dir, mask_dir = root / images, root / masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(
                folder,
                f"folder not found; expected layout {images}/<stem>.jpg|.png|... "
                f"+ {masks}/<stem>.png",
            )
    image_files = files_by_stem(image_dir, IMAGE_SUFFIXES)
    mask_files = files_by_stem(mask_dir, MASK_SUFFIXES)
    if not image_files:
        raise DataError(image_dir, f"no images ({' '.join(IMAGE_SUFFIXES)}) found")
    check_pairs(image_files, mask_files, image_dir, mask_dir)

    if mask_mode == "binary":
        decode, empty_ok = decode_binary_mask, False
        classes: tuple[str, ...] = ("background", "foreground")
    else:
        decode, empty_ok = decode_label_mask, True
        max_id = max(max_class_id(path) for path in mask_files.values())
        classes = tuple(f"class_{i}" for i in range(max_id + 1))
    sources = [
        SourceRef(stem, image_files[stem], mask_files[stem], decode, empty_ok=empty_ok)
        for stem in sorted(image_files)
    ]
    options = {"images": images, "masks": masks, "mask_mode": mask_mode}
    return DatasetListing("folder", sources, classes, options)


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes`` (any case).

    Two files with the same stem (``a.jpg`` and ``a.png``) are a DataError.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise DataError(
                path,
                f"two files with the same stem {path.stem!r}: {found[path.stem].name}, {path.name}",
            )
        found[path.stem] = path
    return found


def check_pairs(
    image_files: dict[str, Path], mask_files: dict[str, Path], image_dir: Path, mask_dir: Path
) -> None:
    """DataError naming the first image without a mask, or the first mask without an image."""
    lonely_images = sorted(set(image_files) - set(mask_files))
    if lonely_images:
        stem = lonely_images[0]
        more = (
            f" ({len(lonely_images) - 1} more images lack a mask)" if len(lonely_images) > 1 else ""
        )
        raise DataError(
            image_files[stem],
            f"no mask for this image; expected {mask_dir / (stem + '.png')}{more}",
        )
    lonely_masks = sorted(set(mask_files) - set(image_files))
    if lonely_masks:
        stem = lonely_masks[0]
        more = (
            f" ({len(lonely_masks) - 1} more masks lack an image)" if len(lonely_masks) > 1 else ""
        )
        raise DataError(mask_files[stem], f"no image with stem {stem!r} in {image_dir}{more}")


def decode_binary_mask(path: Path) -> np.ndarray:
    """``(H, W)`` uint8 {0, 1, 255}.

    A mask whose values are all in {0, 255} is a 0/255 foreground mask (the common way
    person masks are stored, and DAVIS-2016's): 255 -> 1. Otherwise values 1..254 -> 1 and
    255 is kept as ignore.
    """
    raw = read_index_png(path)
    if not np.any((raw > 0) & (raw < IGNORE_LABEL)):
        return (raw == IGNORE_LABEL).astype(np.uint8)
    mask = (raw > 0).astype(np.uint8)
    mask[raw == IGNORE_LABEL] = IGNORE_LABEL
    return mask


def decode_label_mask(path: Path) -> np.ndarray:
    """``(H, W)`` uint8 class ids as stored; a mask that is all ignore (255) is a DataError."""
    label = read_index_png(path)
    if np.all(label == IGNORE_LABEL):
        raise DataError(path, "no labelled pixel (every pixel is 255 = ignore)")
    return label


def max_class_id(path: Path) -> int:
    """The largest class id (255 excluded) of one mask."""
    label = read_index_png(path)
    return int(label[label != IGNORE_LABEL].max(initial=0))
