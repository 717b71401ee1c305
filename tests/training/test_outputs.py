"""stabbench.training.outputs with an imported TFLite model: the files a run writes for
``builtin:mediapipe-selfie`` (before any training step) evaluate like the original TFLite model
run by LiteRT, and the exported ``model.pt2`` / ``model.onnx`` compute the module's logits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import cli, davis_subset, ok, results_of

MISSING = [m for m in ("ai_edge_litert", "mediapipe", "onnxruntime") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")]
DAVIS_OPTIONS = {"split": None, "year": None, "davis_objects": "merge", "frames_per_sequence": 1, "max_images": None,
                 "images": "images", "masks": "masks", "mask_mode": "binary", "num_images": None}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, davis_sample: Path) -> dict:
    """``write_model`` of a run of builtin:mediapipe-selfie built on two DAVIS sequences, no step
    taken, and a small synthetic set (2 sequences x 4 frames) of the dancer."""
    from stabbench.cli.finetune import build_train_config
    from stabbench.training import outputs
    from stabbench.training.run import build_run

    work = tmp_path_factory.mktemp("selfie-export")
    root = davis_subset(work / "davis", ("dance-twirl", "scooter-black"), davis_sample)
    config = build_train_config("davis", str(root), DAVIS_OPTIONS, model="builtin:mediapipe-selfie",
                                out=str(work / "run"), quiet=True)
    run = build_run(config, work / "run")
    (work / "run").mkdir(exist_ok=True)
    written = outputs.write_model(run, onnx=True)
    subset = davis_subset(work / "davis-one", ("dance-twirl",), davis_sample)
    ok(cli("synth", "-q", "--dataset", "davis", "--root", subset, "--frames", "4", "--severities", "2,5",
           "--perturbations", "translation,rotation", "--protocol", "grid", "--out", work / "set"))
    return {"work": work, "run": run, "out": work / "run", "set": work / "set", "written": written}


def test_the_run_takes_the_models_own_input_convention(untrained) -> None:
    run = untrained["run"]
    assert run.input_size == (256, 256)  # the TFLite input size, not the first image's 480x854
    spec = json.loads((untrained["out"] / "model.stabbench.json").read_text())
    assert spec["input_size"] == [256, 256] and spec["layout"] == "nchw" and spec["activation"] == "softmax"
    assert spec["num_classes"] == 2 and spec["scale"] == pytest.approx(1 / 255) and spec["mean"] == [0, 0, 0]
    assert run.model_info["kind"] == "tflite-import" and run.model_info["id"] == "builtin:mediapipe-selfie,variant=general"
    assert run.model_info["head"] == "binary_logits" and len(run.model_info["sha256"]) == 64
    assert run.model_info["importer"]["ai-edge-litert"] is not None


def test_exports_compute_the_modules_logits(untrained) -> None:
    import onnxruntime as ort

    out, module = untrained["out"], untrained["run"].model.eval()
    x = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = module(x)
    program = torch.export.load(str(out / "model.pt2")).module()
    torch.testing.assert_close(program(x), want, rtol=0, atol=1e-5)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"frames": x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-3)  # float32 logits reach +-300 on noise
    probs = torch.from_numpy(got).softmax(1)
    assert (probs - want.softmax(1)).abs().max() < 1e-5


def test_eval_of_the_export_equals_the_builtin(untrained) -> None:
    """Before any training step, ``eval --model OUT/model.pt2`` (torch, 2-class softmax) and
    ``eval --model builtin:mediapipe-selfie`` (LiteRT, one thresholded channel) agree: the
    metrics within 0.05 points (probabilities differ by float32 round-off, ~1e-4)."""
    work, set_dir = untrained["work"], untrained["set"]
    ok(cli("eval", "-q", "--model", untrained["out"] / "model.pt2", "--set", set_dir, "--out", work / "eval-pt2",
           "--no-plot", "--leaderboard", work / "lb.csv"))
    ok(cli("eval", "-q", "--model", "builtin:mediapipe-selfie", "--set", set_dir, "--out", work / "eval-builtin",
           "--no-plot", "--leaderboard", work / "lb.csv"))
    mine, theirs = results_of(work / "eval-pt2"), results_of(work / "eval-builtin")
    assert mine["model"]["preprocess"]["input_size"] == theirs["model"]["preprocess"]["input_size"] == [256, 256]
    assert mine["metrics"]["sequences"] == theirs["metrics"]["sequences"] == 4
    for key in ("S_global", "S_boundary", "mIoU_syn"):
        assert abs(mine["metrics"][key] - theirs["metrics"][key]) <= 0.05, (key, mine["metrics"][key], theirs["metrics"][key])
    assert 40.0 < theirs["metrics"]["mIoU_syn"] < 100.0  # a real segmentation, not two empty masks
