"""The network a run trains: loading ``--model`` (+ ``--weights``), checking its output, exporting it.

``--model`` forms (for training; ``stabbench eval`` accepts more):

==============================  ==============================================================
``builtin:NAME[,k=v,...]``      a built-in architecture (:mod:`stabbench.models`), freshly
                                initialised from ``--seed``; ``k=v`` are its options
                                (``builtin:tiny_unet,base=8,norm=group``)
``path.pt`` / ``.pth`` / ``.ts``  a TorchScript archive (trainable as is; e.g. the ``model.pt``
                                of an earlier run). Its ``<stem>.stabbench.json`` (if any)
                                gives the input scaling (``scale``, ``mean``, ``std``,
                                ``channels``)
``package.module:factory``      a callable taking no arguments that returns an ``nn.Module``
                                (the current directory is on ``sys.path``)
==============================  ==============================================================

``--weights state.pt``: a state dict (``torch.load(weights_only=True)``; a checkpoint
holding it under ``"model"`` or ``"state_dict"`` works too) loaded with ``strict=True``.

The model takes ``float32 [B, 3, H, W]`` (``x = (pixel * scale - mean) / std``) and must
return logits ``[B, C, H, W]``: ``C`` = the labelled set's classes, at the input size (a
tuple/list output uses its first element, a dict its ``"out"``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stabbench.errors import ModelError, UsageError

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts")


@dataclass
class TrainModel:
    """The module to train, what it is (``info``, for ``train_config.json``) and its input scaling."""

    module: Any
    info: dict
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "rgb"
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    from stabbench.datasets.base import sha256_file

    return sha256_file(path)


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def parse_builtin(text: str) -> tuple[str, dict[str, Any]]:
    """``"tiny_unet,base=8"`` -> ``("tiny_unet", {"base": 8})``."""
    name, *items = [p.strip() for p in text.split(",")]
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model builtin:{text}: options must be key=value, got {item!r}")
        params[key.strip()] = _coerce(value.strip())
    return name, params


def load_training_model(model: str, num_classes: int, *, weights: str | None = None, seed: int = 0) -> TrainModel:
    """Build or load ``--model`` (see the module docstring) on the CPU; torch is seeded with
    ``seed`` first, so a fresh initialisation is reproducible."""
    import torch

    from stabbench.predictors.loaders import ENTRY_RE, _load_entry
    from stabbench.predictors.protocol import read_spec_file, spec_file_for

    torch.manual_seed(seed)
    layer: dict[str, Any] = {}
    if model.startswith("builtin:"):
        from stabbench.models import MODEL_NAMES, build_model

        name, params = parse_builtin(model[len("builtin:"):])
        classes = int(params.pop("num_classes", num_classes))
        try:
            module = build_model(name, classes, **params)
        except KeyError as exc:
            raise ModelError(f"--model {model}: {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise ModelError(f"--model {model}: bad option ({exc}); built-ins: {', '.join(MODEL_NAMES)}") from None
        info = {"id": model, "kind": "builtin", "builtin": name, "params": {**params, "num_classes": classes}, "sha256": None}
    elif Path(model).is_file() or Path(model).suffix.lower() in TORCHSCRIPT_SUFFIXES + (".onnx", ".pt2", ".tflite"):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        if path.suffix.lower() not in TORCHSCRIPT_SUFFIXES:
            raise ModelError(
                f"{path}: only TorchScript archives ({', '.join(TORCHSCRIPT_SUFFIXES)}) can be fine-tuned; "
                "pass a Python entry 'package.module:factory' (with --weights) for other networks"
            )
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                f"{path}: not a loadable TorchScript archive ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "a state dict has no architecture: use builtin:NAME or package.module:factory with --weights"
            ) from None
        info = {"id": model, "kind": "torchscript", "path": str(path), "sha256": _sha256(path)}
        spec_path = spec_file_for(path)
        if spec_path.is_file():
            layer = read_spec_file(spec_path)
            info["preprocess_file"] = str(spec_path)
    elif ENTRY_RE.match(model):
        module, source = _load_entry(model)
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"model entry {model!r} returned a {type(module).__name__}; training needs a torch.nn.Module")
        info = {"id": model, "kind": "python", "path": None if source is None else str(source),
                "sha256": _sha256(source) if source is not None and source.is_file() else None}
    else:
        raise UsageError(
            f"--model {model!r} is not a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}), "
            "a Python entry 'package.module:factory', or 'builtin:NAME'"
        )
    if weights is not None:
        load_weights(module, Path(weights))
        info["weights"] = str(weights)
        info["weights_sha256"] = _sha256(Path(weights))
    if layer.get("layout", "nchw") != "nchw":
        raise ModelError(f"{info.get('preprocess_file')}: layout {layer['layout']!r}: training supports NCHW models only")
    tm = TrainModel(module, info)
    for key in ("scale", "mean", "std", "channels"):
        if key in layer:
            setattr(tm, key, layer[key])
    from stabbench.models import count_parameters

    info["parameters"] = count_parameters(module)
    return tm


def load_weights(module, path: Path) -> None:
    """``module.load_state_dict(torch.load(path, weights_only=True), strict=True)``; ModelError on any problem."""
    import torch

    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot read weights with torch.load(weights_only=True) ({type(exc).__name__}: {exc})") from None
    if isinstance(state, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    try:
        result = module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"{path}: weights do not fit the model ({' '.join(first[:3])[:400]})") from None
    del result


def first_tensor(out: Any):
    """The logits of a model output: the tensor, a tuple's first element or a dict's ``"out"``."""
    if isinstance(out, (tuple, list)) and out:
        return first_tensor(out[0])
    if isinstance(out, Mapping) and "out" in out:
        return out["out"]
    return out


def check_output(module, x, num_classes: int, classes: tuple[str, ...] = ()) -> None:
    """Run one batch ``x`` in eval mode (no state changes) and check the output is logits
    ``[B, num_classes, H, W]`` at ``x``'s size; ModelError otherwise."""
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = first_tensor(module(x))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"the model failed on a {tuple(x.shape)} input batch ({type(exc).__name__}: {str(exc)[:300]})") from None
    finally:
        module.train(was_training)
    expected = (x.shape[0], num_classes, x.shape[2], x.shape[3])
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != expected or not out.is_floating_point():
        names = f" ({', '.join(classes)})" if classes else ""
        got = f"shape {shape} {out.dtype}" if shape is not None else f"a {type(out).__name__}"
        raise ModelError(
            f"the model's output does not fit the labelled set: for input {tuple(x.shape)} it returned {got}; "
            f"training needs float logits {expected}: {num_classes} classes{names} at the input resolution"
        )


