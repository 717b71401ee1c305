"""``stabbench video`` end to end on one real DAVIS sequence (camel, 15 frames): annotations as
the reference against the real OSVOS predictions; same bytes twice; the gate refuses to compare
the result with a synthetic one; usage and output errors. ``--visuals`` on a tiny clip: same
bytes twice, visuals.json's shape, the clips in the report, nothing left behind on errors."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, eval_cli, fails, ok, read_csv, results_of, tree_hashes

SEQ = "camel"


@pytest.fixture(scope="module")
def camel(davis_sample: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    work = tmp_path_factory.mktemp("video")
    args = ["video", "-q", "--model", f"predictions:{davis_sample / 'Predictions/osvos-davis2017/480p'},map=foreground",
            "--videos", davis_sample / "JPEGImages/480p" / SEQ, "--annotations", davis_sample / "Annotations/480p",
            "--flow-cache", work / "flow-cache", "--bootstrap", "500", "--leaderboard", work / "lb.csv"]
    ok(cli(*args, "--out", work / "out"))
    return work, args


def test_annotations_are_more_stable_than_osvos_on_camel(camel) -> None:
    work, _ = camel
    results = results_of(work / "out")
    assert results["kind"] == "real-video" and results["reference"]["name"] == "annotations"
    (osvos,) = [r for r in results["overall"] if r["model"] != "annotations"]
    ann = results["metrics"]["annotations"]
    assert 85 < ann["S_boundary"] < 100 and 50 < osvos["coverage_pct"] < 100  # flow fails somewhere: < 100
    assert osvos["S_boundary"] < ann["S_boundary"] and osvos["dS_boundary_hi"] < 0
    assert osvos["S_boundary_verdict"] == "less stable"
    assert osvos["fb_coverage_pct"] >= osvos["coverage_pct"]  # the criterion only removes pixels
    rows = read_csv(work / "out" / "per_video.csv")
    assert {r["video"] for r in rows} == {SEQ} and len(rows) == 2
    board = read_csv(work / "lb.csv")
    assert {r["kind"] for r in board} == {"real-video"} and {r["protocol"] for r in board} == {"real-video"}
    assert results["settings"]["motion_boundary"] == {"alpha": 0.01, "beta": 0.002}
    assert results["settings"]["bootstrap"]["seed"] == 0 and len(results["set"]["videos"][SEQ]["sha256"]) == 64


def test_same_command_same_bytes_and_cache_reused(camel) -> None:
    work, args = camel
    ok(cli(*args, "--out", work / "again", "--no-leaderboard"))
    assert (work / "again" / "results.json").read_bytes() == (work / "out" / "results.json").read_bytes()
    line = fails(cli(*args, "--out", work / "out", "--no-leaderboard"), 4)
    assert "already exists" in line
    before = (work / "lb.csv").read_bytes()
    result = ok(cli(*args, "--out", work / "third"))  # the same rows again: left as they are
    assert result.stderr.count("identical row is already there") == 2 and (work / "lb.csv").read_bytes() == before
    line = fails(cli(*args, "--out", work / "fourth", "--seed", "1"), 4)  # other rows (their seed): before measuring
    assert "already has a row for model" in line and "seed '0' there, '1' now" in line
    assert not (work / "fourth").exists() and (work / "lb.csv").read_bytes() == before


def test_gate_refuses_real_video_against_synthetic(camel, small_set: Path, tmp_path: Path) -> None:
    work, _ = camel
    ok(eval_cli("builtin:oracle", small_set, tmp_path / "syn", "--no-leaderboard", "--no-plot", "--workers", "0"))
    model = json.loads((work / "out" / "results.json").read_text())["overall"][0]["model"]
    for result, baseline in ((work / "out", tmp_path / "syn"), (tmp_path / "syn", work / "out")):
        line = fails(cli("gate", result, "--model", model, "--baseline", baseline, "--allow-different-set"), 3)
        assert "never compared with S on a synthetic set" in line
    # against itself (its own leaderboard row) the gate works, on S_global and S_boundary only
    result = cli("gate", work / "out", "--model", model, "--baseline", work / "lb.csv", "--baseline-model", model)
    assert result.exit_code == 0, result.output
    assert "mIoU_syn" not in result.stdout and "all 2 checks passed" in result.stdout
    fails(cli("gate", work / "out", "--model", model, "--min", "mIoU_syn=50"), 2)


def test_usage_errors(davis_sample: Path, tmp_path: Path) -> None:
    base = ["video", "-q", "--model", "builtin:constant", "--videos", davis_sample / "JPEGImages/480p" / SEQ,
            "--out", tmp_path / "o", "--no-leaderboard"]
    assert "exactly one" in fails(cli(*base), 2)
    assert "exactly one" in fails(cli(*base, "--annotations", tmp_path, "--reference", "builtin:oracle"), 2)
    line = fails(cli(*base, "--annotations", tmp_path / "empty-ann", "--flow-cache", tmp_path / "fc"), 3)
    assert "empty-ann" in line


def test_reference_model_and_a_constant_model(camel, davis_sample: Path) -> None:
    """Against OSVOS as the reference (band on its edges), a constant prediction is trivially more stable."""
    work, _ = camel
    osvos = f"predictions:{davis_sample / 'Predictions/osvos-davis2017/480p'},map=foreground"
    ok(cli("video", "-q", "--model", "builtin:constant", "--reference", osvos, "--videos",
           davis_sample / "JPEGImages/480p" / SEQ, "--flow-cache", work / "flow-cache", "--bootstrap", "200",
           "--no-leaderboard", "--out", work / "ref"))
    results = results_of(work / "ref")
    assert results["reference"]["kind"] == "model" and results["reference"]["name"].startswith("predictions:")
    const = results["metrics"]["builtin:constant,class=0"]
    assert const["S_global"] == const["S_boundary"] == 100.0
    assert const["S_boundary_verdict"] == "more stable" and const["dS_boundary_lo"] > 0


def test_frames_too_small_for_flow(tmp_path: Path) -> None:
    from PIL import Image

    for k in range(2):
        (tmp_path / "v" / "clip").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 8)).save(tmp_path / "v" / "clip" / f"{k:05d}.png")
    line = fails(cli("video", "-q", "--model", "builtin:constant", "--reference", "builtin:constant,class=1",
                     "--videos", tmp_path / "v", "--out", tmp_path / "o", "--no-leaderboard",
                     "--flow-cache", tmp_path / "fc"), 3)
    assert "00000.png" in line and "at least 12x12" in line


# ----------------------------------------------------------------------------- --visuals


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory) -> Path:
    """24x24, 4 frames, the scene moving 1 px right per frame, the model wrong on a few pixels."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny-video")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
    for t in range(4):
        mask = np.zeros((24, 24), np.uint8)
        mask[6:18, 6 + t:14 + t] = 1
        pred = mask.copy()
        pred[rng.integers(0, 24, 6), rng.integers(0, 24, 6)] ^= 1
        for folder, image in (("frames", base[:, 8 - t:32 - t].copy()), ("ann", mask * 255), ("pred", pred)):
            (root / folder / "clip").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / folder / "clip" / f"{t:05d}.png")
    return root


