"""Load ``--model``: model files, Python entries and built-ins, behind one :class:`Predictor` API.

``--model`` forms, tried in this order:

==============================  ==================================================================
``builtin:NAME[,k=v,...]``      a built-in predictor (:mod:`stabbench.predictors.builtin`)
``path.pt`` / ``.pth`` / ``.ts``  TorchScript archive (``torch.jit.save``). A ``.pt``/``.pth`` that
                                is not TorchScript is opened with ``torch.load(weights_only=True)``:
                                a state dict is refused (it has no architecture); a pickled whole
                                ``nn.Module`` is refused unless ``allow_pickle=True`` (warns:
                                unpickling runs arbitrary code).
``path.pt2``                    ``torch.export`` program (``torch.export.save``); refused without
                                ``allow_pickle`` if it holds pickled payloads (tensor subclasses,
                                opaque objects, sample inputs that fail ``weights_only``) or
                                compiled AOTInductor code
``path.onnx``                   ONNX model, run by onnxruntime (extra ``stabbench[onnx]``)
``path.tflite``                 TFLite model, run by ai-edge-litert (extra ``stabbench[tflite]``)
``package.module:factory``      a Python callable (no arguments) returning a predictor or an
                                ``nn.Module``; the current directory is added to ``sys.path``
==============================  ==================================================================

Pre/post-processing (:class:`PredictorSpec`) is merged from, later winning: defaults <
what the model says (static input shape and layout of ONNX/TFLite/``.pt2``; a built-in's own
settings) < the JSON file ``<dir>/<stem>.stabbench.json`` beside a model file (or the file
given as ``spec_file``) < ``overrides`` (the CLI options). The result, with the source of
each setting, is recorded in ``info``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from stabbench.errors import ModelError, UsageError
from stabbench.predictors.protocol import (
    PredictorSpec,
    UnsafeLoadWarning,
    read_spec_file,
    resolve_spec,
    spec_file_for,
)

TORCH_SUFFIXES = (".pt", ".pth", ".ts")
MODEL_SUFFIXES = (*TORCH_SUFFIXES, ".pt2", ".onnx", ".tflite")
ENTRY_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
INPUT_FIELDS = ("input_size", "resize", "scale", "mean", "std", "channels", "layout")


class LoadedModel(NamedTuple):
    """``predictor, info = load_predictor(...)``; ``.spec`` is the resolved :class:`PredictorSpec`."""

    predictor: Any
    info: dict

    @property
    def spec(self) -> PredictorSpec:
        return PredictorSpec.from_dict(self.info["preprocess"])


# ----------------------------------------------------------------------------- array models


def prepare_frames(frames: np.ndarray, spec: PredictorSpec) -> np.ndarray:
    """``uint8 (B, H, W, 3)`` RGB -> float32 model input: resize, channel order, scale/mean/std, layout."""
    x = frames.astype(np.float32)
    size = spec.target_size
    if size is not None and x.shape[1:3] != tuple(size):
        import cv2

        x = np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in x])
    if spec.channels == "bgr":
        x = x[..., ::-1]
    x = (x * np.float32(spec.scale) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def finish_output(out: np.ndarray, spec: PredictorSpec) -> np.ndarray:
    """Raw model output -> the contract: 4-D outputs to NCHW, activation on float scores."""
    if out.ndim == 4 and spec.layout == "nhwc":
        out = out.transpose(0, 3, 1, 2)
    if out.ndim == 4 and np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float32, copy=False)
        if spec.activation == "softmax":
            with np.errstate(invalid="ignore", over="ignore"):
                e = np.exp(out - out.max(axis=1, keepdims=True))
                out = e / e.sum(axis=1, keepdims=True)
        elif spec.activation == "sigmoid":
            with np.errstate(over="ignore"):
                out = 1.0 / (1.0 + np.exp(-out))
    return out


class ArrayModelPredictor:
    """Base of the model-file wrappers: preprocess, run in chunks, postprocess.

    ``static_batch``: the model only takes exactly this many frames (the last chunk is padded
    by repeating its last frame). ``batch_size``: at most this many frames per model call.
    Subclasses implement ``_run(x: float32 array) -> np.ndarray``.
    """

    format = "model"

    def __init__(self, spec: PredictorSpec, *, static_batch: int | None = None, batch_size: int | None = None):
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
        return finish_output(np.concatenate(outs) if len(outs) > 1 else outs[0], self.spec)

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _torch_output(out: Any) -> np.ndarray:
    """Unwrap ``{"out": t}`` (torchvision), a single-entry dict or a tuple/list (first element)."""
    if isinstance(out, Mapping):
        if "out" in out:
            out = out["out"]
        elif len(out) == 1:
            out = next(iter(out.values()))
        else:
            raise ModelError(f"model returned a dict with keys {sorted(out)}; expected a tensor or a dict with 'out'")
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
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

    def __init__(self, module: Any, spec: PredictorSpec | None = None, *, device: str = "cpu",
                 static_batch: int | None = None, batch_size: int | None = None):
        super().__init__(spec or PredictorSpec(), static_batch=static_batch, batch_size=batch_size)
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

    def __init__(self, session: Any, spec: PredictorSpec, *, static_batch: int | None = None, batch_size: int | None = None):
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

    def __init__(self, interpreter: Any, spec: PredictorSpec, *, static_batch: int | None = None, batch_size: int | None = None):
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


# ----------------------------------------------------------------------------- helpers


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def shape_defaults(shape: Sequence[Any]) -> tuple[dict[str, Any], int | None]:
    """What a model's 4-D input shape implies: ``({"layout", "input_size"}, static batch)``.

    Dimensions that are not positive ints (symbolic, ``None``, ``-1``) are dynamic. The layout
    is ``nhwc`` when the last dimension is 3 and the second is not, else ``nchw``.
    """
    dims = [d if isinstance(d, (int, np.integer)) and d > 0 else None for d in shape]
    if len(dims) != 4:
        return {}, None
    layout = "nhwc" if dims[3] == 3 and dims[1] != 3 else "nchw"
    h, w = (dims[1], dims[2]) if layout == "nhwc" else (dims[2], dims[3])
    values: dict[str, Any] = {"layout": layout}
    if h is not None and w is not None:
        values["input_size"] = (int(h), int(w))
    return values, (int(dims[0]) if dims[0] is not None else None)


def _check_device(device: str) -> str:
    if device == "cpu":
        return device
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise UsageError(f"device must be cpu, cuda or cuda:N; got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__})")
    return device


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with ``<root>/code/`` and ``<root>/constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


# ----------------------------------------------------------------------------- per format


def _load_torch_file(path: Path, *, allow_pickle: bool, device: str) -> tuple[Any, str]:
    import torch

    if path.suffix == ".ts" or _is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location=device), "torchscript"
        except Exception as exc:
            raise ModelError(f"{path}: cannot load TorchScript archive ({type(exc).__name__}: {exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = pickle  # a sentinel: the file holds more than tensors (pickled Python objects)
    except Exception as exc:
        raise ModelError(f"{path}: not a TorchScript archive and torch.load cannot read it ({type(exc).__name__}: {exc})") from None
    if obj is not pickle:
        if isinstance(obj, Mapping):
            raise ModelError(
                f"{path} holds only weights (a state dict with {len(obj)} entries), not a model; "
                "export the network (torch.jit.script/trace + torch.jit.save to .pt, or torch.export.save to .pt2), "
                "or pass a Python entry 'package.module:factory' that builds it and loads these weights"
            )
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a model")
    if not allow_pickle:
        raise ModelError(
            f"{path} is a pickled Python object (e.g. a whole nn.Module saved with torch.save(model)); "
            "unpickling can run arbitrary code, so it is refused. Export it with torch.jit.script/trace (.pt) "
            "or torch.export (.pt2), or, only if you trust the file, pass --allow-pickle"
        )
    warnings.warn(
        f"{path}: unpickling a whole model (--allow-pickle); this runs any code the file contains",
        UnsafeLoadWarning,
        stacklevel=3,
    )
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(f"{path}: cannot unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{path}: unpickled a {type(module).__name__}, expected a torch.nn.Module")
    return module, "torch-pickle"


def _pt2_unsafe_members(path: Path) -> list[str]:
    """Members of a ``.pt2`` archive that ``torch.export.load`` would unpickle or run unchecked.

    ``torch.export.load`` is not pickle-free: tensor-subclass weights/constants
    (``use_pickle``), sample inputs and legacy payloads go through ``torch.load`` (with a
    ``weights_only=False`` fallback), opaque/custom objects through pickle, and an AOTInductor
    package holds native code. Every ``torch.save`` payload must load with
    ``weights_only=True``; opaque/custom objects and compiled code are always reported.
    """
    import io
    import json

    import torch

    unsafe: list[str] = []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        relative = {name: name.split("/", 1)[1] if "/" in name else name for name in names}
        pickled = set()
        for name, rel in relative.items():
            if rel.endswith("_config.json") and rel.startswith(("data/weights/", "data/constants/")):
                try:
                    config = json.loads(archive.read(name)).get("config", {})
                except ValueError:
                    unsafe.append(f"{rel} (unreadable)")
                    continue
                folder = name.rsplit("/", 1)[0]
                pickled |= {f"{folder}/{meta.get('path_name')}" for meta in config.values() if meta.get("use_pickle")}
        for name, rel in relative.items():
            base = rel.rsplit("/", 1)[-1]
            if rel.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
                unsafe.append(f"{rel} (compiled code)")
            elif rel.startswith("data/constants/") and base.startswith(("custom_obj_", "opaque_obj_")):
                unsafe.append(f"{rel} (pickled object)")
            elif name in pickled or rel.endswith(".pt"):
                try:
                    torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
                except Exception:
                    unsafe.append(f"{rel} (pickled object)")
    return unsafe


def _load_exported(path: Path, allow_pickle: bool) -> tuple[Any, dict, int | None]:
    import torch

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a torch.export archive (not a zip file)")
    unsafe = _pt2_unsafe_members(path)
    if unsafe and not allow_pickle:
        raise ModelError(
            f"{path}: torch.export archive holds content that loading would unpickle or run "
            f"({', '.join(unsafe[:3])}{', ...' if len(unsafe) > 3 else ''}); refused. "
            "Only if you trust the file, pass --allow-pickle"
        )
    if unsafe:
        warnings.warn(
            f"{path}: loading pickled or compiled content of a torch.export archive (--allow-pickle); "
            "this runs any code the file contains",
            UnsafeLoadWarning,
            stacklevel=3,
        )
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot load torch.export program ({type(exc).__name__}: {exc})") from None
    shape: list[Any] = []
    user_inputs = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs[:1]:
            val = node.meta.get("val")
            shape = [d if isinstance(d, int) else None for d in getattr(val, "shape", [])]
    defaults, static_batch = shape_defaults(shape)
    return program.module(), defaults, static_batch


def _import_runtime(module: str, extra: str, pip: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"this model needs {pip} ({exc}); install stabbench[{extra}] (pip install 'stabbench[{extra}]')"
        ) from None


def _load_onnx(path: Path, device: str) -> tuple[Any, dict, int | None]:
    ort = _import_runtime("onnxruntime", "onnx", "onnxruntime")
    providers = ["CPUExecutionProvider"]
    if device != "cpu":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError(f"device {device!r}: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}), "CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise ModelError(f"{path}: onnxruntime cannot load the model ({type(exc).__name__}: {exc})") from None
    first = session.get_inputs()[0]
    if first.type not in ("tensor(float)", "tensor(float16)"):
        raise ModelError(f"{path}: input {first.name!r} is {first.type}; only float inputs are supported")
    defaults, static_batch = shape_defaults(first.shape)
    return session, defaults, static_batch


def load_tflite(path: str | Path, num_threads: int | None = None) -> tuple[Any, dict, int | None]:
    """An allocated ai-edge-litert ``Interpreter`` and what its input shape implies."""
    litert = _import_runtime("ai_edge_litert.interpreter", "tflite", "ai-edge-litert")
    try:
        interpreter = litert.Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{path}: cannot load TFLite model ({type(exc).__name__}: {exc})") from None
    first = interpreter.get_input_details()[0]
    if first["dtype"] != np.float32:
        raise ModelError(f"{path}: input is {np.dtype(first['dtype']).name}; only float32 (non-quantized) inputs are supported")
    defaults, static_batch = shape_defaults([int(d) for d in first.get("shape_signature", first["shape"])])
    return interpreter, defaults, static_batch


def _load_entry(entry: str) -> tuple[Any, Path | None]:
    module_name, _, attr = entry.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"model entry {entry!r}: cannot import {module_name!r} ({exc})") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelError(f"model entry {entry!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ModelError(f"model entry {entry!r}: {attr!r} is not callable (expected a factory taking no arguments)")
    try:
        obj = target()
    except Exception as exc:
        raise ModelError(f"model entry {entry!r}: the factory failed ({type(exc).__name__}: {exc})") from exc
    source = getattr(module, "__file__", None)
    return obj, (Path(source) if source else None)


# ----------------------------------------------------------------------------- entry point


def _finish_spec(path: Path | None, model_layer: dict, spec_file: str | Path | None,
                 overrides: Mapping[str, Any] | None) -> tuple[PredictorSpec, dict, str | None]:
    layers: list[tuple[str, Mapping[str, Any]]] = [("model", model_layer)]
    file_used = None
    candidate = Path(spec_file) if spec_file is not None else (spec_file_for(path) if path is not None else None)
    if spec_file is not None and not candidate.is_file():
        raise UsageError(f"preprocessing file {candidate} not found")
    if candidate is not None and candidate.is_file():
        layers.append((str(candidate), read_spec_file(candidate)))
        file_used = str(candidate)
    layers.append(("cli", {k: v for k, v in (overrides or {}).items() if v is not None}))
    spec, sources = resolve_spec(layers)
    return spec, sources, file_used


def load_predictor(
    model: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    spec_file: str | Path | None = None,
    allow_pickle: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
) -> LoadedModel:
    """Load ``--model`` (see the module docstring) -> ``LoadedModel(predictor, info)``.

    ``overrides``: :class:`PredictorSpec` fields from the CLI (values may be strings; ``None``
    means "not given"). ``spec_file``: a JSON spec to use instead of the one beside the model.
    ``batch_size``: at most this many frames per model call (wrappers of model files).

    ``info`` (JSON-able, for the results): ``id``, ``format`` (torchscript, torch-export,
    torch-pickle, onnx, tflite, python, python-module, builtin), ``path``, ``sha256`` (of the
    model file; of the module source for a Python entry; ``None`` for pure built-ins),
    ``preprocess`` (:meth:`PredictorSpec.to_dict`), ``preprocess_sources`` (field -> default |
    model | file path | cli), ``preprocess_file``, ``input_processing`` (whether the input-side
    settings are applied: not for predictor objects, which take raw uint8 frames),
    ``stateful`` (has ``reset``), ``device``, ``allow_pickle``, ``runtime`` (versions).
    Errors: :class:`ModelError` (exit 5) for a model that cannot be loaded,
    :class:`UsageError` (exit 2) for a malformed ``--model`` string or option.
    """
    device = _check_device(device)
    import torch

    runtime: dict[str, str | None] = {"torch": torch.__version__}
    extra: dict[str, Any] = {}
    model_layer: dict[str, Any] = {}
    static_batch = None
    path: Path | None = None
    sha = None
    kw = {"batch_size": batch_size}

    if model.startswith("builtin:"):
        from stabbench.predictors.builtin import make_builtin

        built = make_builtin(model[len("builtin:"):], device=device)
        model_id, fmt, obj, model_layer = built.id, "builtin", built.predictor, built.spec
        path, sha, static_batch = built.path, built.sha256, built.static_batch
        runtime.update(built.runtime)
        extra["builtin"] = {"name": built.name, "params": built.params}
    elif Path(model).is_file() or Path(model).suffix.lower() in MODEL_SUFFIXES:
        path = Path(model)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        if suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{path}: unknown model format {suffix!r} (known: {', '.join(MODEL_SUFFIXES)})")
        model_id, sha = model, sha256_file(path)
        if suffix in TORCH_SUFFIXES:
            obj, fmt = _load_torch_file(path, allow_pickle=allow_pickle, device=device)
        elif suffix == ".pt2":
            obj, model_layer, static_batch = _load_exported(path, allow_pickle)
            fmt = "torch-export"
        elif suffix == ".onnx":
            obj, model_layer, static_batch = _load_onnx(path, device)
            fmt = "onnx"
            runtime["onnxruntime"] = _version("onnxruntime", "onnxruntime-gpu")
        else:
            obj, model_layer, static_batch = load_tflite(path)
            fmt = "tflite"
            runtime["ai-edge-litert"] = _version("ai-edge-litert")
    elif ENTRY_RE.match(model):
        obj, source = _load_entry(model)
        model_id, fmt = model, "python"
        if source is not None and source.is_file():
            path, sha = source, sha256_file(source)
    else:
        raise UsageError(
            f"--model {model!r} is not an existing model file ({', '.join(MODEL_SUFFIXES)}), "
            "a Python entry 'package.module:factory', or 'builtin:NAME'"
        )

    beside = path if fmt not in ("python", "builtin") else None  # the spec file sits beside model files only
    spec, sources, file_used = _finish_spec(beside, model_layer, spec_file, overrides)
    if fmt in ("torchscript", "torch-pickle", "torch-export") or (fmt == "python" and _is_module(obj)):
        fmt = "python-module" if fmt == "python" else fmt
        predictor: Any = TorchPredictor(obj, spec, device=device, static_batch=static_batch, **kw)
    elif fmt == "onnx":
        predictor = OnnxPredictor(obj, spec, static_batch=static_batch, **kw)
    elif fmt == "tflite":
        predictor = TflitePredictor(obj, spec, static_batch=static_batch, **kw)
    elif callable(getattr(obj, "predict", None)):
        predictor = obj
        if isinstance(predictor, ArrayModelPredictor):
            predictor.spec = spec  # a built-in model wrapper: the merged spec applies
    else:
        raise ModelError(f"model {model!r} gave a {type(obj).__name__}: expected an object with predict(frames) or a torch.nn.Module")

    input_processing = isinstance(predictor, ArrayModelPredictor)
    ignored = [k for k in INPUT_FIELDS if sources[k] == "cli"] if not input_processing else []
    if ignored:
        warnings.warn(
            f"{model_id}: a predictor object takes raw uint8 frames; options {', '.join(ignored)} are ignored",
            UserWarning,
            stacklevel=2,
        )
    info = {
        "id": model_id,
        "format": fmt,
        "path": None if path is None else str(path),
        "sha256": sha,
        "preprocess": spec.to_dict(),
        "preprocess_sources": sources,
        "preprocess_file": file_used,
        "input_processing": input_processing,
        "stateful": callable(getattr(predictor, "reset", None)),
        "device": device,
        "allow_pickle": bool(allow_pickle),
        "runtime": runtime,
        **extra,
    }
    return LoadedModel(predictor, info)


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)
