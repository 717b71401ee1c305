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
            self.net, self.state = torch.export.load("net.pt2").module(), None
        def reset(self):                             # optional: a new sequence starts
            self.state = None
        @torch.no_grad()
        def predict(self, frames):                   # uint8 [B, H, W, 3], RGB
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            logits, self.state = self.net(x, self.state)
            return logits.softmax(1).numpy()         # float32 [B, C, H, W]

Model files need no code: ``--model net.pt2`` (``torch.export``), ``net.onnx``
(onnxruntime), ``net.tflite`` (ai-edge-litert), ``net.pt`` (legacy TorchScript, read only),
with the pre/post-processing from the options or ``net.stabbench.json`` beside the file (see
:class:`ModelSpec`); ``builtin:NAME`` gives reference predictors, ``arch:NAME`` a built-in
architecture (with ``--weights``).

Modules, in dependency order (no module imports one below it):

=============  ===========================================================================
spec           :class:`ModelSpec`, the spec file, :func:`prepare_frames` (the input side)
output         output normalisation: scores / labels -> labels of the frame size
contract       the :class:`Predictor` protocol and :func:`predict_sequence`
runtimes       wrappers: ``nn.Module`` / ONNX / TFLite as predictors
formats        model files -> runnable objects (+ the ``.pt2`` safety scan)
oracles        ground-truth reference predictors
mediapipe      MediaPipe's selfie segmenter
registry       ``builtin:`` names, their parameters, the reference parser
precomputed    ``predictions:DIR``: masks produced elsewhere, one PNG per frame
resolver       ``--model`` -> a predictor (eval) or an ``nn.Module`` (finetune)
=============  ===========================================================================

For the runner::

    loaded = load_predictor(model, overrides=cli_options, allow_pickle=flag)  # .info -> results
    labels, non_finite = predict_sequence(loaded.predictor, seq.frames(), spec=loaded.spec,
                                          sequence=seq, batch_size=8)
"""

from stabbench.predictors.contract import Predictor, predict_sequence
from stabbench.predictors.formats import UnsafeLoadWarning
from stabbench.predictors.mediapipe import mediapipe_model_path
from stabbench.predictors.output import NonFinite, check_finite, map_foreground, normalize_output
from stabbench.predictors.registry import BUILTINS, describe_builtins
from stabbench.predictors.resolver import LoadedModel, TrainableModel, load_predictor, load_trainable
from stabbench.predictors.runtimes import OnnxPredictor, TflitePredictor, TorchPredictor
from stabbench.predictors.spec import SPEC_FILE_SUFFIX, ModelSpec, prepare_frames, spec_file_for

__all__ = [
    "BUILTINS",
    "LoadedModel",
    "ModelSpec",
    "NonFinite",
    "OnnxPredictor",
    "Predictor",
    "SPEC_FILE_SUFFIX",
    "TflitePredictor",
    "TorchPredictor",
    "TrainableModel",
    "UnsafeLoadWarning",
    "check_finite",
    "describe_builtins",
    "load_predictor",
    "load_trainable",
    "map_foreground",
    "mediapipe_model_path",
    "normalize_output",
    "predict_sequence",
    "prepare_frames",
    "spec_file_for",
]
