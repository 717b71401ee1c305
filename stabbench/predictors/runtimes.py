"""Runtimes: a model file or ``nn.Module`` wrapped as a predictor (preprocess, run, postprocess).

Each wrapper takes raw ``uint8`` frames, applies the input side of its :class:`ModelSpec`
(:func:`~stabbench.predictors.spec.prepare_frames`), runs the model in chunks, and returns the
output in NCHW with the spec's activation applied; the sequence runner does the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stabbench.errors import ModelError
from stabbench.predictors.output import finish_output, first_tensor
from stabbench.predictors.spec import ModelSpec, prepare_frames


class ArrayModelPredictor:
    """Base of the model-file wrappers: preprocess, run in chunks, postprocess.

    ``static_batch``: the model only takes exactly this many frames (the last chunk is padded
    by repeating its last frame). ``batch_size``: at most this many frames per model call.
    Subclasses implement ``_run(x: float32 array) -> np.ndarray``.
    """

    format = "model"

    def __init__(self, spec: ModelSpec, *, static_batch: int | None = None, batch_size: int | None = None):
        self.spec = spec
        self.static_batch = static_batch
        self.batch_size = batch_size

    def predict(self, frames: np.ndarray) -> np.ndarray:
        x = prepare_frames(frames, self.spec)
        step = self.static_batch or self.batch_size or len(x)
        outs = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            n = len(chunk)
            if self.static_batch and n < self.static_batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.static_batch - n, axis=0)])
            outs.append(np.asarray(self._run(chunk))[:n])
        return finish_output(np.concatenate(outs) if len(outs) > 1 else outs[0], self.spec.activation, self.spec.layout)

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _torch_output(out: Any) -> np.ndarray:
    """The first tensor of a torch model's output, as a float32 (or integer) NumPy array."""
    out = first_tensor(out)
    if not hasattr(out, "detach"):
        raise ModelError(f"model returned {type(out).__name__}; expected a tensor")
    out = out.detach().cpu()
    if out.is_floating_point() and out.dtype != np.float32:
        out = out.float()
    return out.numpy()


class TorchPredictor(ArrayModelPredictor):
    """An ``nn.Module`` / TorchScript / exported-program module, in eval mode, under ``inference_mode``.

    ``device``: ``cpu``, ``cuda`` or ``cuda:N``. Input is float32 in the spec's layout; the
    output may be a tensor, a tuple/list (first element used) or a dict (``"out"``).
    """

    format = "torch"

    def __init__(self, module: Any, spec: ModelSpec | None = None, *, device: str = "cpu",
                 static_batch: int | None = None, batch_size: int | None = None):
        super().__init__(spec or ModelSpec(), static_batch=static_batch, batch_size=batch_size)
        import torch

        self.device = torch.device(device)
        try:
            module = module.to(self.device)
        except (AttributeError, NotImplementedError, RuntimeError):
            pass  # exported programs are placed at load time
        try:
            module.eval()
        except (AttributeError, NotImplementedError, RuntimeError):
            pass  # torch.export modules refuse .eval(); they keep the mode they were exported in
        self.module = module

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return _torch_output(self.module(torch.from_numpy(x).to(self.device)))


class OnnxPredictor(ArrayModelPredictor):
    """An ONNX model in onnxruntime (first input, first output)."""

    format = "onnx"

    def __init__(self, session: Any, spec: ModelSpec, *, static_batch: int | None = None, batch_size: int | None = None):
        super().__init__(spec, static_batch=static_batch, batch_size=batch_size)
        self.session = session
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.float16 if first.type == "tensor(float16)" else np.float32

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})[0]


class TflitePredictor(ArrayModelPredictor):
    """A TFLite model in ai-edge-litert (first input, first output; float32 input only)."""

    format = "tflite"

    def __init__(self, interpreter: Any, spec: ModelSpec, *, static_batch: int | None = None, batch_size: int | None = None):
        super().__init__(spec, static_batch=static_batch, batch_size=batch_size)
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if tuple(it.get_input_details()[0]["shape"]) != x.shape:
            it.resize_tensor_input(self.input["index"], list(x.shape))
            it.allocate_tensors()
        it.set_tensor(self.input["index"], x)
        it.invoke()
        return it.get_tensor(self.output["index"]).copy()


__all__ = ["ArrayModelPredictor", "OnnxPredictor", "TflitePredictor", "TorchPredictor"]
