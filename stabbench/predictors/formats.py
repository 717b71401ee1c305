"""Model file formats: read a file into a runnable object, with what the file says about it.

==============================  ==================================================================
suffix                          how it is read
==============================  ==================================================================
``.pt2``                        ``torch.export`` program (``torch.export.save``; what
                                ``stabbench finetune`` writes); refused without ``allow_pickle``
                                (``--trust-model``) if it holds anything loading would unpickle,
                                evaluate or run (:mod:`~stabbench.predictors.pt2_safety`)
``.onnx``                       ONNX model, run by onnxruntime (extra ``stabbench[onnx]``)
``.tflite``                     TFLite model, run by ai-edge-litert (extra ``stabbench[tflite]``)
``.pt`` / ``.pth`` / ``.ts``    legacy, read only: a TorchScript archive (``torch.jit.save``). A
                                ``.pt``/``.pth`` that is not TorchScript is opened with
                                ``torch.load(weights_only=True)``: a state dict is refused (it has
                                no architecture); a pickled whole ``nn.Module`` is refused unless
                                ``allow_pickle=True`` (warns: unpickling runs arbitrary code).
==============================  ==================================================================
"""

from __future__ import annotations

import importlib
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from stabbench.errors import ModelError, UsageError
from stabbench.fileio import package_version
from stabbench.predictors.pt2_safety import unsafe_members

TORCH_SUFFIXES = (".pt", ".pth", ".ts")
MODEL_SUFFIXES = (".pt2", ".onnx", ".tflite", *TORCH_SUFFIXES)


class UnsafeLoadWarning(UserWarning):
    """A model file is being unpickled (``--allow-pickle``): this can run arbitrary code."""


@dataclass(frozen=True)
class FileModel:
    """A model file, loaded.

    ``obj``: the runnable (an ``nn.Module``, a TorchScript module, an onnxruntime session or a
    TFLite interpreter); ``format``: torchscript, torch-pickle, torch-export, onnx or tflite;
    ``spec_layer``: what the file implies about pre-processing (layout and input size of a
    static input shape); ``static_batch``: the only batch size it takes, if fixed;
    ``runtime``: versions of the runtime that reads it.
    """

    obj: Any
    format: str
    spec_layer: dict = field(default_factory=dict)
    static_batch: int | None = None
    runtime: dict = field(default_factory=dict)


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


def check_device(device: str) -> str:
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


def _load_torch_file(path: Path, *, allow_pickle: bool, device: str) -> FileModel:
    import torch

    if path.suffix == ".ts" or _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # reading a legacy format is not using TorchScript: no deprecation noise
                warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
                return FileModel(torch.jit.load(str(path), map_location=device), "torchscript")
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
                "export the network with torch.export.save (.pt2) or to ONNX, or pass its architecture "
                "(arch:NAME or a Python entry 'package.module:factory') with --weights"
            )
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a model")
    if not allow_pickle:
        raise ModelError(
            f"{path} is a pickled Python object (e.g. a whole nn.Module saved with torch.save(model)); "
            "unpickling can run arbitrary code, so it is refused. Export it with torch.export (.pt2) or to ONNX, "
            "or, only if you trust the file, pass --trust-model"
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
    return FileModel(module, "torch-pickle")


def _load_exported(path: Path, *, allow_pickle: bool, device: str) -> FileModel:
    import torch

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a torch.export archive (not a zip file)")
    try:
        unsafe = unsafe_members(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable torch.export archive ({type(exc).__name__}: {exc})") from None
    if unsafe and not allow_pickle:
        raise ModelError(
            f"{path}: torch.export archive holds content that loading would unpickle, evaluate or run: "
            f"{'; '.join(unsafe[:3])}{'; ...' if len(unsafe) > 3 else ''}. Refused; only if you trust the file, "
            "pass --trust-model"
        )
    if unsafe:
        warnings.warn(
            f"{path}: loading a torch.export archive with content that can run code ({unsafe[0]}; --trust-model); "
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
    return FileModel(program.module(), "torch-export", defaults, static_batch)


def _import_runtime(module: str, extra: str, pip: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"this model needs {pip} ({exc}); install stabbench[{extra}] (pip install 'stabbench[{extra}]')"
        ) from None


def _load_onnx(path: Path, *, allow_pickle: bool, device: str) -> FileModel:
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
    return FileModel(session, "onnx", defaults, static_batch, {"onnxruntime": package_version("onnxruntime", "onnxruntime-gpu")})


def load_tflite(path: str | Path, num_threads: int | None = None) -> FileModel:
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
    return FileModel(interpreter, "tflite", defaults, static_batch, {"ai-edge-litert": package_version("ai-edge-litert")})


_LOADERS: dict[str, Callable[..., FileModel]] = {
    ".pt2": _load_exported,
    ".onnx": _load_onnx,
    ".tflite": lambda path, allow_pickle, device: load_tflite(path),
    **{suffix: _load_torch_file for suffix in TORCH_SUFFIXES},
}


def load_model_file(path: Path, *, allow_pickle: bool = False, device: str = "cpu") -> FileModel:
    """Read the model file ``path`` by its suffix (see the module docstring); ModelError if it cannot."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _LOADERS:
        raise ModelError(f"{path}: unknown model format {suffix!r} (known: {', '.join(MODEL_SUFFIXES)})")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return _LOADERS[suffix](path, allow_pickle=allow_pickle, device=device)


__all__ = ["FileModel", "MODEL_SUFFIXES", "TORCH_SUFFIXES", "UnsafeLoadWarning", "check_device", "load_model_file",
           "load_tflite", "shape_defaults"]
