"""``--model predictions:DIR`` (stabbench.predictors.precomputed): masks written elsewhere give
the numbers of the predictor that wrote them; missing, extra, mis-sized and unreadable masks
are exit 3 naming the file; the map option; palette PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stabbench.errors import DataError, UsageError
from stabbench.predictors import load_predictor, predict_sequence
from stabbench.predictors.precomputed import PrecomputedPredictor, mask_name, mask_path, predictions_digest
from stabbench.predictors.resolver import parse_model_ref
from stabbench.synth import open_set
from tests.helpers import eval_cli, fails, ok, results_of


def write_predictions(set_dir: Path, model: str, out: Path) -> Path:
    """Run ``model`` over the set and write its labels in the predictions layout (gray PNGs)."""
    loaded = load_predictor(model)
    for seq in open_set(set_dir):
        labels, _ = predict_sequence(loaded.predictor, seq.frames(), spec=loaded.spec, sequence=seq)
        for k, label in enumerate(labels):
            path = mask_path(out, seq.id, mask_name(k))
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label.astype(np.uint8), mode="L").save(path)
    return out


@pytest.fixture(scope="module")
def flicker_dir(small_set: Path, tmp_path_factory) -> Path:
    return write_predictions(small_set, "builtin:flicker,rate=0.2,seed=3", tmp_path_factory.mktemp("pred") / "flicker")


def first_sequence(set_dir: Path) -> str:
    return open_set(set_dir)[0].id


@pytest.mark.parametrize("model", ["builtin:oracle", "builtin:flicker,rate=0.2,seed=3"])
def test_eval_of_written_predictions_equals_the_predictor(small_set: Path, tmp_path: Path, model: str,
                                                          flicker_dir: Path) -> None:
    preds = flicker_dir if "flicker" in model else write_predictions(small_set, model, tmp_path / "pred")
    ok(eval_cli(model, small_set, tmp_path / "direct", "--no-leaderboard", "--no-plot", "--workers", "0"))
    ok(eval_cli(f"predictions:{preds}", small_set, tmp_path / "pre", "--no-leaderboard", "--no-plot", "--workers", "0"))
    direct, pre = results_of(tmp_path / "direct"), results_of(tmp_path / "pre")
    for key in ("S_global", "S_boundary", "mIoU_syn", "tracked", "boundary_tracked"):
        assert pre["metrics"][key] == direct["metrics"][key], key
    assert pre["per_sequence"] == direct["per_sequence"]
    if "flicker" in model:
        assert pre["metrics"]["S_boundary"] < 95  # a non-trivial case, not S = 100 everywhere
    assert pre["model"]["format"] == "predictions"
    assert pre["model"]["sha256"] == predictions_digest(preds)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _break_missing(root: Path, seq: str) -> Path:
    path = mask_path(root, seq, mask_name(2))
    path.unlink()
    return path


def _break_extra(root: Path, seq: str) -> Path:
    path = mask_path(root, seq, mask_name(7))
    shutil.copy(mask_path(root, seq, mask_name(0)), path)
    return path


def _break_size(root: Path, seq: str) -> Path:
    path = mask_path(root, seq, mask_name(1))
    Image.fromarray(np.zeros((5, 7), np.uint8), mode="L").save(path)
    return path


def _break_bytes(root: Path, seq: str) -> Path:
    path = mask_path(root, seq, mask_name(3))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return path


def _break_mode(root: Path, seq: str) -> Path:
    path = mask_path(root, seq, mask_name(0))
    Image.new("RGB", Image.open(path).size).save(path)
    return path


@pytest.mark.parametrize("breaker, words", [(_break_missing, "not found"), (_break_extra, "extra mask"),
                                            (_break_size, "is 7x5, the frames are"), (_break_bytes, "cannot decode"),
                                            (_break_mode, "mode RGB")])
def test_bad_masks_are_exit_3_naming_the_file(small_set: Path, flicker_dir: Path, tmp_path: Path, breaker, words) -> None:
    root = _copy(flicker_dir, tmp_path)
    bad = breaker(root, first_sequence(small_set))
    line = fails(eval_cli(f"predictions:{root}", small_set, tmp_path / "out", "--no-leaderboard", "--workers", "0"), 3)
    assert str(bad) in line and words in line, line
    assert not (tmp_path / "out").exists()


def test_missing_sequence_folder_and_missing_dir(small_set: Path, flicker_dir: Path, tmp_path: Path) -> None:
    root = _copy(flicker_dir, tmp_path)
    seq = first_sequence(small_set)
    shutil.rmtree(root / seq)
    line = fails(eval_cli(f"predictions:{root}", small_set, tmp_path / "out", "--no-leaderboard", "--workers", "0"), 3)
    assert str(root / seq) in line and "no predictions for sequence" in line
    line = fails(eval_cli(f"predictions:{tmp_path / 'nowhere'}", small_set, tmp_path / "out", "--no-leaderboard"), 3)
    assert "predictions folder not found" in line


def test_map_foreground_and_palette(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2], [3, 255, 0]], np.uint8)
    image = Image.fromarray(values, mode="P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])  # colours that are not the indices
    mask_path(tmp_path, "seq", mask_name(0)).parent.mkdir()
    image.save(mask_path(tmp_path, "seq", mask_name(0)))
    seq = type("Seq", (), {"id": "seq", "num_frames": 1})()
    frames = np.zeros((1, 2, 3, 3), np.uint8)
    for mapping, want in (("keep", values), ("foreground", (values != 0).astype(np.uint8))):
        pred = PrecomputedPredictor(tmp_path, mapping)
        pred.begin_sequence(seq)
        np.testing.assert_array_equal(pred.predict(frames)[0], want)
    with pytest.raises(UsageError, match="map='objects'"):
        PrecomputedPredictor(tmp_path, "objects")
    with pytest.raises(UsageError, match="unknown parameter 'rate'"):
        load_predictor(f"predictions:{tmp_path},rate=1")


def test_reference_parsing_and_refused_sequence_ids(tmp_path: Path) -> None:
    ref = parse_model_ref(f"predictions:{tmp_path},map=foreground")
    assert (ref.kind, ref.name, ref.params) == ("predictions", str(tmp_path), (("map", "foreground"),))
    pred = PrecomputedPredictor(tmp_path)
    for bad in ("..", "a/b"):
        with pytest.raises(DataError, match="not a folder name"):
            pred.begin_sequence(type("Seq", (), {"id": bad, "num_frames": 1})())


def test_frame_names_of_a_real_video_and_digest_tracks_content(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    for name, value in (("f1", 1), ("f2", 0)):
        Image.fromarray(np.full((4, 4), value, np.uint8), mode="L").save(folder / f"{name}.png")
    seq = type("Seq", (), {"id": "clip", "num_frames": 2, "frame_names": ["f1", "f2"]})()
    pred = PrecomputedPredictor(tmp_path)
    pred.begin_sequence(seq)
    got = pred.predict(np.zeros((2, 4, 4, 3), np.uint8))
    assert got[:, 0, 0].tolist() == [1, 0]
    before = predictions_digest(tmp_path)
    Image.fromarray(np.full((4, 4), 2, np.uint8), mode="L").save(folder / "f2.png")
    assert predictions_digest(tmp_path) != before


def test_a_mask_linking_out_of_its_folder_is_refused_a_linked_sequence_folder_is_not(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(np.ones((4, 4), np.uint8), mode="L").save(outside / "secret.png")
    (tmp_path / "real" / "clip").mkdir(parents=True)
    Image.fromarray(np.ones((4, 4), np.uint8), mode="L").save(tmp_path / "real" / "clip" / "00000.png")
    (tmp_path / "preds").mkdir()
    (tmp_path / "preds" / "clip").symlink_to(tmp_path / "real" / "clip", target_is_directory=True)
    seq = type("Seq", (), {"id": "clip", "num_frames": 2})()
    frames = np.zeros((1, 4, 4, 3), np.uint8)
    pred = PrecomputedPredictor(tmp_path / "preds")
    (tmp_path / "real" / "clip" / "00001.png").symlink_to(outside / "secret.png")
    pred.begin_sequence(seq)
    assert pred.predict(frames)[0].sum() == 16  # frame 0 through the linked sequence folder
    with pytest.raises(DataError, match="00001.png: mask is a link to a file outside its folder"):
        pred.predict(frames)


def test_the_users_own_annotations_follow_links_out_of_their_folder(tmp_path: Path) -> None:
    """``confined=False`` (``stabbench video --annotations``): a dataset linked file by file reads as it is."""
    (tmp_path / "real" / "clip").mkdir(parents=True)
    (tmp_path / "linked" / "clip").mkdir(parents=True)
    for k in range(2):
        Image.fromarray(np.full((4, 4), k, np.uint8), mode="L").save(tmp_path / "real" / "clip" / f"{k:05d}.png")
        (tmp_path / "linked" / "clip" / f"{k:05d}.png").symlink_to(tmp_path / "real" / "clip" / f"{k:05d}.png")
    seq = type("Seq", (), {"id": "clip", "num_frames": 2})()
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    own = PrecomputedPredictor(tmp_path / "linked", "foreground", what="annotations", confined=False)
    own.begin_sequence(seq)
    assert own.predict(frames)[:, 0, 0].tolist() == [0, 1]
    stranger = PrecomputedPredictor(tmp_path / "linked")  # predictions from elsewhere stay confined
    stranger.begin_sequence(seq)
    with pytest.raises(DataError, match="link to a file outside its folder"):
        stranger.predict(frames)
