"""stabbench.datasets.folder: ``images/`` + ``masks/`` trees, binary and label masks, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stabbench.datasets.folder import list_folder
from stabbench.errors import DataError
from tests.helpers import TREE_H as H
from tests.helpers import TREE_W as W
from tests.helpers import assert_data_error, blob, write_gray, write_image


def make_folder(root: Path, stems: dict[str, str], masks: dict[str, np.ndarray]) -> Path:
    """Folder tree: ``stems`` maps stem -> image suffix; ``masks`` stem -> mask values."""
    for stem, suffix in stems.items():
        write_image(root / "images" / f"{stem}{suffix}")
    for stem, values in masks.items():
        write_gray(root / "masks" / f"{stem}.png", values)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    return root


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
