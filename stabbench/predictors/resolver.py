"""The one resolver of ``--model``, used by ``stabbench eval`` and ``stabbench finetune`` alike.

==============================  ==================================================================
``--model``                     what it is
==============================  ==================================================================
``builtin:NAME[,k=v,...]``      a built-in predictor (:mod:`stabbench.predictors.registry`); a
                                built-in architecture name here means ``arch:NAME`` (alias)
``arch:NAME[,k=v,...]``         a built-in trainable architecture (:mod:`stabbench.models`),
                                freshly initialised from ``seed``; ``k=v`` are its options
                                (``arch:tiny_unet,base=8,norm=group``, ``num_classes=N``)
``path.pt2``/``.onnx``/         a model file (:mod:`stabbench.predictors.formats`); TorchScript
``.tflite``/``.pt``/``.ts``     (``.pt``/``.pth``/``.ts``) is read as a legacy format
``package.module:factory``      a Python callable (no arguments) returning a predictor object or
                                an ``nn.Module``; the current directory is searched *after* the
                                installed packages, so a local file never shadows a dependency
``predictions:DIR[,map=M]``     masks produced elsewhere, ``DIR/<sequence id>/<frame>.png``
                                (:mod:`stabbench.predictors.precomputed`); ``map=foreground``
                                maps any non-zero value to 1 (default ``keep``)
==============================  ==================================================================

``weights``: a state dict (``torch.load(weights_only=True)``; a checkpoint holding it under
``"model"`` or ``"state_dict"`` works too) loaded into the ``nn.Module`` with ``strict=True``.

Identity (:func:`fingerprint`, defined here only): a model is what it computes. Its
``fingerprint`` is the sha256 of the model file for a bare model file (so a copy under another
path is the same model), else a sha256 over what each form computes: the module's source and
the factory's name of a Python entry, a built-in's name, options and file, an architecture's
name, options and seed, the masks and the map of ``predictions:DIR``; with ``weights``, the
weights file's sha256 (an architecture's seed then no longer counts). Its default ``name``
(the leaderboard row, the output folder) is its ``id``, followed by ``+weights=FILE@SHA8`` with
weights, so two factories, two option sets or two weights files never share a name.

Pre/post-processing (:class:`ModelSpec`) is merged from, later winning: defaults < what the
model says (static input shape and layout of a file; a built-in's own settings) < the JSON
file ``<dir>/<stem>.stabbench.json`` beside a model file (or ``spec_file``) < ``overrides``
(the CLI options). The result, with the source of each setting, is recorded in ``info``.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stabbench.errors import ModelError, UsageError
from stabbench.fileio import sha256_bytes, sha256_file
from stabbench.predictors.formats import MODEL_SUFFIXES, check_device, load_model_file
from stabbench.predictors.registry import BUILTINS, make_builtin, split_reference
from stabbench.predictors.runtimes import ArrayModelPredictor, OnnxPredictor, TflitePredictor, TorchPredictor
from stabbench.predictors.spec import INPUT_FIELDS, ModelSpec, read_spec_file, resolve_spec, spec_file_for

ENTRY_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
PREDICTIONS_PREFIX = "predictions:"
TORCH_FORMATS = ("torchscript", "torch-pickle", "torch-export", "arch", "python-module", "tflite-import")
#: The fields an imported TFLite model takes from ``<stem>.stabbench.json`` (written for the file run by
#: LiteRT: its layout, size and output side describe the file, not the imported NCHW logits module).
IMPORTED_TFLITE_FILE_FIELDS = ("resize", "scale", "mean", "std", "channels")
#: Formats whose object is an ``nn.Module`` that takes ``--weights`` and can be trained.
MODULE_FORMATS = ("arch", "python-module", "torchscript", "torch-pickle", "tflite-import")


# ----------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class ModelRef:
    """``--model`` parsed: ``kind`` is builtin, arch, file, entry or predictions."""

    kind: str
    text: str
    name: str = ""
    params: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> Path:
        return Path(self.text)


def parse_model_ref(text: str) -> ModelRef:
    """Classify ``--model`` (see the module docstring); :class:`UsageError` if it is none of the forms."""
    from stabbench.models import MODEL_NAMES

    if text.startswith(PREDICTIONS_PREFIX):
        folder, params = split_reference(text[len(PREDICTIONS_PREFIX):])
        if not folder:
            raise UsageError(f"--model {text!r}: name the folder of masks (predictions:DIR)")
        return ModelRef("predictions", text, folder, tuple(params))
    for prefix in ("arch:", "builtin:"):
        if text.startswith(prefix):
            name, params = split_reference(text[len(prefix):])
            kind = "arch" if prefix == "arch:" or (name in MODEL_NAMES and name not in BUILTINS) else "builtin"
            return ModelRef(kind, text, name, tuple(params))
    if Path(text).is_file() or Path(text).suffix.lower() in MODEL_SUFFIXES:
        return ModelRef("file", text)
    if ENTRY_RE.match(text):
        return ModelRef("entry", text)
    raise UsageError(
        f"--model {text!r} is not an existing model file ({', '.join(MODEL_SUFFIXES)}), "
        "a Python entry 'package.module:factory', 'builtin:NAME', 'arch:NAME' or 'predictions:DIR'"
    )


# ----------------------------------------------------------------------------- sources


@dataclass
class Source:
    """What a reference resolves to, before it is wrapped for inference or training."""

    obj: Any
    format: str
    model_id: str
    spec_layer: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None
    static_batch: int | None = None
    runtime: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    spec_beside: Path | None = None  # the model file whose <stem>.stabbench.json applies
    identity: dict = field(default_factory=dict)  # what the model computes (:func:`fingerprint`); {} unknown


def fingerprint(source: Source) -> str | None:
    """The sha256 identifying what ``source`` computes (module docstring); ``None`` when unknown
    (a Python entry whose module has no source file)."""
    if not source.identity or any(v is None for k, v in source.identity.items() if k in ("file", "source")):
        return None
    if set(source.identity) == {"file"}:
        return source.identity["file"]  # a bare model file: its bytes, wherever it lies
    return sha256_bytes(json.dumps(source.identity, sort_keys=True).encode())


def default_name(source: Source) -> str:
    """The name of a model when ``--name`` gives none: its id, and its weights file (name and
    the first 8 hex digits of its sha256) when it has some."""
    if "weights_sha256" not in source.extra:
        return source.model_id
    return f"{source.model_id}+weights={Path(source.extra['weights']).name}@{source.extra['weights_sha256'][:8]}"


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def _arch(ref: ModelRef, num_classes: int | None, seed: int) -> Source:
    import torch

    from stabbench.models import ARCH_SPEC, MODEL_NAMES, build_model

    params = {key: _coerce(value) for key, value in ref.params}
    classes = params.pop("num_classes", num_classes)
    if classes is None:
        raise UsageError(f"--model {ref.text}: give the number of classes (arch:{ref.name},num_classes=N)")
    torch.manual_seed(seed)
    try:
        module = build_model(ref.name, int(classes), **params)
    except KeyError as exc:
        raise ModelError(f"--model {ref.text}: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"--model {ref.text}: bad option ({exc}); architectures: {', '.join(MODEL_NAMES)}") from None
    model_id = "arch:" + ",".join([ref.name] + [f"{k}={v}" for k, v in sorted({**params, "num_classes": classes}.items())])
    record = {"name": ref.name, "params": {**params, "num_classes": int(classes)}, "seed": seed}
    return Source(module, "arch", model_id, {**ARCH_SPEC, "num_classes": int(classes)}, extra={"arch": record},
                  identity={"arch": record["name"], "params": record["params"], "seed": seed})


def _predictions(ref: ModelRef) -> Source:
    """``predictions:DIR[,map=M]`` -> a :class:`PrecomputedPredictor`; its id names the folder and the map,
    its sha256 is :func:`predictions_digest` of the folder's masks."""
    from stabbench.predictors.precomputed import PrecomputedPredictor, predictions_digest

    params = dict(ref.params)
    unknown = sorted(set(params) - {"map"})
    if unknown:
        raise UsageError(f"--model {ref.text}: unknown parameter {unknown[0]!r} (parameters: map)")
    mapping = params.get("map", "keep")
    predictor = PrecomputedPredictor(ref.name, mapping)
    model_id = f"{PREDICTIONS_PREFIX}{'/'.join(Path(ref.name).resolve().parts[-2:])},map={mapping}"
    digest = predictions_digest(ref.name)
    return Source(predictor, "predictions", model_id, path=Path(ref.name), sha256=digest,
                  extra={"predictions": {"map": mapping}}, identity={"predictions": digest, "map": mapping})


