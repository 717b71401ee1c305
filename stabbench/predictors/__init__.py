"""Predictors: the contract a model implements, the loaders behind ``--model``, the built-ins.

The contract. A predictor is any object with ``predict(frames)``: ``frames`` is a NumPy
``uint8`` array ``[B, H, W, 3]`` (RGB) of consecutive frames of one sequence; it returns
per-pixel class probabilities, ``float32 [B, C, H, W]``, or labels, integer ``[B, H, W]``
(any resolution: the benchmark resizes to the frame size). Optional ``reset()`` is called
before each sequence, so stateful video models (which use earlier frames) work. Frames are
always fed in temporal order, one sequence at a time; a call may hold several frames (a
model that wants one at a time sets ``max_batch = 1``). Example, ``mymodels.py``::

    import torch

    class MyModel:                                   # --model mymodels:MyModel
        def __init__(self):
            self.net, self.state = torch.jit.load("net.pt").eval(), None
        def reset(self):                             # optional: a new sequence starts
            self.state = None
        @torch.no_grad()
        def predict(self, frames):                   # uint8 [B, H, W, 3], RGB
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            logits, self.state = self.net(x, self.state)
            return logits.softmax(1).numpy()         # float32 [B, C, H, W]

Model files need no code: ``--model net.pt`` (TorchScript), ``net.pt2`` (``torch.export``),
``net.onnx`` (onnxruntime), ``net.tflite`` (ai-edge-litert), with the pre/post-processing
from the options or ``net.stabbench.json`` beside the file (see :class:`PredictorSpec`);
``builtin:NAME`` gives reference predictors (see :mod:`stabbench.predictors.builtin`).

For the runner::

    loaded = load_predictor(model, overrides=cli_options, allow_pickle=flag)  # .info -> results
    labels, warnings = predict_sequence(loaded.predictor, seq.frames(), spec=loaded.spec,
                                        sequence=seq, batch_size=8)
"""

from stabbench.predictors.builtin import BUILTINS, describe_builtins, mediapipe_model_path
from stabbench.predictors.loaders import (
    LoadedModel,
    OnnxPredictor,
    TflitePredictor,
    TorchPredictor,
    load_predictor,
    prepare_frames,
)
from stabbench.predictors.protocol import (
    SPEC_FILE_SUFFIX,
    Predictor,
    PredictorSpec,
    UnsafeLoadWarning,
    check_finite,
    map_foreground,
    normalize_output,
    predict_sequence,
    spec_file_for,
)

__all__ = [
    "BUILTINS",
    "LoadedModel",
    "OnnxPredictor",
    "Predictor",
    "PredictorSpec",
    "SPEC_FILE_SUFFIX",
    "TflitePredictor",
    "TorchPredictor",
    "UnsafeLoadWarning",
    "check_finite",
    "describe_builtins",
    "load_predictor",
    "map_foreground",
    "mediapipe_model_path",
    "normalize_output",
    "predict_sequence",
    "prepare_frames",
    "spec_file_for",
]
