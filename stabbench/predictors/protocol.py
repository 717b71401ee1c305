"""The predictor contract, the pre/post-processing spec, and output checking.

Convention
----------
- ``frames``: NumPy ``uint8`` array ``(B, H, W, 3)``, RGB, ``B >= 1`` consecutive frames of
  one sequence, always in temporal order, one sequence at a time.
- ``predict(frames)`` returns either per-pixel class scores ``(B, C, h, w)`` (float,
  ``C >= 2``; probabilities after the spec's activation), a single foreground channel
  ``(B, 1, h, w)`` (probability, thresholded at ``spec.threshold``), or integer labels
  ``(B, h, w)``. ``(h, w)`` may differ from ``(H, W)``: scores are resized bilinearly and
  then arg-maxed, labels are resized with nearest neighbour (pixel centres aligned).
- Class ids are ``0 .. C-1``; labels are returned as ``uint8`` when ``C <= 255``, else
  ``int32``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from stabbench.errors import ModelError, UsageError

SPEC_FILE_SUFFIX = ".stabbench.json"
"""A model ``dir/net.onnx`` picks up ``dir/net.stabbench.json`` (same stem) if it exists."""

RESIZE_MODES = ("stretch", "none")
CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
ACTIVATIONS = ("none", "softmax", "sigmoid")


class UnsafeLoadWarning(UserWarning):
    """A model file is being unpickled (``--allow-pickle``): this can run arbitrary code."""


# ----------------------------------------------------------------------------- contract


@runtime_checkable
class Predictor(Protocol):
    """What a user implements to wrap any framework (see the package docstring).

    Required: ``predict(frames) -> np.ndarray``. Optional, looked up with ``getattr``:

    - ``reset()``: called before each sequence (stateful video models drop their memory).
    - ``max_batch``: int attribute; the most frames one ``predict`` call may receive
      (default: the runner's batch size). A stateful model may leave it unset: frames of a
      batch are consecutive and in order, so it can loop over them itself.
    - ``begin_sequence(sequence)`` (advanced, used by the built-in oracles): called after
      ``reset()`` with the :class:`~stabbench.synth.SyntheticSequence` about to be fed, so a
      predictor can read its ground truth. Real models must not use it.
    """

    def predict(self, frames: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class PredictorSpec:
    """Pre- and post-processing of a model; recorded in the results with :meth:`to_dict`.

    Input side (applied by the wrappers of model files and ``nn.Module`` s; a Python
    predictor object receives the raw ``uint8`` frames and ignores these):

    - ``input_size``: ``(H, W)`` the frames are resized to, or ``None`` = native size.
      Models with a static input shape (ONNX, TFLite, ``.pt2``) default to that shape.
    - ``resize``: ``stretch`` (bilinear, aspect ratio not kept) or ``none`` (never resize;
      ``input_size`` is then ignored).
    - ``scale``, ``mean``, ``std``: ``x = (pixel * scale - mean) / std`` per channel, in the
      model's channel order (ImageNet: ``scale=1/255, mean=[0.485, 0.456, 0.406],
      std=[0.229, 0.224, 0.225]``).
    - ``channels``: ``rgb`` or ``bgr``; ``layout``: ``nchw`` or ``nhwc`` (input *and*
      4-D output). ONNX/TFLite default to what the input shape says.

    Output side (applied to every predictor):

    - ``activation``: ``none``, ``softmax`` (over channels) or ``sigmoid``, applied by the
      wrappers to float model outputs; it does not change an arg-max, but matters for a
      single-channel output, which is thresholded.
    - ``num_classes``: checked against the output (``None`` = take it from the output).
    - ``threshold``: a single-channel output ``p`` gives label 1 where ``p > threshold``.
    - ``foreground_class``: ``None`` (labels kept) or a class id / list of ids mapped to 1,
      everything else to 0: for running a multi-class model on a binary set.
    """

    input_size: tuple[int, int] | None = None
    resize: str = "stretch"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "rgb"
    layout: str = "nchw"
    activation: str = "none"
    num_classes: int | None = None
    foreground_class: int | tuple[int, ...] | None = None
    threshold: float = 0.5

    def __post_init__(self):
        _check_choice("resize", self.resize, RESIZE_MODES)
        _check_choice("channels", self.channels, CHANNEL_ORDERS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise ValueError(f"input_size must be (H, W) with H, W >= 1, got {self.input_size!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive number, got {self.scale!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std!r}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (a binary model has 2), got {self.num_classes}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        fg = self.foreground_classes
        if fg is not None and (not fg or min(fg) < 0):
            raise ValueError(f"foreground_class must be class ids >= 0, got {self.foreground_class!r}")

    @property
    def foreground_classes(self) -> tuple[int, ...] | None:
        fg = self.foreground_class
        return None if fg is None else ((fg,) if isinstance(fg, int) else tuple(fg))

    @property
    def target_size(self) -> tuple[int, int] | None:
        """The ``(H, W)`` frames are resized to, or ``None`` (fed at native size)."""
        return None if self.resize == "none" else self.input_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; :meth:`from_dict` of it gives an equal spec."""
        out = dataclasses.asdict(self)
        for key in ("input_size", "mean", "std", "foreground_class"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "spec") -> "PredictorSpec":
        """Build from a mapping (a JSON file, CLI strings); raises ``ValueError`` naming ``source``."""
        return cls(**coerce_fields(values, source=source))


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(PredictorSpec))


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _numbers(value: Any, name: str, source: str) -> list[float]:
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").replace("X", ",").split(",") if v.strip()]
    if isinstance(value, (int, float)):
        value = [value]
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {name} must be numbers, got {value!r}") from None


