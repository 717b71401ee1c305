"""stabbench.datasets.cityscapes: the official labelId -> trainId table, synthetic trees, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stabbench.datasets.cityscapes import TRAIN_ID_LUT, list_cityscapes
from stabbench.errors import DataError
from tests.helpers import TREE_H as H
from tests.helpers import TREE_W as W
from tests.helpers import assert_data_error, write_gray, write_image


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
