"""Cityscapes loader: ``leftImg8bit`` images + ``gtFine`` labelIds mapped to the 19 trainIds.

Layout::

    root/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    root/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png

Paper protocol: first frames drawn at random from val (``split="val", max_images=N``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stabbench.datasets.base import IGNORE_LABEL, DatasetListing, SourceRef, check_root, read_index_png
from stabbench.errors import DataError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

# Official cityscapesScripts table (labels.py): labelId -> trainId; every other id -> 255.
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}

CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)


def build_train_id_lut() -> np.ndarray:
    """``(256,)`` uint8 lookup table labelId -> trainId (255 = ignore)."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


TRAIN_ID_LUT = build_train_id_lut()


def decode_cityscapes_label(path: Path) -> np.ndarray:
    """Read a ``*_gtFine_labelIds.png`` as ``(H, W)`` uint8 trainIds; all-ignore is an error."""
    label = TRAIN_ID_LUT[read_index_png(path)]
    if np.all(label == IGNORE_LABEL):
        raise DataError(path, "no labelled pixel (every labelId maps to ignore)")
    return label


def list_cityscapes(
    root: str | Path | None,
    *,
    split: str = "val",
    max_images: int | None = None,
    seed: int = 0,
) -> DatasetListing:
    """List Cityscapes fine-annotated images of ``split``.

    Args:
        root: the Cityscapes folder (holding ``leftImg8bit`` and ``gtFine``).
        split: ``"train"``, ``"val"`` or ``"test"`` (any sub-folder name is accepted).
        max_images: if set, that many images drawn without replacement with
            ``np.random.default_rng(seed)`` from the sorted listing; returned in listing order.
        seed: seed of that draw.

    Returns:
        a listing with sources named ``"<city>/<stem>"`` and the 19 trainId classes.
    """
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ValueError(f"max_images must be an integer >= 1 or None, got {max_images!r}")
    root = check_root(root, "cityscapes")
    image_root, label_root = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (image_root, label_root):
        if not folder.is_dir():
            raise DataError(
                folder,
                "folder not found; expected Cityscapes layout leftImg8bit/<split>/<city>/"
                f"*{IMAGE_SUFFIX} + gtFine/<split>/<city>/*{LABEL_SUFFIX}",
            )
    images = sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DataError(image_root, f"no */*{IMAGE_SUFFIX} images found")
    if max_images is not None and max_images < len(images):
        chosen = np.random.default_rng(seed).choice(len(images), size=max_images, replace=False)
        images = [images[i] for i in sorted(chosen.tolist())]
    sources = [image_source(path, label_root) for path in images]
    options = {"split": split, "max_images": max_images, "seed": seed}
    return DatasetListing("cityscapes", sources, CLASSES, options)


def image_source(image_path: Path, label_root: Path) -> SourceRef:
    """The SourceRef of one ``leftImg8bit`` image; DataError if its labelIds file is missing."""
    city = image_path.parent.name
    stem = image_path.name[: -len(IMAGE_SUFFIX)]
    label_path = label_root / city / f"{stem}{LABEL_SUFFIX}"
    if not label_path.is_file():
        raise DataError(label_path, f"label file for image {image_path.name} not found")
    return SourceRef(
        f"{city}/{stem}", image_path, label_path, decode_cityscapes_label, empty_ok=True
    )
