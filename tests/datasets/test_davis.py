"""stabbench.datasets.davis: the real DAVIS sample, synthetic DAVIS-2016/2017 trees, and
every way a DAVIS tree can be bad (one parametrised test: a DataError naming the file and
the problem)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
from PIL import Image

from stabbench.datasets.davis import list_davis
from stabbench.errors import DataError
from tests.helpers import TREE_H as H
from tests.helpers import TREE_W as W
from tests.helpers import assert_data_error, blob, write_gray, write_image

SAMPLE_SEQUENCES = [
    "blackswan",
    "bmx-trees",
    "camel",
    "dance-twirl",
    "horsejump-high",
    "kite-surf",
    "scooter-black",
]


# ----------------------------------------------------------------------------- trees


def write_palette(path: Path, values: np.ndarray) -> Path:
    """Write ``(H, W)`` uint8 indices as a palette ("P") PNG, like DAVIS-2017."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), mode="P")
    palette = np.random.default_rng(1).integers(0, 256, 768, dtype=np.uint8)
    palette[:3] = 0
    im.putpalette(palette.tolist())
    im.save(path)
    return path


def make_davis2016(root: Path, frames: dict[str, int]) -> Path:
    """DAVIS-2016 tree: binary {0, 255} "L" masks on every frame, ImageSets/480p/val.txt."""
    lines = []
    for seq, n in frames.items():
        for i in range(n):
            stem = f"{i:05d}"
            write_image(root / "JPEGImages" / "480p" / seq / f"{stem}.jpg", seed=i)
            write_gray(root / "Annotations" / "480p" / seq / f"{stem}.png", blob(255))
            lines.append(f"/JPEGImages/480p/{seq}/{stem}.jpg /Annotations/480p/{seq}/{stem}.png")
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    return root


def make_davis2017(root: Path) -> Path:
    """DAVIS-2017 tree: palette masks with object ids and void; ImageSets/2017/{train,val}.txt.

    ``bike``: 5 frames, objects 1 and 2; ``dogs``: 3 frames, objects 1..3 and void 255 on
    frame 00000 only; ``solo``: 4 frames, annotation only on 00000 (like test-dev).
    """
    ann, jpg = root / "Annotations" / "480p", root / "JPEGImages" / "480p"
    for i in range(5):
        write_image(jpg / "bike" / f"{i:05d}.jpg", seed=i)
        write_palette(ann / "bike" / f"{i:05d}.png", blob(1, 2, 8) + blob(2, 10, 16))
    for i in range(3):
        write_image(jpg / "dogs" / f"{i:05d}.jpg", seed=i)
        mask = blob(1, 0, 4) + blob(2, 6, 10) + blob(3, 12, 16)
        if i == 0:
            mask[0, :] = 255
        write_palette(ann / "dogs" / f"{i:05d}.png", mask)
    for i in range(4):
        write_image(jpg / "solo" / f"{i:05d}.jpg", seed=i)
    write_palette(ann / "solo" / "00000.png", blob(1))
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("bike\nsolo\n")
    (root / "ImageSets" / "2017" / "val.txt").write_text("dogs\n")
    return root


# ----------------------------------------------------------------------------- real DAVIS


def test_real_davis_sample_first_frames(davis_sample: Path) -> None:
    listing = list_davis(davis_sample)
    assert listing.name == "davis"
    assert listing.classes == ("background", "foreground")
    assert [s.name for s in listing.sources] == [f"{seq}/00000" for seq in SAMPLE_SEQUENCES]
    for source in listing.sources:
        sample = source.load()
        assert sample.image.shape == (480, 854, 3) and sample.image.dtype == np.uint8
        assert sample.label.shape == (480, 854) and sample.label.dtype == np.uint8
        assert set(np.unique(sample.label).tolist()) == {0, 1}


def test_real_davis_sample_three_frames_per_sequence(davis_sample: Path) -> None:
    listing = list_davis(davis_sample, frames_per_sequence=3)
    by_seq: dict[str, list[str]] = {}
    for source in listing.sources:
        seq, frame = source.name.split("/")
        by_seq.setdefault(seq, []).append(frame)
    assert sorted(by_seq) == SAMPLE_SEQUENCES
    for frames in by_seq.values():
        assert len(set(frames)) == 3 and frames[0] == "00000"
    assert by_seq["camel"] == ["00000", "00007", "00014"]


def test_real_davis_ids_mode_on_binary_masks(davis_sample: Path) -> None:
    listing = list_davis(davis_sample, objects="ids")
    assert listing.classes == ("background", "object_1")


# ----------------------------------------------------------------------------- synthetic trees


def test_davis2016_split_and_binary_mapping(tmp_path: Path) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 4, "cows": 2})
    (root / "JPEGImages" / "480p" / "extra").mkdir()  # not in the split
    listing = list_davis(root, split="val", year=2016)
    assert [s.name for s in listing.sources] == ["bear/00000", "cows/00000"]
    label = listing.sources[0].load().label
    assert label.shape == (H, W)
    assert np.array_equal(label, blob(1))
    # year=None finds ImageSets/480p/val.txt too
    assert len(list_davis(root, split="val").sources) == 2