def load_entry(entry: str) -> tuple[Any, Path | None]:
    """Import ``package.module`` and call ``factory()``; the object and the module's source file.

    The current directory is appended to ``sys.path`` (after the installed packages), so a
    local ``filelock.py`` or ``numpy.py`` never replaces a dependency.
    """
    module_name, _, attr = entry.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"model entry {entry!r}: cannot import {module_name!r} ({exc})") from None
    except BaseException as exc:  # noqa: BLE001 - a module that fails at import is a bad model
        raise ModelError(f"model entry {entry!r}: importing {module_name!r} failed ({type(exc).__name__}: {exc})") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelError(f"model entry {entry!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ModelError(f"model entry {entry!r}: {attr!r} is not callable (expected a factory taking no arguments)")
    try:
        obj = target()
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a factory is a bad model too
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModelError(f"model entry {entry!r}: the factory failed ({type(exc).__name__}: {exc})") from exc
    source = getattr(module, "__file__", None)
    return obj, (Path(source) if source else None)


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def resolve(ref: ModelRef, *, allow_pickle: bool = False, device: str = "cpu", num_classes: int | None = None,
            seed: int = 0) -> Source:
    """The object behind ``ref``: a predictor, an ``nn.Module`` or a runtime session."""
    if ref.kind == "builtin":
        built = make_builtin(ref.text[len("builtin:"):], device=device)
        return Source(built.predictor, "builtin", built.id, dict(built.spec), built.path, built.sha256,
                      built.static_batch, dict(built.runtime), {"builtin": {"name": built.name, "params": built.params}},
                      identity={"builtin": built.name, "params": built.params, "builtin_file": built.sha256})
    if ref.kind == "arch":
        return _arch(ref, num_classes, seed)
    if ref.kind == "predictions":
        return _predictions(ref)
    if ref.kind == "file":
        loaded = load_model_file(ref.path, allow_pickle=allow_pickle, device=device)
        digest = sha256_file(ref.path)
        return Source(loaded.obj, loaded.format, ref.text, dict(loaded.spec_layer), ref.path, digest,
                      loaded.static_batch, dict(loaded.runtime), spec_beside=ref.path, identity={"file": digest})
    obj, source = load_entry(ref.text)
    has_file = source is not None and source.is_file()
    fmt = "python-module" if _is_module(obj) else "python"
    digest = sha256_file(source) if has_file else None
    return Source(obj, fmt, ref.text, path=source if has_file else None, sha256=digest,
                  identity={"source": digest, "factory": ref.text.partition(":")[2]})


# ----------------------------------------------------------------------------- weights


def load_weights(module: Any, path: Path) -> None:
    """``module.load_state_dict(torch.load(path, weights_only=True), strict=True)``; ModelError on any problem."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(f"{path}: not a weights file (torch.load with weights_only=True refuses it: not a torch file, "
                         "or it holds pickled Python objects, which are never loaded)") from None
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path}: cannot read weights with torch.load(weights_only=True) ({type(exc).__name__}: {first[:300]})") from None
    if isinstance(state, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"{path}: weights do not fit the model ({' '.join(first[:3])[:400]})") from None


def _apply_weights(source: Source, weights: str | Path | None) -> None:
    if weights is None:
        return
    if source.format not in MODULE_FORMATS:
        raise UsageError(f"--weights needs a model that is an nn.Module (arch:NAME, a Python entry, TorchScript); "
                         f"{source.model_id} is {source.format}")
    load_weights(source.obj, Path(weights))
    source.extra["weights"] = str(weights)
    source.extra["weights_sha256"] = sha256_file(weights)
    source.identity = {k: v for k, v in source.identity.items() if k != "seed"}  # every parameter is loaded
    source.identity["weights"] = source.extra["weights_sha256"]


def _spec_layers(source: Source, spec_file: str | Path | None, overrides: Mapping[str, Any] | None):
    """The spec of ``source`` from its layers; also the sources of each field and the file used."""
    layers: list[tuple[str, Mapping[str, Any]]] = [("model", source.spec_layer)]
    file_used = None
    candidate = Path(spec_file) if spec_file is not None else (
        spec_file_for(source.spec_beside) if source.spec_beside is not None else None)
    if spec_file is not None and not candidate.is_file():
        raise UsageError(f"preprocessing file {candidate} not found")
    if candidate is not None and candidate.is_file():
        values = read_spec_file(candidate)
        if source.format == "tflite-import":  # the spec of the LiteRT model: only its input side applies
            values = {k: v for k, v in values.items() if k in IMPORTED_TFLITE_FILE_FIELDS}
        layers.append((str(candidate), values))
        file_used = str(candidate)
    layers.append(("cli", {k: v for k, v in (overrides or {}).items() if v is not None}))
    spec, sources = resolve_spec(layers)
    return spec, sources, file_used


# ----------------------------------------------------------------------------- for inference


@dataclass(frozen=True)
class LoadedModel:
    """A predictor ready for :func:`~stabbench.predictors.contract.predict_sequence`, its spec
    and ``info`` (JSON-able, recorded in the results)."""

    predictor: Any
    spec: ModelSpec
    info: dict


def _wrap(source: Source, spec: ModelSpec, device: str, batch_size: int | None) -> Any:
    kw = {"static_batch": source.static_batch, "batch_size": batch_size}
    if source.format in TORCH_FORMATS:
        return TorchPredictor(source.obj, spec, device=device, **kw)
    if source.format == "onnx":
        return OnnxPredictor(source.obj, spec, **kw)
    if source.format == "tflite":
        return TflitePredictor(source.obj, spec, **kw)
    if callable(getattr(source.obj, "predict", None)):
        if isinstance(source.obj, ArrayModelPredictor):
            source.obj.spec = spec  # a built-in model wrapper: the merged spec applies
        return source.obj
    raise ModelError(f"model {source.model_id!r} gave a {type(source.obj).__name__}: "
                     "expected an object with predict(frames) or a torch.nn.Module")


def load_predictor(
    model: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    spec_file: str | Path | None = None,
    allow_pickle: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
    weights: str | Path | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Load ``--model`` for inference -> :class:`LoadedModel`.

    ``overrides``: :class:`ModelSpec` fields from the CLI (values may be strings; ``None``
    means "not given"). ``spec_file``: a JSON spec to use instead of the one beside the model.
    ``batch_size``: at most this many frames per model call. ``num_classes``: the classes of
    an ``arch:`` model that does not name them (the set's).

    ``info``: ``id``, ``name`` (:func:`default_name`), ``fingerprint`` (:func:`fingerprint`), ``format`` (torchscript, torch-export, torch-pickle, onnx, tflite, python,
    python-module, arch, builtin, predictions), ``path``, ``sha256`` (of the model file; of the module source
    for a Python entry; over the mask files for ``predictions:DIR``; ``None`` for pure built-ins), ``preprocess``, ``preprocess_sources``
    (field -> default | model | file path | cli), ``preprocess_file``, ``input_processing``
    (whether the input side applies: not for predictor objects, which take raw uint8 frames),
    ``stateful`` (has ``reset``), ``device``, ``allow_pickle``, ``runtime`` (versions), and
    ``weights`` / ``weights_sha256`` when given.
    Errors: :class:`ModelError` (exit 5) for a model that cannot be loaded,
    :class:`UsageError` (exit 2) for a malformed ``--model`` string or option.
    """
    device = check_device(device)
    import torch

    ref = parse_model_ref(model)
    source = resolve(ref, allow_pickle=allow_pickle, device=device, num_classes=num_classes)
    _apply_weights(source, weights)
    if source.format == "arch" and weights is None:
        warnings.warn(f"{source.model_id}: a freshly initialised architecture (no --weights): its numbers describe "
                      "random weights", UserWarning, stacklevel=2)
    spec, sources, file_used = _spec_layers(source, spec_file, overrides)
    predictor = _wrap(source, spec, device, batch_size)
    input_processing = isinstance(predictor, ArrayModelPredictor)
    ignored = [k for k in INPUT_FIELDS if sources[k] == "cli"] if not input_processing else []
    if ignored:
        warnings.warn(f"{source.model_id}: a predictor object takes raw uint8 frames; options {', '.join(ignored)} are ignored",
                      UserWarning, stacklevel=2)
    info = {
        "id": source.model_id,
        "name": default_name(source),
        "fingerprint": fingerprint(source),
        "format": source.format,
        "path": None if source.path is None else str(source.path),
        "sha256": source.sha256,
        "preprocess": spec.to_dict(),
        "preprocess_sources": sources,
        "preprocess_file": file_used,
        "input_processing": input_processing,
        "stateful": callable(getattr(predictor, "reset", None)),
        "device": device,
        "allow_pickle": bool(allow_pickle),
        "runtime": {"torch": torch.__version__, **source.runtime},
        **source.extra,
    }
    return LoadedModel(predictor, spec, info)


# ----------------------------------------------------------------------------- for training


@dataclass(frozen=True)
class TrainableModel:
    """The ``nn.Module`` a run trains, the spec of its input side, and what it is (``info``)."""

    module: Any
    spec: ModelSpec
    info: dict


def _imported_tflite(ref: ModelRef) -> Source:
    """``builtin:mediapipe-selfie[,variant=...]`` or a ``.tflite`` file, imported as a trainable
    module (:mod:`stabbench.models.tflite`); other built-ins are predictors and cannot be trained."""
    if ref.kind == "builtin":
        from stabbench.predictors.mediapipe import mediapipe_trainable
        from stabbench.predictors.registry import parse_builtin

        if ref.name != "mediapipe-selfie":
            raise ModelError(f"--model {ref.text}: a built-in predictor cannot be trained; built-in architectures are "
                             "arch:NAME (e.g. arch:tiny_unet), and builtin:mediapipe-selfie is imported from its TFLite file")
        name, params = parse_builtin(ref.text[len("builtin:"):])
        module, layer, path = mediapipe_trainable(params["variant"])
        model_id = "builtin:" + ",".join([name] + [f"{k}={v}" for k, v in sorted(params.items())])
        digest = sha256_file(path)
        return Source(module, "tflite-import", model_id, layer, path, digest,
                      extra={"builtin": {"name": name, "params": params}, **_import_record(module)},
                      identity={"builtin": name, "params": params, "builtin_file": digest, "head": module.head})
    from stabbench.models.tflite import import_tflite

    module = import_tflite(ref.path, head="binary_logits")
    digest = sha256_file(ref.path)
    return Source(module, "tflite-import", ref.text, module.spec_layer(), ref.path, digest,
                  spec_beside=ref.path, extra=_import_record(module), identity={"file": digest, "head": module.head})


def _import_record(module) -> dict:
    """What ``train_config.json`` records of an imported TFLite model: its head and the schema's version."""
    from stabbench.fileio import package_version

    return {"head": module.head, "importer": {"schema": "ai_edge_litert.schema_py_generated",
                                              "ai-edge-litert": package_version("ai-edge-litert")}}


def load_trainable(model: str, num_classes: int, *, weights: str | Path | None = None, seed: int = 0,
                   overrides: Mapping[str, Any] | None = None) -> TrainableModel:
    """Build or load ``--model`` for training, on the CPU: an ``arch:`` (``builtin:`` alias) seeded
    with ``seed``, a Python entry returning an ``nn.Module``, a legacy TorchScript archive, or a
    TFLite model imported as a module (a ``.tflite`` file, ``builtin:mediapipe-selfie``).

    The spec: the model's layer (a built-in's; an imported TFLite model's input size, NCHW and
    softmax over its 2-class logits), the ``<stem>.stabbench.json`` beside a file, then
    ``overrides`` (``mean``, ``std``, ``input_size`` from the CLI).
    """
    import torch

    ref = parse_model_ref(model)
    torch.manual_seed(seed)
    if ref.kind == "builtin" or (ref.kind == "file" and ref.path.suffix.lower() == ".tflite"):
        source = _imported_tflite(ref)
    else:
        source = resolve(ref, num_classes=num_classes, seed=seed)
    if source.format == "torch-export":
        beside = ref.path.parent / "train_config.json"
        hint = f" (its run folder records the architecture in {beside})" if beside.is_file() else ""
        raise ModelError(
            f"{ref.path}: a torch.export program is for inference; to fine-tune it, pass its architecture "
            f"(arch:NAME or package.module:factory) with --weights {ref.path.parent / 'state_dict.pt'}{hint}"
        )
    if source.format not in MODULE_FORMATS:
        raise ModelError(f"--model {model}: training needs a torch.nn.Module (arch:NAME, a Python entry, a TorchScript "
                         f"archive or a .tflite model); this is {source.format}")
    _apply_weights(source, weights)
    spec, sources, file_used = _spec_layers(source, None, overrides)
    if spec.layout != "nchw":
        raise ModelError(f"{file_used or model}: layout {spec.layout!r}: training supports NCHW models only")
    from stabbench.models import count_parameters

    info = {"id": source.model_id, "kind": source.format, "path": None if source.path is None else str(source.path),
            "sha256": source.sha256, "fingerprint": fingerprint(source), "preprocess_file": file_used, "preprocess_sources": sources,
            "parameters": count_parameters(source.obj), **source.extra}
    return TrainableModel(source.obj, spec, info)


__all__ = ["ENTRY_RE", "LoadedModel", "ModelRef", "TrainableModel", "default_name", "fingerprint", "load_entry",
           "load_predictor", "load_trainable", "load_weights", "parse_model_ref", "resolve"]