def test_symlinked_folders_of_frames_and_annotations_are_followed(tiny_video: Path, tmp_path: Path) -> None:
    """A dataset symlinked into place: the video folders as links, the masks linked file by file."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip").symlink_to(tiny_video / "frames" / "clip", target_is_directory=True)
    (tmp_path / "ann" / "clip").mkdir(parents=True)
    for mask in sorted((tiny_video / "ann" / "clip").iterdir()):
        (tmp_path / "ann" / "clip" / mask.name).symlink_to(mask)
    common = ["video", "-q", "--model", f"predictions:{tiny_video / 'pred'}", "--flow-cache", tmp_path / "cache",
              "--bootstrap", "200", "--boundary-width", "3", "--no-leaderboard"]
    ok(cli(*common, "--videos", tmp_path / "videos", "--annotations", tmp_path / "ann", "--out", tmp_path / "linked"))
    ok(cli(*common, "--videos", tiny_video / "frames", "--annotations", tiny_video / "ann", "--out", tmp_path / "real"))
    linked, real = results_of(tmp_path / "linked"), results_of(tmp_path / "real")
    assert linked["set"]["videos"] == real["set"]["videos"] and list(linked["set"]["videos"]) == ["clip"]
    assert linked["overall"] == real["overall"] and linked["set"]["sha256"] == real["set"]["sha256"]


def test_models_compared_one_call_at_a_time(tiny_video: Path, tmp_path: Path) -> None:
    """Each call adds its model's row; the reference's row, identical, is there once."""
    lb = tmp_path / "lb.csv"
    common = ["video", "-q", "--videos", tiny_video / "frames", "--annotations", tiny_video / "ann", "--flow-cache",
              tmp_path / "cache", "--bootstrap", "200", "--boundary-width", "3", "--leaderboard", lb]
    pred = f"predictions:{tiny_video / 'pred'}"
    ok(cli(*common, "--model", pred, "--out", tmp_path / "a"))
    second = ok(cli(*common, "--model", "builtin:constant", "--out", tmp_path / "b"))
    assert "annotations: an identical row is already there" in second.stderr
    assert "builtin:constant,class=0: row added" in second.stderr
    rows = read_csv(lb)
    (pred_name,) = set(results_of(tmp_path / "a")["metrics"]) - {"annotations"}
    assert sorted(r["model"] for r in rows) == sorted(["annotations", pred_name, "builtin:constant,class=0"])
    assert len({r["set_sha256"] for r in rows}) == 1  # one measurement
    before = lb.read_bytes()
    # a row with the key of one there but other values is refused: known before measuring ...
    line = fails(cli(*common, "--model", "builtin:constant,class=1", "--seed", "1", "--out", tmp_path / "c"), 4)
    assert "model annotations" in line and "seed '0' there, '1' now" in line and not (tmp_path / "c").exists()
    # ... or known only after measuring (a factory that reads its masks from a file: its code is the same, its
    # output is not): the results are kept, the leaderboard is not touched
    (tmp_path / "reads_masks.py").write_text(READS_MASKS)
    (tmp_path / "masks.txt").write_text(str(tiny_video / "pred"))
    ok(cli(*common, "--model", "reads_masks:model", "--out", tmp_path / "d"))
    before = lb.read_bytes()
    (tmp_path / "masks.txt").write_text(str(tiny_video / "ann"))
    line = fails(cli(*common, "--model", "reads_masks:model", "--out", tmp_path / "e"), 4)
    assert "model reads_masks:model" in line and "S_global" in line and "--replace" in line
    assert lb.read_bytes() == before and (tmp_path / "e" / "results.json").is_file()
    ok(cli(*common, "--model", "reads_masks:model", "--out", tmp_path / "f", "--replace"))
    assert len(read_csv(lb)) == 4 and [r["S_global"] for r in read_csv(lb) if r["model"] == "reads_masks:model"] == [
        "100.0"]


READS_MASKS = """
from pathlib import Path