def test_davis2017_merge_ids_and_void(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    merged = list_davis(root)
    assert [s.name for s in merged.sources] == ["bike/00000", "dogs/00000", "solo/00000"]
    dogs = merged.sources[1].load().label
    assert set(np.unique(dogs).tolist()) == {0, 1, 255}
    assert (dogs[0] == 255).all()

    ids = list_davis(root, objects="ids")
    assert ids.classes == ("background", "object_1", "object_2", "object_3")
    dogs = ids.sources[1].load().label
    assert set(np.unique(dogs).tolist()) == {0, 1, 2, 3, 255}


def test_davis2017_splits_and_frames(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    train = list_davis(root, split="train", frames_per_sequence=3)
    names = [s.name for s in train.sources]
    assert names == ["bike/00000", "bike/00002", "bike/00004", "solo/00000"]
    val = list_davis(root, split="val", year="2017", objects="ids")
    assert [s.name for s in val.sources] == ["dogs/00000"]
    assert len(val.classes) == 4
    # more frames asked than annotated: all of them, once each
    assert len(list_davis(root, split="val", frames_per_sequence=10).sources) == 3


def test_davis_year_picks_the_split_of_an_ambiguous_tree(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    (root / "ImageSets" / "2016").mkdir()
    (root / "ImageSets" / "2016" / "val.txt").write_text("dogs\n")
    assert len(list_davis(root, split="val", year=2016).sources) == 1  # without year: "ambiguous-split" below


@pytest.mark.parametrize("options", [{"objects": "all"}, {"frames_per_sequence": 0}])
def test_davis_bad_option(tmp_path: Path, options: dict) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    with pytest.raises(ValueError, match="objects|frames_per_sequence"):
        list_davis(root, **options)


# ----------------------------------------------------------------------------- bad trees


class BadTree(NamedTuple):
    """What a bad-tree case built: the call that must raise, the path the DataError must
    name, and words of the problem it must state."""

    call: Callable[[], object]
    path: Path
    words: tuple[str, ...]


def missing_split_file(tmp_path: Path) -> BadTree:
    root = make_davis2017(tmp_path / "d17")
    return BadTree(lambda: list_davis(root, split="test-dev", year=2017), root / "ImageSets" / "2017" / "test-dev.txt",
                   ("not found",))


def ambiguous_split(tmp_path: Path) -> BadTree:
    root = make_davis2017(tmp_path / "d17")
    (root / "ImageSets" / "2016").mkdir()
    (root / "ImageSets" / "2016" / "val.txt").write_text("dogs\n")
    return BadTree(lambda: list_davis(root, split="val"), root / "ImageSets", ("year",))


def split_names_missing_sequence(tmp_path: Path) -> BadTree:
    root = make_davis2017(tmp_path / "d17")
    (root / "ImageSets" / "2017" / "val.txt").write_text("dogs\nghost\n")
    return BadTree(lambda: list_davis(root, split="val"), root / "Annotations" / "480p" / "ghost", ("not found",))


def sequence_without_annotated_frame(tmp_path: Path) -> BadTree:
    root = make_davis2017(tmp_path / "d17")
    write_palette(root / "Annotations" / "480p" / "lost" / "00000.png", blob(1))
    write_image(root / "JPEGImages" / "480p" / "lost" / "00001.jpg")
    return BadTree(lambda: list_davis(root), root / "Annotations" / "480p" / "lost", ("no annotated frame",))


def missing_root(tmp_path: Path) -> BadTree:
    return BadTree(lambda: list_davis(tmp_path / "nope"), tmp_path / "nope", ("not found",))


def root_is_a_file(tmp_path: Path) -> BadTree:
    (tmp_path / "file").write_text("x")
    return BadTree(lambda: list_davis(tmp_path / "file"), tmp_path / "file", ("not a folder",))


def wrong_layout(tmp_path: Path) -> BadTree:
    (tmp_path / "JPEGImages" / "1080p").mkdir(parents=True)
    return BadTree(lambda: list_davis(tmp_path), tmp_path / "JPEGImages" / "480p", ("expected DAVIS layout",))


def no_sequences(tmp_path: Path) -> BadTree:
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    (tmp_path / "Annotations" / "480p").mkdir(parents=True)
    return BadTree(lambda: list_davis(tmp_path), tmp_path / "JPEGImages" / "480p", ("no sequences",))


def corrupt_image(tmp_path: Path) -> BadTree:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    image = root / "JPEGImages" / "480p" / "bear" / "00000.jpg"
    image.write_bytes(b"this is not a jpeg" * 10)
    source = list_davis(root).sources[0]  # listed fine: the error comes when it is decoded
    return BadTree(source.load, image, ("cannot decode image",))


def truncated_mask(tmp_path: Path) -> BadTree:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    mask = root / "Annotations" / "480p" / "bear" / "00000.png"
    mask.write_bytes(mask.read_bytes()[:60])
    source = list_davis(root).sources[0]
    return BadTree(source.load, mask, ("cannot decode mask",))


def size_mismatch(tmp_path: Path) -> BadTree:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    write_image(root / "JPEGImages" / "480p" / "bear" / "00000.jpg", size=(W + 2, H))
    mask = root / "Annotations" / "480p" / "bear" / "00000.png"
    return BadTree(lambda: list_davis(root).sources[0].load(), mask, (f"{W}x{H}", f"{W + 2}x{H}"))


def empty_mask(tmp_path: Path) -> BadTree:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    mask = write_gray(root / "Annotations" / "480p" / "bear" / "00000.png", np.zeros((H, W)))
    return BadTree(lambda: list_davis(root).sources[0].load(), mask, ("empty",))


BAD_TREES = [
    missing_split_file,
    ambiguous_split,
    split_names_missing_sequence,
    sequence_without_annotated_frame,
    missing_root,
    root_is_a_file,
    wrong_layout,
    no_sequences,
    corrupt_image,
    truncated_mask,
    size_mismatch,
    empty_mask,
]


@pytest.mark.parametrize("make_tree", BAD_TREES, ids=[f.__name__.replace("_", "-") for f in BAD_TREES])
def test_davis_bad_tree_is_a_data_error(make_tree, tmp_path: Path) -> None:
    bad = make_tree(tmp_path)
    with pytest.raises(DataError) as excinfo:
        bad.call()
    assert_data_error(excinfo, bad.path, *bad.words)
