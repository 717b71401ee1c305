"""Dataset loaders: the real DAVIS sample, synthetic DAVIS/Cityscapes/folder trees, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stabbench.datasets.cityscapes import TRAIN_ID_LUT, list_cityscapes
from stabbench.datasets.davis import list_davis
from stabbench.datasets.folder import list_folder
from stabbench.errors import DataError

DAVIS_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis-sample"
SAMPLE_SEQUENCES = [
    "blackswan",
    "bmx-trees",
    "camel",
    "dance-twirl",
    "horsejump-high",
    "kite-surf",
    "scooter-black",
]
W, H = 32, 24

needs_sample = pytest.mark.skipif(
    not DAVIS_SAMPLE.is_dir(), reason=f"real DAVIS sample not found at {DAVIS_SAMPLE}"
)


# ----------------------------------------------------------------------------- helpers


def write_image(path: Path, size: tuple[int, int] = (W, H), seed: int = 0) -> Path:
    """Write a random RGB image (format from the suffix); ``size`` is (W, H)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def write_gray(path: Path, values: np.ndarray) -> Path:
    """Write ``(H, W)`` uint8 values as an 8-bit grayscale ("L") PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def write_palette(path: Path, values: np.ndarray) -> Path:
    """Write ``(H, W)`` uint8 indices as a palette ("P") PNG, like DAVIS-2017."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), mode="P")
    palette = np.random.default_rng(1).integers(0, 256, 768, dtype=np.uint8)
    palette[:3] = 0
    im.putpalette(palette.tolist())
    im.save(path)
    return path


def blob(value: int, x0: int = 4, x1: int = 12) -> np.ndarray:
    """``(H, W)`` uint8 zeros with a rectangle of ``value``."""
    mask = np.zeros((H, W), np.uint8)
    mask[6:14, x0:x1] = value
    return mask


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