from stabbench.predictors.precomputed import PrecomputedPredictor


def model():
    return PrecomputedPredictor((Path(__file__).parent / "masks.txt").read_text().strip(), "foreground")
"""


def visuals_args(root: Path, out: Path, *extra) -> list:
    return ["video", "-q", "--model", f"predictions:{root / 'pred'}", "--videos", root / "frames", "--annotations",
            root / "ann", "--flow-cache", root / "cache", "--bootstrap", "200", "--boundary-width", "3",
            "--no-leaderboard", "--out", out, "--visuals", *extra]


def test_visuals_same_bytes_shape_and_report(tiny_video: Path, tmp_path: Path) -> None:
    ok(cli(*visuals_args(tiny_video, tmp_path / "a", "--visuals-compare")))
    ok(cli(*visuals_args(tiny_video, tmp_path / "b", "--visuals-compare")))
    assert tree_hashes(tmp_path / "a") == tree_hashes(tmp_path / "b")  # GIF, MP4, visuals.json, results
    results = results_of(tmp_path / "a")
    doc = json.loads((tmp_path / "a" / "visuals" / "visuals.json").read_text())
    assert doc["kind"] == "stabbench-visuals" and doc["source"] == "real-video" and doc["reference"] == "annotations"
    assert doc["formats"] == ["gif", "mp4"] and doc["boundary_width"] == 3 and doc["result"] == ".."
    rows = {(r["video"], r["model"]): r for r in results["per_video"]}
    assert [(i["video"], i["model"]) for i in doc["items"]] == [("clip", "annotations")] + [
        k for k in rows if k[1] != "annotations"]
    for item in doc["items"]:
        assert item["kind"] == "real-video" and item["frames"] == 4
        row = rows[item["video"], item["model"]]
        assert (item["S_global"], item["S_boundary"]) == (row["S_global"], row["S_boundary"])
        paths = [item["clip_gif"], item["clip_mp4"]] + ([item["compare"]["clip_gif"], item["compare"]["clip_mp4"]]
                                                       if item["compare"] else [])
        for rel in paths:
            assert (tmp_path / "a" / "visuals" / rel).is_file() and rel.startswith("clip/")
    assert not list(tmp_path.glob(".a.visuals-*"))  # the staging folder went into the output
    ok(cli("report", tmp_path / "a", "--out", tmp_path / "r"))
    page = (tmp_path / "r" / "index.html").read_text()
    for item in doc["items"]:
        gif = base64.b64encode((tmp_path / "a" / "visuals" / item["clip_gif"]).read_bytes()).decode()
        assert f"data:image/gif;base64,{gif}" in page
        assert f"<figcaption>clip: {item['model']}, S_global {item['S_global']:.2f}" in page
    (model,) = [i for i in doc["items"] if i["compare"]]
    assert base64.b64encode((tmp_path / "a" / "visuals" / model["compare"]["clip_gif"]).read_bytes()).decode() in page


def test_visuals_errors(tiny_video: Path, tmp_path: Path) -> None:
    ok(cli(*visuals_args(tiny_video, tmp_path / "a", "--visuals-format", "gif")))
    before = tree_hashes(tmp_path / "a")
    items = json.loads((tmp_path / "a" / "visuals" / "visuals.json").read_text())["items"]
    assert {i["clip_mp4"] for i in items} == {None} and not list((tmp_path / "a").rglob("*.mp4"))
    assert "already exists" in fails(cli(*visuals_args(tiny_video, tmp_path / "a")), 4)
    assert tree_hashes(tmp_path / "a") == before and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert "--visuals-format" in fails(cli(*visuals_args(tiny_video, tmp_path / "b", "--visuals-format", "png")), 2)
    args = visuals_args(tiny_video, tmp_path / "b")
    assert "needs --visuals" in fails(cli(*args[:-1], "--visuals-compare"), 2)
    # a failure after the first video's clips were drawn leaves neither the output nor the staging folder
    two = tmp_path / "two"
    for folder in ("frames", "ann", "pred"):
        for name in ("clip", "clip2"):
            shutil.copytree(tiny_video / folder / "clip", two / folder / name)
    (two / "ann" / "clip2" / "00003.png").unlink()
    line = fails(cli(*visuals_args(two, tmp_path / "b")), 3)
    assert "00003.png" in line and "clip2" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "two"]


def test_visuals_of_a_reference_without_edges(tiny_video: Path, tmp_path: Path) -> None:
    """A constant reference has no band: S_boundary is undefined, null in visuals.json (valid JSON)."""
    ok(cli("video", "-q", "--model", "builtin:constant,class=1", "--reference", "builtin:constant", "--videos",
           tiny_video / "frames", "--flow-cache", tiny_video / "cache", "--bootstrap", "200", "--no-leaderboard",
           "--out", tmp_path / "o", "--visuals", "--visuals-format", "gif"))
    text = (tmp_path / "o" / "visuals" / "visuals.json").read_text()
    items = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in visuals.json"))["items"]
    assert [(i["S_boundary"], i["S_global"], i["inconsistent_pixels"]) for i in items] == [(None, 100.0, 0)] * 2