def _as_int(value: float, name: str, source: str) -> int:
    if float(value) != int(value):
        raise ValueError(f"{source}: {name} must be an integer, got {value!r}")
    return int(value)


def coerce_fields(values: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Check keys and convert values (JSON types or CLI strings) to :class:`PredictorSpec` types.

    Strings are accepted everywhere: ``input_size="512x1024"`` or ``"512,1024"``,
    ``mean="0.485,0.456,0.406"``, ``scale="1/255"``, ``num_classes="none"``,
    ``foreground_class="11,12"``. Keys starting with ``_`` (comments) are ignored.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if key not in SPEC_FIELDS:
            raise ValueError(f"{source}: unknown setting {key!r} (known: {', '.join(SPEC_FIELDS)})")
        if isinstance(value, str) and value.strip().lower() in ("none", "null", "") and key in (
            "input_size", "num_classes", "foreground_class"
        ):
            out[key] = None
            continue
        if value is None:
            if key not in ("input_size", "num_classes", "foreground_class"):
                raise ValueError(f"{source}: {key} cannot be null")
            out[key] = None
        elif key in ("resize", "channels", "layout", "activation"):
            out[key] = str(value).strip().lower()
        elif key == "scale":
            if isinstance(value, str) and "/" in value:
                num, _, den = value.partition("/")
                try:
                    value = float(num) / float(den)
                except (ValueError, ZeroDivisionError):
                    raise ValueError(f"{source}: scale must be a number like 1/255, got {value!r}") from None
            out[key] = _numbers(value, key, source)[0] if not isinstance(value, float) else value
        elif key == "threshold":
            out[key] = _numbers(value, key, source)[0]
        elif key in ("mean", "std"):
            nums = _numbers(value, key, source)
            out[key] = tuple(nums * 3) if len(nums) == 1 else tuple(nums)
        elif key == "input_size":
            nums = _numbers(value, key, source)
            if len(nums) == 1:
                nums = nums * 2
            out[key] = tuple(_as_int(v, key, source) for v in nums)
        elif key == "num_classes":
            out[key] = _as_int(_numbers(value, key, source)[0], key, source)
        elif key == "foreground_class":
            ids = [_as_int(v, key, source) for v in _numbers(value, key, source)]
            out[key] = ids[0] if len(ids) == 1 else tuple(ids)
    return out


def spec_file_for(model_path: str | Path) -> Path:
    """Where the spec file of a model file is looked for: ``<dir>/<stem>.stabbench.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + SPEC_FILE_SUFFIX)


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a spec JSON file; its problems are :class:`ModelError` naming the file."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"{path}: cannot read preprocessing file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ModelError(f"{path}: preprocessing file is not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ModelError(f"{path}: preprocessing file must hold a JSON object, got {type(values).__name__}")
    try:
        return coerce_fields(values, source=str(path))
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def resolve_spec(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[PredictorSpec, dict[str, str]]:
    """Merge ``(source, values)`` layers, later ones winning; returns the spec and each field's source.

    The loaders use the layers ``default < model (format, static shapes, built-in) < file < cli``.
    A bad CLI value is a :class:`UsageError`, any other a :class:`ModelError`.
    """
    merged: dict[str, Any] = {}
    sources = {name: "default" for name in SPEC_FIELDS}
    for source, values in layers:
        label = "preprocessing option" if source == "cli" else source
        try:
            values = coerce_fields(values, source=label)
            PredictorSpec(**values)  # every check is per field: blame the layer that set it
        except (ValueError, TypeError) as exc:
            message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
            raise (UsageError if source == "cli" else ModelError)(message) from None
        merged.update(values)
        sources.update({key: source for key in values})
    try:
        spec = PredictorSpec(**merged)
    except ValueError as exc:
        culprits = sorted({sources[k] for k in merged if sources[k] != "default"})
        if culprits == ["cli"]:
            raise UsageError(f"invalid preprocessing option: {exc}") from None
        raise ModelError(f"invalid preprocessing ({', '.join(culprits) or 'defaults'}): {exc}") from None
    return spec, sources


# ----------------------------------------------------------------------------- output checks


def _to_numpy(out: Any) -> Any:
    if hasattr(out, "detach") and hasattr(out, "cpu"):  # a torch tensor, without importing torch
        out = out.detach().cpu()
        if str(out.dtype) in ("torch.bfloat16", "torch.float16"):
            out = out.float()
        return out.numpy()
    return out


def check_finite(out: np.ndarray) -> str | None:
    """``None`` if every value is finite, else a one-line warning with NaN and Inf counts."""
    if not np.issubdtype(out.dtype, np.floating):
        return None
    finite = np.isfinite(out)
    if finite.all():
        return None
    nan = int(np.isnan(out).sum())
    inf = int(out.size - finite.sum()) - nan
    return f"model output has {nan} NaN and {inf} Inf of {out.size} values (NaN treated as 0, Inf as +-1e30)"


def _expected(batch: int, height: int, width: int, num_classes: int | None) -> str:
    c = "C" if num_classes is None else (f"{num_classes} (or 1)" if num_classes == 2 else str(num_classes))
    return (
        f"({batch}, {c}, h, w) float scores or ({batch}, h, w) integer labels "
        f"(for {batch} frames of {height}x{width}; h, w any size)"
    )


def _label_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 255 else np.int32


def _resize_scores(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) float32 -> (C, H, W), bilinear with half-pixel centres (torch, align_corners=False)."""
    if scores.shape[1:] == (height, width):
        return scores
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(scores))[None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()


def _resize_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B, h, w) -> (B, H, W); output pixel centre ``i + 0.5`` samples input ``floor((i + 0.5) h / H)``."""
    h, w = labels.shape[1:]
    if (h, w) == (height, width):
        return labels
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return labels[:, rows[:, None], cols[None, :]]


def normalize_output(
    out: Any,
    batch: int,
    height: int,
    width: int,
    num_classes: int | None = None,
    threshold: float = 0.5,
) -> tuple[np.ndarray, list[str]]:
    """Turn a predictor's output into labels ``(batch, height, width)``; returns ``(labels, warnings)``.

    Accepted (NumPy arrays or torch tensors): scores ``(B, C, h, w)`` with ``C >= 2`` (resized
    bilinearly, then arg-max), one channel ``(B, 1, h, w)`` (resized, then ``> threshold``
    gives class 1), integer or bool labels ``(B, h, w)`` (nearest). Anything else, a batch
    that is not ``batch``, ``C`` that is not ``num_classes`` or labels outside
    ``[0, num_classes)`` is a :class:`ModelError` naming the shape expected and received.
    NaN / Inf scores give a warning (NaN counts as 0, Inf as +-1e30), not an error.
    """
    out = _to_numpy(out)
    if not isinstance(out, np.ndarray):
        raise ModelError(
            f"model output must be an array, got {type(out).__name__}; expected {_expected(batch, height, width, num_classes)}"
        )
    received = f"received shape {tuple(out.shape)} dtype {out.dtype}"
    is_float = np.issubdtype(out.dtype, np.floating)
    is_int = np.issubdtype(out.dtype, np.integer) or out.dtype == np.bool_
    if not (
        out.shape[:1] == (batch,)
        and ((out.ndim == 4 and is_float and out.shape[1] >= 1) or (out.ndim == 3 and is_int))
        and min(out.shape[1:], default=0) >= 1
    ):
        raise ModelError(f"model output has the wrong shape: expected {_expected(batch, height, width, num_classes)}; {received}")
    warnings_: list[str] = []
    if out.ndim == 3:
        # Integer types whose values all fit in int64 are range-checked and resized as they
        # are (no int64 copy: 8x the memory of uint8 labels); uint64 goes through int64 as
        # before, so that values above 2**63 still read as negative and are rejected.
        labels = out if out.dtype.kind == "b" or np.can_cast(out.dtype, np.int64) else out.astype(np.int64)
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            raise ModelError(
                f"model output labels must lie in [0, {num_classes if num_classes is not None else 'C'}); "
                f"received values {low}..{high} ({received})"
            )
        dtype = _label_dtype(num_classes if num_classes is not None else high + 1)
        # astype always copies: the result never aliases a buffer the predictor may reuse
        return _resize_nearest(labels, height, width).astype(dtype), warnings_
    channels = out.shape[1]
    if num_classes is not None and channels not in (num_classes, 1 if num_classes == 2 else num_classes):
        raise ModelError(
            f"model output has {channels} channels but num_classes is {num_classes}: expected "
            f"{_expected(batch, height, width, num_classes)}; {received}"
        )
    message = check_finite(out)
    scores = out.astype(np.float32, copy=False)
    if message:
        warnings_.append(message)
        scores = np.nan_to_num(scores, nan=0.0, posinf=1e30, neginf=-1e30)
    labels = np.empty((batch, height, width), dtype=_label_dtype(max(channels, 2)))
    for b in range(batch):  # one frame at a time: (C, H, W) float32 at full size can be large
        resized = _resize_scores(scores[b], height, width)
        labels[b] = (resized[0] > threshold) if channels == 1 else resized.argmax(axis=0)
    return labels, warnings_


def map_foreground(labels: np.ndarray, foreground: int | Iterable[int] | None) -> np.ndarray:
    """Binary labels: 1 where ``labels`` is a foreground class, 0 elsewhere (``None``: unchanged)."""
    if foreground is None:
        return labels
    ids = [foreground] if isinstance(foreground, int) else list(foreground)
    return np.isin(labels, ids).astype(np.uint8)


def _check_frames(frames: np.ndarray) -> None:
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3):
        got = f"{getattr(frames, 'shape', None)} {getattr(frames, 'dtype', type(frames).__name__)}"
        raise ValueError(f"frames must be a uint8 array (B, H, W, 3), got {got}")


def predict_sequence(
    predictor: Predictor,
    frames: np.ndarray,
    *,
    spec: PredictorSpec | None = None,
    sequence: Any = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Run one sequence through a predictor: labels ``(N, H, W)`` and the warnings raised.

    Calls ``reset()`` (if defined), then ``begin_sequence(sequence)`` (if defined and a
    ``sequence`` is given), then ``predict`` on consecutive batches of at most
    ``batch_size`` frames (and at most ``predictor.max_batch``; default: all frames in one
    call), each checked with :func:`normalize_output`; finally ``spec.foreground_class``
    is applied. An exception raised inside ``predict`` becomes a :class:`ModelError`.
    Warnings are strings, prefixed with the frame range; the caller aggregates them.
    """
    _check_frames(frames)
    spec = spec or PredictorSpec()
    n, height, width = frames.shape[:3]
    if callable(getattr(predictor, "reset", None)):
        predictor.reset()
    if sequence is not None and callable(getattr(predictor, "begin_sequence", None)):
        predictor.begin_sequence(sequence)
    step = n if batch_size is None else max(1, int(batch_size))
    max_batch = getattr(predictor, "max_batch", None)
    if max_batch:
        step = min(step, int(max_batch))
    labels: list[np.ndarray] = []
    issues: list[str] = []
    for start in range(0, n, step):
        chunk = frames[start : start + step]
        where = f"frame {start}" if len(chunk) == 1 else f"frames {start}..{start + len(chunk) - 1}"
        try:
            out = predictor.predict(chunk)
        except (ModelError, UsageError):
            raise
        except Exception as exc:  # the user's model failed: a bad-model error, with its cause
            raise ModelError(f"model failed on {where}: {type(exc).__name__}: {exc}") from exc
        got, found = normalize_output(out, len(chunk), height, width, spec.num_classes, spec.threshold)
        labels.append(got)
        issues += [f"{where}: {m}" for m in found]
    result = np.concatenate(labels) if len(labels) > 1 else labels[0]
    return map_foreground(result, spec.foreground_classes), issues


__all__ = [
    "Predictor",
    "PredictorSpec",
    "UnsafeLoadWarning",
    "SPEC_FILE_SUFFIX",
    "spec_file_for",
    "read_spec_file",
    "resolve_spec",
    "check_finite",
    "normalize_output",
    "map_foreground",
    "predict_sequence",
]
