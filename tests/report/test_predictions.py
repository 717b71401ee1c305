"""Saved predictions: written per frame, indexed by sha256, read back only when they are the result's."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from stabbench.errors import DataError
from stabbench.report.predictions import (
    PredictionWriter,
    SavedPredictions,
    encode_labels,
    finish_staging,
    remove_stale_staging,
    staging_folder,
)


def labels_of(seed: int, frames: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, (frames, 6, 8)).astype(np.uint8)


def saved(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A result folder with two sequences' predictions; returns (folder, results, labels by id)."""
    result = tmp_path / "result"
    staging = staging_folder(result, "1")
    write = PredictionWriter(staging)
    labels = {"seq_a": labels_of(0), "seq_b": labels_of(1)}
    for seq_id, frames in labels.items():
        write(SimpleNamespace(id=seq_id), frames)
    record = finish_staging(staging, {k: len(v) for k, v in labels.items()})
    result.mkdir()
    staging.rename(result / "predictions")
    return result, {"predictions": record}, labels


def test_png_round_trip_of_class_ids() -> None:
    labels = labels_of(2)[0]
    decoded = cv2.imdecode(np.frombuffer(encode_labels(labels), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint8 and decoded.ndim == 2
    np.testing.assert_array_equal(decoded, labels)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        encode_labels(np.full((2, 2), 300, np.int32))


def test_written_indexed_and_read_back(tmp_path: Path) -> None:
    result, results, labels = saved(tmp_path)
    assert sorted(p.name for p in (result / "predictions" / "seq_a").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert results["predictions"]["sequences"] == 2 and results["predictions"]["frames"] == 6
    index = json.loads((result / "predictions" / "index.json").read_text())
    assert len(index["sequences"]["seq_b"]) == 3
    reader = SavedPredictions(result, results)
    for seq_id, frames in labels.items():
        np.testing.assert_array_equal(reader.labels(seq_id, (6, 8)), frames)


def test_missing_frames_and_strays_are_refused_at_finish(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    PredictionWriter(staging)(SimpleNamespace(id="seq_a"), labels_of(0))
    with pytest.raises(DataError, match="3 frames, expected 4"):
        finish_staging(staging, {"seq_a": 4})
    with pytest.raises(DataError, match="not evaluated: seq_a"):
        finish_staging(staging, {})


def test_reading_refuses_what_is_not_the_results(tmp_path: Path) -> None:
    result, results, _ = saved(tmp_path)
    with pytest.raises(DataError, match="--save-predictions"):
        SavedPredictions(result, {})
    png = result / "predictions" / "seq_a" / "00001.png"
    png.write_bytes(encode_labels(np.zeros((6, 8), np.uint8)))
    reader = SavedPredictions(result, results)
    with pytest.raises(DataError, match="differs from its checksum") as excinfo:
        reader.labels("seq_a")
    assert excinfo.value.path == png
    reader.labels("seq_b")  # the other sequence is intact
    with pytest.raises(DataError, match="no saved predictions of sequence seq_c"):
        reader.labels("seq_c")
    with pytest.raises(DataError, match="the set's frames are 9x6"):
        reader.labels("seq_b", (6, 9))
    index = result / "predictions" / "index.json"
    index.write_text(index.read_text().replace("seq_b", "seq_x"))
    with pytest.raises(DataError, match="not the one results.json records"):
        SavedPredictions(result, results)


def test_stale_staging_of_dead_runs_is_removed(tmp_path: Path) -> None:
    import os

    out = tmp_path / "eval-x"
    dead, alive, rank = staging_folder(out, "999999999"), staging_folder(out, str(os.getpid())), staging_folder(out, "rank1of2")
    for folder in (dead, alive, rank):
        folder.mkdir()
    remove_stale_staging(out)
    assert not dead.exists() and alive.exists() and rank.exists()
