"""``stabbench eval --save-predictions``: one PNG per frame, the predictor's labels, published with the results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from stabbench.fileio import sha256_bytes
from tests.helpers import eval_cli, fails, ok, tree_hashes

MODEL = "builtin:flicker,rate=0.1"


def predictor_labels(set_dir: Path) -> dict[str, np.ndarray]:
    """Every sequence's labels straight from the predictor (no CLI, no files)."""
    from stabbench.predictors import load_predictor, predict_sequence
    from stabbench.synth import open_set

    dataset = open_set(set_dir)
    loaded = load_predictor(MODEL, num_classes=len(dataset.classes))
    out = {}
    for seq in dataset:
        out[seq.id], _ = predict_sequence(loaded.predictor, seq.frames(), spec=loaded.spec, sequence=seq)
    return out


def test_one_png_per_frame_holding_the_predictors_labels(small_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    ok(eval_cli(MODEL, small_set, out, "--no-leaderboard", "--no-plot", "--save-predictions"))
    record = json.loads((out / "results.json").read_text())["predictions"]
    index = (out / "predictions" / "index.json").read_bytes()
    assert record["index_sha256"] == sha256_bytes(index) and record["folder"] == "predictions"
    digests = json.loads(index)["sequences"]
    want = predictor_labels(small_set)
    assert sorted(digests) == sorted(want) and record["frames"] == sum(len(v) for v in want.values())
    for seq_id, labels in want.items():
        files = sorted((out / "predictions" / seq_id).iterdir())
        assert [p.name for p in files] == [f"{k:05d}.png" for k in range(len(labels))]
        for k, path in enumerate(files):
            assert sha256_bytes(path.read_bytes()) == digests[seq_id][k]
            np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), labels[k])
    assert [p.name for p in tmp_path.iterdir()] == ["eval"]  # no staging folder left


def test_saved_predictions_rescore_to_the_same_metrics_without_the_model(small_set: Path, tmp_path: Path) -> None:
    ok(eval_cli(MODEL, small_set, tmp_path / "eval", "--no-leaderboard", "--no-plot", "--save-predictions"))
    ok(eval_cli(f"predictions:{tmp_path / 'eval' / 'predictions'}", small_set, tmp_path / "again", "--no-leaderboard",
                "--no-plot"))
    first, again = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("eval", "again"))
    assert again["metrics"] == first["metrics"] and again["per_sequence"] == first["per_sequence"]


@pytest.mark.slow
def test_workers_save_the_same_bytes(small_set: Path, tmp_path: Path) -> None:
    ok(eval_cli(MODEL, small_set, tmp_path / "serial", "--no-leaderboard", "--no-plot", "--save-predictions"))
    ok(eval_cli(MODEL, small_set, tmp_path / "workers", "--no-leaderboard", "--no-plot", "--save-predictions",
                "--workers", "2"))
    assert tree_hashes(tmp_path / "serial") == tree_hashes(tmp_path / "workers")


def test_without_the_option_nothing_is_saved(small_set: Path, tmp_path: Path) -> None:
    ok(eval_cli(MODEL, small_set, tmp_path / "eval", "--no-leaderboard", "--no-plot"))
    assert not (tmp_path / "eval" / "predictions").exists()
    assert "predictions" not in json.loads((tmp_path / "eval" / "results.json").read_text())


def test_a_failed_run_leaves_no_predictions(small_set: Path, tmp_path: Path) -> None:
    broken = tmp_path / "set"
    shutil.copytree(small_set, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["sequences"][3]["frames"][0]["mask_pixels_sha256"] = "0" * 64  # sequence 3 fails after 0..2 were saved
    (broken / "manifest.json").write_text(json.dumps(manifest))
    line = fails(eval_cli(MODEL, broken, tmp_path / "eval", "--no-leaderboard", "--no-plot", "--save-predictions"), 3)
    assert "seq_00003" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # neither the output nor a staging folder