def export_model(module, example, path: Path) -> str:
    """Save ``module`` (a copy, on the CPU, in eval mode) as TorchScript at ``path``:
    scripted if possible, else traced with ``example``. Returns ``"script"`` or ``"trace"``.
    The saved file is reloaded and checked against the module's output on ``example``."""
    import torch

    example = example.to("cpu")
    how = "script"
    if isinstance(module, torch.jit.ScriptModule):
        # copy through a buffer (deepcopy of a ScriptModule gives non-leaf parameters), onto the CPU
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        m = scripted = torch.jit.load(buffer, map_location="cpu").eval()
    else:
        m = copy.deepcopy(module).to("cpu").eval()
        try:
            scripted = torch.jit.script(m)
        except Exception as exc:  # noqa: BLE001
            how = "trace"
            warnings.warn(f"torch.jit.script failed ({type(exc).__name__}); exporting with torch.jit.trace instead", UserWarning, stacklevel=2)
            with torch.no_grad():
                scripted = torch.jit.trace(m, example)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.jit.save(scripted, str(tmp))
    os.replace(tmp, path)
    reloaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        want, got = first_tensor(m(example)), first_tensor(reloaded(example))
    if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-4, atol=1e-4):
        raise ModelError(f"{path}: the exported model's output differs from the trained model's ({how})")
    return how


def state_dict_cpu(module) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def digest_state_dict(state: Mapping) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (bit-exact comparison)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
