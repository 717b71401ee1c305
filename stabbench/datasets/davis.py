"""DAVIS-2016 / DAVIS-2017 loader.

Layout (both years)::

    root/JPEGImages/480p/<seq>/NNNNN.jpg
    root/Annotations/480p/<seq>/NNNNN.png
    root/ImageSets/2017/<split>.txt   DAVIS-2017 (and 2016 inside the 2017 package):
                                      one sequence name per line
    root/ImageSets/480p/<split>.txt   DAVIS-2016 package: lines like "/JPEGImages/480p/bear/
                                      00000.jpg /Annotations/480p/bear/00000.png" (one line)

Masks are decoded per file: an 8-bit grayscale ("L") PNG whose values are a subset of
{0, 255} is a DAVIS-2016 binary mask (255 -> 1); anything else (DAVIS-2017 palette PNGs)
holds object ids, 0 = background, 255 = void (kept as ignore).

Paper protocol: the first annotated frame of every DAVIS-2016 val sequence
(``split="val", year=2016, frames_per_sequence=1``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from stabbench.datasets.base import IGNORE_LABEL, DatasetListing, SourceRef, check_root, read_index_png
from stabbench.errors import DataError

IMAGE_DIR = Path("JPEGImages") / "480p"
MASK_DIR = Path("Annotations") / "480p"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
OBJECT_MODES = ("merge", "ids")
# Folders searched under ImageSets/ for <split>.txt when ``year`` is not given.
DEFAULT_SPLIT_FOLDERS = ("2017", "2016", "480p")

LAYOUT_HINT = (
    "expected DAVIS layout JPEGImages/480p/<seq>/NNNNN.jpg + Annotations/480p/<seq>/NNNNN.png"
)


def list_davis(
    root: str | Path | None,
    *,
    split: str | None = None,
    objects: str = "merge",
    frames_per_sequence: int = 1,
    year: int | str | None = None,
) -> DatasetListing:
    """List annotated DAVIS frames (paths only for ``objects="merge"``).

    Args:
        root: the DAVIS folder (holding ``JPEGImages`` and ``Annotations``).
        split: ``None`` = every sequence found (sorted); else the name of a split file
            ``ImageSets/<year>/<split>.txt`` (``ImageSets/480p/<split>.txt`` for DAVIS-2016).
        objects: ``"merge"``: all objects -> one foreground (labels {0, 1, 255});
            ``"ids"``: keep object ids (labels {0..K, 255}). K is the largest id over the
            listed masks, so ``"ids"`` reads those masks once here.
        frames_per_sequence: 1 = the first annotated frame (paper protocol); K > 1 = K
            annotated frames at equal intervals, first included (fewer if the sequence
            has fewer annotated frames).
        year: which ``ImageSets/<year>/`` to read the split from (2016 also accepts the
            DAVIS-2016 package's ``ImageSets/480p/``). ``None``: the one that exists; an
            error if several do.

    Returns:
        a listing with sources named ``"<seq>/<frame stem>"``, sorted by sequence.
    """
    if objects not in OBJECT_MODES:
        raise ValueError(
            f"unknown objects mode {objects!r}; choose one of {', '.join(OBJECT_MODES)}"
        )
    if not isinstance(frames_per_sequence, int) or frames_per_sequence < 1:
        raise ValueError(
            f"frames_per_sequence must be an integer >= 1, got {frames_per_sequence!r}"
        )
    root = check_root(root, "davis")
    image_root, mask_root = root / IMAGE_DIR, root / MASK_DIR
    for folder in (image_root, mask_root):
        if not folder.is_dir():
            raise DataError(folder, f"folder not found; {LAYOUT_HINT}")

    if split is None:
        sequences = find_sequences(image_root, mask_root)
    else:
        sequences = read_split_file(find_split_file(root, split, year))
    if not sequences:
        raise DataError(image_root, f"no sequences found; {LAYOUT_HINT}")

    decode = partial(decode_davis_mask, objects=objects)
    sources: list[SourceRef] = []
    for seq in sequences:
        frames = annotated_frames(image_root / seq, mask_root / seq)
        for index in pick_frames(len(frames), frames_per_sequence):
            image_path, mask_path = frames[index]
            sources.append(SourceRef(f"{seq}/{mask_path.stem}", image_path, mask_path, decode))

    if objects == "merge":
        classes: tuple[str, ...] = ("background", "foreground")
    else:
        max_id = max_object_id(sources)
        classes = ("background",) + tuple(f"object_{i}" for i in range(1, max_id + 1))
    options = {
        "split": split,
        "objects": objects,
        "frames_per_sequence": frames_per_sequence,
        "year": year,
    }
    return DatasetListing("davis", sources, classes, options)


def find_sequences(image_root: Path, mask_root: Path) -> list[str]:
    """Sorted names of the (non-hidden) sequence folders under ``JPEGImages`` or ``Annotations``."""
    names = {p.name for folder in (image_root, mask_root) for p in folder.iterdir() if p.is_dir()}
    return sorted(name for name in names if not name.startswith("."))


def split_file_candidates(root: Path, split: str, year: int | str | None) -> list[Path]:
    """Where ``<split>.txt`` may lie, in the order searched."""
    if year is None:
        folders: tuple[str, ...] = DEFAULT_SPLIT_FOLDERS
    elif str(year) == "2016":
        folders = ("2016", "480p")
    else:
        folders = (str(year),)
    return [root / "ImageSets" / folder / f"{split}.txt" for folder in folders]


def find_split_file(root: Path, split: str, year: int | str | None) -> Path:
    """The split file to read; DataError if none or (with ``year=None``) several exist."""
    candidates = split_file_candidates(root, split, year)
    found = [p for p in candidates if p.is_file()]
    if not found:
        others = ", ".join(str(p.relative_to(root)) for p in candidates[1:])
        also = f" (also looked for {others})" if others else ""
        raise DataError(candidates[0], f"split file for split {split!r} not found{also}")
    if year is None and len(found) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in found)
        raise DataError(
            root / "ImageSets", f"several split files for {split!r} ({names}); choose one with year"
        )
    return found[0]


def read_split_file(path: Path) -> list[str]:
    """Sorted unique sequence names from a DAVIS-2017 (names) or DAVIS-2016 (paths) split file."""
    names: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split()[0]
        if "/" in first:
            parts = [p for p in first.split("/") if p]
            if len(parts) < 2:
                raise DataError(path, f"line {number}: cannot read a sequence name from {first!r}")
            names.add(parts[-2])
        else:
            names.add(first)
    return sorted(names)


def annotated_frames(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    """``(image, mask)`` pairs of a sequence, sorted by frame name; DataError if none."""
    if not mask_dir.is_dir():
        raise DataError(mask_dir, "annotation folder of the sequence not found")
    if not image_dir.is_dir():
        raise DataError(image_dir, "image folder of the sequence not found")
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() == ".png")
    pairs = [(images[m.stem], m) for m in masks if m.stem in images]
    if not pairs:
        raise DataError(mask_dir, f"no annotated frame with a matching image in {image_dir}")
    return pairs


def pick_frames(n_frames: int, k: int) -> list[int]:
    """Indices of ``k`` frames at equal intervals over ``n_frames``, the first included."""
    if k == 1:
        return [0]
    return sorted({int(i) for i in np.rint(np.linspace(0, n_frames - 1, k))})


def decode_davis_mask(path: Path, objects: str = "merge") -> np.ndarray:
    """Read a DAVIS mask as ``(H, W)`` uint8 labels ({0, 1, 255} merged, {0..K, 255} ids)."""
    ids = read_object_ids(path)
    if objects == "merge":
        merged = (ids > 0).astype(np.uint8)
        merged[ids == IGNORE_LABEL] = IGNORE_LABEL
        return merged
    return ids


def read_object_ids(path: Path) -> np.ndarray:
    """``(H, W)`` uint8 object ids; a DAVIS-2016 binary mask ("L", {0, 255}) gives {0, 1}."""
    from PIL import Image

    raw = read_index_png(path)  # validates the file, raises DataError if unreadable
    with Image.open(path) as im:
        mode = im.mode
    if mode == "L" and np.isin(raw, (0, 255)).all():
        return (raw == 255).astype(np.uint8)
    return raw


def max_object_id(sources: list[SourceRef]) -> int:
    """The largest object id (255 = void excluded) over the masks of ``sources``."""
    largest = 0
    for source in sources:
        ids = read_object_ids(source.label_path)
        valid = ids[ids != IGNORE_LABEL]
        largest = max(largest, int(valid.max(initial=0)))
    return largest