def make_cityscapes(root: Path, split: str = "val", n_per_city: int = 3) -> Path:
    """Cityscapes tree with two cities; label maps use road, car, sky, an unlabelled id and 255."""
    for city in ("aachen", "bonn"):
        for i in range(n_per_city):
            stem = f"{city}_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", seed=i)
            label = np.full((H, W), 7, np.uint8)  # road
            label[:4] = 23  # sky
            label[10:14, 10:20] = 26  # car
            label[20:, :5] = 0  # unlabeled
            label[20:, 5:8] = 3  # out of roi
            write_gray(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
    return root


def make_folder(root: Path, stems: dict[str, str], masks: dict[str, np.ndarray]) -> Path:
    """Folder tree: ``stems`` maps stem -> image suffix; ``masks`` stem -> mask values."""
    for stem, suffix in stems.items():
        write_image(root / "images" / f"{stem}{suffix}")
    for stem, values in masks.items():
        write_gray(root / "masks" / f"{stem}.png", values)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    return root


def assert_data_error(excinfo: pytest.ExceptionInfo, path: Path, *problem_words: str) -> None:
    """The DataError names ``path`` and each of ``problem_words`` (case-insensitive)."""
    err = excinfo.value
    assert isinstance(err, DataError)
    assert str(path) in str(err), str(err)
    for word in problem_words:
        assert word.lower() in str(err).lower(), str(err)


# ----------------------------------------------------------------------------- real DAVIS


@needs_sample
def test_real_davis_sample_first_frames() -> None:
    listing = list_davis(DAVIS_SAMPLE)
    assert listing.name == "davis"
    assert listing.classes == ("background", "foreground")
    assert [s.name for s in listing.sources] == [f"{seq}/00000" for seq in SAMPLE_SEQUENCES]
    for source in listing.sources:
        sample = source.load()
        assert sample.image.shape == (480, 854, 3) and sample.image.dtype == np.uint8
        assert sample.label.shape == (480, 854) and sample.label.dtype == np.uint8
        assert set(np.unique(sample.label).tolist()) == {0, 1}


@needs_sample
def test_real_davis_sample_three_frames_per_sequence() -> None:
    listing = list_davis(DAVIS_SAMPLE, frames_per_sequence=3)
    by_seq: dict[str, list[str]] = {}
    for source in listing.sources:
        seq, frame = source.name.split("/")
        by_seq.setdefault(seq, []).append(frame)
    assert sorted(by_seq) == SAMPLE_SEQUENCES
    for frames in by_seq.values():
        assert len(set(frames)) == 3 and frames[0] == "00000"
    assert by_seq["camel"] == ["00000", "00007", "00014"]


@needs_sample
def test_real_davis_ids_mode_on_binary_masks() -> None:
    listing = list_davis(DAVIS_SAMPLE, objects="ids")
    assert listing.classes == ("background", "object_1")


# ----------------------------------------------------------------------------- DAVIS


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


def test_davis_missing_split_file(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    with pytest.raises(DataError) as excinfo:
        list_davis(root, split="test-dev", year=2017)
    assert_data_error(excinfo, root / "ImageSets" / "2017" / "test-dev.txt", "not found")


def test_davis_ambiguous_split_needs_year(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    (root / "ImageSets" / "2016").mkdir()
    (root / "ImageSets" / "2016" / "val.txt").write_text("dogs\n")
    with pytest.raises(DataError) as excinfo:
        list_davis(root, split="val")
    assert_data_error(excinfo, root / "ImageSets", "year")
    assert len(list_davis(root, split="val", year=2016).sources) == 1


def test_davis_split_names_missing_sequence(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    (root / "ImageSets" / "2017" / "val.txt").write_text("dogs\nghost\n")
    with pytest.raises(DataError) as excinfo:
        list_davis(root, split="val")
    assert_data_error(excinfo, root / "Annotations" / "480p" / "ghost", "not found")


def test_davis_sequence_without_annotated_frame(tmp_path: Path) -> None:
    root = make_davis2017(tmp_path / "d17")
    write_palette(root / "Annotations" / "480p" / "lost" / "00000.png", blob(1))
    write_image(root / "JPEGImages" / "480p" / "lost" / "00001.jpg")
    with pytest.raises(DataError) as excinfo:
        list_davis(root)
    assert_data_error(excinfo, root / "Annotations" / "480p" / "lost", "no annotated frame")


def test_davis_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        list_davis(tmp_path / "nope")
    assert_data_error(excinfo, tmp_path / "nope", "not found")


def test_davis_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError) as excinfo:
        list_davis(tmp_path / "file")
    assert_data_error(excinfo, tmp_path / "file", "not a folder")


def test_davis_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages" / "1080p").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        list_davis(tmp_path)
    assert_data_error(excinfo, tmp_path / "JPEGImages" / "480p", "expected DAVIS layout")


def test_davis_no_sequences(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    (tmp_path / "Annotations" / "480p").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        list_davis(tmp_path)
    assert_data_error(excinfo, tmp_path / "JPEGImages" / "480p", "no sequences")


def test_davis_corrupt_image(tmp_path: Path) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    image = root / "JPEGImages" / "480p" / "bear" / "00000.jpg"
    image.write_bytes(b"this is not a jpeg" * 10)
    source = list_davis(root).sources[0]
    with pytest.raises(DataError) as excinfo:
        source.load()
    assert_data_error(excinfo, image, "cannot decode image")


def test_davis_truncated_mask(tmp_path: Path) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    mask = root / "Annotations" / "480p" / "bear" / "00000.png"
    mask.write_bytes(mask.read_bytes()[:60])
    source = list_davis(root).sources[0]
    with pytest.raises(DataError) as excinfo:
        source.load()
    assert_data_error(excinfo, mask, "cannot decode mask")


def test_davis_size_mismatch(tmp_path: Path) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    write_image(root / "JPEGImages" / "480p" / "bear" / "00000.jpg", size=(W + 2, H))
    with pytest.raises(DataError) as excinfo:
        list_davis(root).sources[0].load()
    mask = root / "Annotations" / "480p" / "bear" / "00000.png"
    assert_data_error(excinfo, mask, f"{W}x{H}", f"{W + 2}x{H}")


def test_davis_empty_mask(tmp_path: Path) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    mask = write_gray(root / "Annotations" / "480p" / "bear" / "00000.png", np.zeros((H, W)))
    with pytest.raises(DataError) as excinfo:
        list_davis(root).sources[0].load()
    assert_data_error(excinfo, mask, "empty")


@pytest.mark.parametrize("options", [{"objects": "all"}, {"frames_per_sequence": 0}])
def test_davis_bad_option(tmp_path: Path, options: dict) -> None:
    root = make_davis2016(tmp_path / "d16", {"bear": 1})
    with pytest.raises(ValueError, match="objects|frames_per_sequence"):
        list_davis(root, **options)


# ----------------------------------------------------------------------------- Cityscapes


def test_cityscapes_lut_is_official() -> None:
    assert TRAIN_ID_LUT.shape == (256,) and TRAIN_ID_LUT.dtype == np.uint8
    assert TRAIN_ID_LUT[7] == 0 and TRAIN_ID_LUT[26] == 13 and TRAIN_ID_LUT[33] == 18
    assert TRAIN_ID_LUT[[0, 3, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255]].tolist() == [255] * 13
    assert sorted(set(TRAIN_ID_LUT.tolist()) - {255}) == list(range(19))


def test_cityscapes_listing_and_mapping(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    listing = list_cityscapes(root)
    assert len(listing.classes) == 19 and listing.classes[13] == "car"
    assert [s.name for s in listing.sources][:2] == [
        "aachen/aachen_000000_000019",
        "aachen/aachen_000001_000019",
    ]
    assert len(listing.sources) == 6
    label = listing.sources[0].load().label
    assert label.shape == (H, W)
    assert label[0, 0] == 10 and label[12, 12] == 13 and label[8, 0] == 0
    assert (label[20:, :8] == 255).all()


def test_cityscapes_random_subset_is_deterministic(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs", n_per_city=5)

    def names(seed: int) -> list[str]:
        return [s.name for s in list_cityscapes(root, max_images=4, seed=seed).sources]

    first = names(0)
    assert len(first) == 4 and len(set(first)) == 4
    assert first == sorted(first)
    assert first == names(0)
    assert any(names(seed) != first for seed in range(1, 6))
    assert len(list_cityscapes(root, max_images=100).sources) == 10


def test_cityscapes_missing_label(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    label = root / "gtFine" / "val" / "bonn" / "bonn_000001_000019_gtFine_labelIds.png"
    label.unlink()
    with pytest.raises(DataError) as excinfo:
        list_cityscapes(root)
    assert_data_error(excinfo, label, "not found")


def test_cityscapes_all_ignore_label(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs", n_per_city=1)
    label = root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    write_gray(label, np.full((H, W), 4))  # "static": ignored in trainIds
    with pytest.raises(DataError) as excinfo:
        list_cityscapes(root).sources[0].load()
    assert_data_error(excinfo, label, "no labelled pixel")


def test_cityscapes_wrong_split(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    with pytest.raises(DataError) as excinfo:
        list_cityscapes(root, split="train")
    assert_data_error(excinfo, root / "leftImg8bit" / "train", "expected Cityscapes layout")


# ----------------------------------------------------------------------------- folder


def test_folder_binary_and_labels(tmp_path: Path) -> None:
    mask_a = blob(3)
    mask_a[0, 0] = 255
    root = make_folder(
        tmp_path / "f",
        {"a": ".JPG", "b": ".png", "c": ".webp"},
        {"a": mask_a, "b": blob(1), "c": blob(7)},
    )
    binary = list_folder(root)
    assert [s.name for s in binary.sources] == ["a", "b", "c"]
    assert binary.classes == ("background", "foreground")
    label = binary.sources[0].load().label
    assert set(np.unique(label).tolist()) == {0, 1, 255}

    labels = list_folder(root, mask_mode="labels")
    assert labels.classes == tuple(f"class_{i}" for i in range(8))
    assert set(np.unique(labels.sources[0].load().label).tolist()) == {0, 3, 255}
    # class 0 is a real class in "labels" mode: an all-0 mask is fine, an all-255 one is not
    write_gray(root / "masks" / "b.png", np.zeros((H, W)))
    assert labels.sources[1].load().label.max() == 0
    write_gray(root / "masks" / "b.png", np.full((H, W), 255))
    with pytest.raises(DataError) as excinfo:
        labels.sources[1].load()
    assert_data_error(excinfo, root / "masks" / "b.png", "no labelled pixel")


def test_folder_custom_subfolders(tmp_path: Path) -> None:
    mask = blob(128)
    mask[0, :] = 255
    write_image(tmp_path / "rgb" / "x.bmp")
    write_gray(tmp_path / "gt" / "x.png", mask)
    label = list_folder(tmp_path, images="rgb", masks="gt").sources[0].load().label
    assert np.array_equal(label[1:], blob(1)[1:]) and (label[0] == 255).all()


def test_folder_binary_mask_of_only_0_and_255_is_a_foreground_mask(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg", "b": ".jpg"}, {"a": blob(255), "b": np.zeros_like(blob(1))})
    label = list_folder(root).sources[0].load().label
    assert np.array_equal(label, blob(1))
    with pytest.raises(DataError) as excinfo:
        list_folder(root).sources[1].load()
    assert_data_error(excinfo, root / "masks" / "b.png", "empty")


def test_folder_image_without_mask(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg", "b": ".jpg"}, {"a": blob(1)})
    with pytest.raises(DataError) as excinfo:
        list_folder(root)
    assert_data_error(excinfo, root / "images" / "b.jpg", "no mask", str(root / "masks" / "b.png"))


def test_folder_mask_without_image(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg"}, {"a": blob(1), "z": blob(1)})
    with pytest.raises(DataError) as excinfo:
        list_folder(root)
    assert_data_error(excinfo, root / "masks" / "z.png", "no image")


def test_folder_duplicate_stems(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg"}, {"a": blob(1)})
    write_image(root / "images" / "a.png")
    with pytest.raises(DataError) as excinfo:
        list_folder(root)
    assert_data_error(excinfo, root / "images", "same stem", "a.jpg", "a.png")


def test_folder_empty_mask(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg"}, {"a": np.zeros((H, W))})
    with pytest.raises(DataError) as excinfo:
        list_folder(root).sources[0].load()
    assert_data_error(excinfo, root / "masks" / "a.png", "empty")


def test_folder_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as excinfo:
        list_folder(tmp_path)
    assert_data_error(excinfo, tmp_path / "masks", "folder not found")


def test_folder_unknown_mask_mode(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": ".jpg"}, {"a": blob(1)})
    with pytest.raises(ValueError, match="mask_mode.*binary, labels"):
        list_folder(root, mask_mode="rgb")


# ----------------------------------------------------------------------------- registry


def test_unknown_dataset_name() -> None:
    from stabbench.datasets import list_sources

    with pytest.raises(ValueError, match="davis, cityscapes, folder, shapes"):
        list_sources("imagenet", None)
