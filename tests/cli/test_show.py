"""``stabbench show``: clips, heatmaps and A|B from saved predictions; refuses what does not belong together."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import cli, eval_cli, fails, ok, tree_hashes

ITEM_KEYS = {"sequence", "perturbation", "severity", "S_global", "S_boundary", "clip_gif", "clip_mp4", "heatmap", "compare"}


@pytest.fixture(scope="module")
def evals(tmp_path_factory, small_set: Path) -> dict[str, Path]:
    """Evals with saved predictions on ``small_set`` (flicker in the band, random flips), and one without."""
    work = tmp_path_factory.mktemp("show")
    outs = {"a": work / "eval-a", "b": work / "eval-b", "bare": work / "eval-bare"}
    common = ("--no-leaderboard", "--no-plot")
    ok(eval_cli("builtin:flicker,rate=0.1", small_set, outs["a"], *common, "--save-predictions"))
    ok(eval_cli("builtin:random-flip,rate=0.02", small_set, outs["b"], *common, "--save-predictions"))
    ok(eval_cli("builtin:oracle", small_set, outs["bare"], *common))
    return outs


def show(*args) -> object:
    return cli("show", "-q", *args)


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_default_is_the_worst_three_by_s_boundary(evals: dict[str, Path], tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "vis"
    ok(show(evals["a"], "--out", out))
    doc = json.loads((out / "visuals.json").read_text())
    assert (doc["format_version"], doc["kind"]) == (1, "stabbench-visuals")
    assert doc["model"] == "builtin:flicker,band=15,rate=0.1,seed=0" and doc["set"] == str(small_set)
    assert (out / doc["result"]).resolve() == evals["a"].resolve()
    rows = results(evals["a"])["per_sequence"]
    worst = sorted(rows, key=lambda r: (math.inf if r["S_boundary"] is None else r["S_boundary"], r["sequence"]))[:3]
    assert [item["sequence"] for item in doc["items"]] == [r["sequence"] for r in worst]
    for item, row in zip(doc["items"], worst):
        assert set(item) >= ITEM_KEYS and item["compare"] is None
        assert (item["S_boundary"], item["perturbation"], item["severity"]) == (row["S_boundary"], row["perturbation"], row["severity"])
        with Image.open(out / item["clip_gif"]) as gif:
            assert gif.n_frames == 4 and gif.size == (320, 240)
        assert (out / item["clip_mp4"]).stat().st_size > 0
        heatmap = cv2.imread(str(out / item["heatmap"]))
        assert heatmap.shape[0] == 240 and heatmap.shape[1] > 320


def test_heatmap_and_clip_are_the_pure_functions_on_the_saved_predictions(evals: dict[str, Path], tmp_path: Path,
                                                                          small_set: Path) -> None:
    from stabbench.report.predictions import SavedPredictions
    from stabbench.synth import open_set
    from stabbench.visuals import draw_heatmap, render_clip, sequence_flicker, source_flicker_rate

    out = tmp_path / "vis"
    ok(show(evals["a"], "--out", out, "--sequences", "seq_00002", "--format", "gif"))
    item = json.loads((out / "visuals.json").read_text())["items"][0]
    assert item["clip_mp4"] is None and not (out / "seq_00002" / "clip.mp4").exists()
    seq = open_set(small_set)[2]
    frames, masks = seq.frames(), seq.masks()
    labels = SavedPredictions(evals["a"], results(evals["a"])).labels("seq_00002")
    seen = sequence_flicker(labels, masks, seq.pairs())
    assert seen.inconsistent.sum() == item["inconsistent_pixels"] > 0
    rate, _ = source_flicker_rate(seen.inconsistent, seen.tracked, seq.trajectory.affines, seq.shape)
    written = cv2.cvtColor(cv2.imread(str(out / item["heatmap"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, draw_heatmap(seq.source_image(), rate, title="flicker rate"))
    clip = render_clip(frames, labels, seen.flicker, seen.band)
    with Image.open(out / item["clip_gif"]) as gif:
        gif.seek(2)
        decoded = np.asarray(gif.convert("RGB")).astype(int)
    assert np.abs(decoded - clip[2]).mean() < 6  # quantised to 256 colours
    red = (decoded[..., 0] > 200) & (decoded[..., 1] < 60) & (decoded[..., 2] < 60)
    assert red[seen.flicker[2]].all()  # the flicker red is a colour the GIF palette keeps exactly


def test_compare_renders_a_labelled_a_b_clip(evals: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "vis"
    ok(show(evals["a"], "--compare", evals["b"], "--worst", "1", "--out", out))
    doc = json.loads((out / "visuals.json").read_text())
    (item,) = doc["items"]
    assert item["compare"]["model_b"] == "builtin:random-flip,rate=0.02,seed=0" == doc["model_b"]
    b_row = next(r for r in results(evals["b"])["per_sequence"] if r["sequence"] == item["sequence"])
    assert item["compare"]["S_boundary_b"] == b_row["S_boundary"]
    with Image.open(out / item["compare"]["clip_gif"]) as gif:
        assert gif.n_frames == 4 and gif.size == (2 * 320 + 4, 240 + 24)
    assert (out / item["compare"]["clip_mp4"]).is_file()


def test_same_command_same_bytes(evals: dict[str, Path], tmp_path: Path) -> None:
    for name in ("one", "two"):
        ok(show(evals["a"], "--compare", evals["b"], "--worst", "2", "--out", tmp_path / name / "vis"))
    assert tree_hashes(tmp_path / "one") == tree_hashes(tmp_path / "two")  # gif, mp4 (this ffmpeg build), png, json


def test_default_out_and_overwrite(evals: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    result = tmp_path / "eval"
    shutil.copytree(evals["a"], result)
    ok(show(result, "--worst", "1", "--format", "gif"))
    assert json.loads((result / "visuals" / "visuals.json").read_text())["result"] == ".."
    line = fails(show(result, "--worst", "2"), 4)
    assert "visuals: already exists; pass --overwrite" in line
    assert len(json.loads((result / "visuals" / "visuals.json").read_text())["items"]) == 1  # untouched
    ok(show(result, "--worst", "2", "--overwrite"))
    assert len(json.loads((result / "visuals" / "visuals.json").read_text())["items"]) == 2
    assert sorted(p.name for p in result.iterdir() if p.name.startswith(".")) == []


def test_without_saved_predictions_it_says_how_to_get_them(evals: dict[str, Path], tmp_path: Path) -> None:
    line = fails(show(evals["bare"], "--out", tmp_path / "vis"), 3)
    assert "eval-bare" in line and "--save-predictions" in line
    line = fails(show(evals["a"], "--compare", evals["bare"], "--out", tmp_path / "vis"), 3)
    assert "--save-predictions" in line
    assert not (tmp_path / "vis").exists()


def test_another_set_is_refused(evals: dict[str, Path], tmp_path: Path, shapes_set: Path) -> None:
    line = fails(show(evals["a"], "--set", shapes_set, "--out", tmp_path / "vis"), 3)
    assert str(shapes_set) in line and "not the set" in line
    other = tmp_path / "eval-other"
    ok(eval_cli("builtin:oracle", shapes_set, other, "--no-leaderboard", "--no-plot", "--save-predictions"))
    line = fails(show(evals["a"], "--compare", other, "--out", tmp_path / "vis"), 3)
    assert "another set" in line
    assert not (tmp_path / "vis").exists()


def test_a_changed_prediction_is_refused(evals: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    result = tmp_path / "eval"
    shutil.copytree(evals["a"], result)
    png = result / "predictions" / "seq_00001" / "00002.png"
    png.write_bytes((result / "predictions" / "seq_00001" / "00000.png").read_bytes())
    line = fails(show(result, "--sequences", "seq_00001"), 3)
    assert "seq_00001/00002.png" in line and "checksum" in line
    assert not (result / "visuals").exists()


@pytest.mark.parametrize("args, words", [
    (("--sequences", "seq_99999"), "seq_99999 not in the result"),
    (("--sequences", "seq_00001", "--worst", "2"), "give one of them"),
    (("--format", "gif,avi"), "avi"),
])
def test_usage_errors(evals: dict[str, Path], tmp_path: Path, args, words) -> None:
    assert words in fails(show(evals["a"], "--out", tmp_path / "vis", *args), 2)


def test_model_renders_what_the_saved_predictions_render(evals: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "eval-flicker-bare"
    shutil.copytree(evals["a"], bare)
    shutil.rmtree(bare / "predictions")
    results_a = results(evals["a"])
    del results_a["predictions"]
    (bare / "results.json").write_text(json.dumps(results_a))  # the same result, without saved predictions
    assert "--save-predictions" in fails(show(bare, "--out", tmp_path / "x"), 3)
    ok(show(bare, "--model", "builtin:flicker,rate=0.1", "--worst", "2", "--out", tmp_path / "ran" / "vis"))
    ok(show(evals["a"], "--worst", "2", "--out", tmp_path / "saved" / "vis"))
    ran, saved = tree_hashes(tmp_path / "ran"), tree_hashes(tmp_path / "saved")
    ran.pop("vis/visuals.json"), saved.pop("vis/visuals.json")  # they name different result folders
    assert ran == saved
    line = fails(show(bare, "--model", "builtin:flicker,rate=0.2", "--out", tmp_path / "y"), 3)
    assert "not the model of this result (id differs" in line
