"""The model spec: one description of a model's pre- and post-processing.

:class:`ModelSpec` is what ``stabbench eval`` applies around a model file or an
``nn.Module``, what ``stabbench finetune`` applies to its training batches (the input side),
and what ``<model>.stabbench.json`` holds. :func:`prepare_frames` is the one implementation of
the input side (resize, channel order, ``(pixel * scale - mean) / std``, layout), for NumPy
arrays and torch tensors alike.

Convention
----------
- Frames: ``uint8 (B, H, W, 3)``, RGB, ``H, W`` the frame size.
- Model input: ``float32 (B, 3, h, w)`` (``nchw``) or ``(B, h, w, 3)`` (``nhwc``), channels in
  ``spec.channels`` order, ``(h, w) = spec.target_size`` or the frame size.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from stabbench.errors import ModelError, UsageError

SPEC_FILE_SUFFIX = ".stabbench.json"
"""A model ``dir/net.onnx`` picks up ``dir/net.stabbench.json`` (same stem) if it exists."""

RESIZE_MODES = ("stretch", "none")
CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
ACTIVATIONS = ("none", "softmax", "sigmoid")
#: The fields of the input side: what a predictor object (raw frames) ignores.
INPUT_FIELDS = ("input_size", "resize", "scale", "mean", "std", "channels", "layout")


@dataclass(frozen=True)
class ModelSpec:
    """Pre- and post-processing of a model: how frames become its input (for inference and
    for training alike) and how its output becomes labels. Recorded in results and written
    beside exported models as ``<stem>.stabbench.json`` (:meth:`to_dict`).

    Input side (applied by the wrappers of model files and ``nn.Module`` s, and by the
    trainer; a Python predictor object receives the raw ``uint8`` frames and ignores these):

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
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "spec") -> ModelSpec:
        """Build from a mapping (a JSON file, CLI strings); raises ``ValueError`` naming ``source``."""
        return cls(**coerce_fields(values, source=source))


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSpec))


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
    """Check keys and convert values (JSON types or CLI strings) to :class:`ModelSpec` types.

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


def resolve_spec(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[ModelSpec, dict[str, str]]:
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
            ModelSpec(**values)  # every check is per field: blame the layer that set it
        except (ValueError, TypeError) as exc:
            message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
            raise (UsageError if source == "cli" else ModelError)(message) from None
        merged.update(values)
        sources.update({key: source for key in values})
    try:
        spec = ModelSpec(**merged)
    except ValueError as exc:
        culprits = sorted({sources[k] for k in merged if sources[k] != "default"})
        if culprits == ["cli"]:
            raise UsageError(f"invalid preprocessing option: {exc}") from None
        raise ModelError(f"invalid preprocessing ({', '.join(culprits) or 'defaults'}): {exc}") from None
    return spec, sources


# ----------------------------------------------------------------------------- the input side


def prepare_frames(frames: Any, spec: ModelSpec, *, resize: bool = True) -> Any:
    """``uint8 (B, H, W, 3)`` RGB frames -> the model's float32 input (see the Convention).

    ``frames`` is a NumPy array (returns a contiguous NumPy array; resized with OpenCV,
    bilinear) or a torch tensor on any device (returns a tensor there; never resized: the
    trainer resizes its data once, with the same OpenCV call, when it loads it).
    ``resize=False`` skips resizing NumPy frames too.
    """
    if isinstance(frames, np.ndarray):
        x = frames.astype(np.float32)
        size = spec.target_size if resize else None
        if size is not None and x.shape[1:3] != tuple(size):
            import cv2

            x = np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in x])
        if spec.channels == "bgr":
            x = x[..., ::-1]
        x = (x * np.float32(spec.scale) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if spec.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)
    import torch

    x = frames.float()
    if spec.channels == "bgr":
        x = x.flip(-1)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=x.device)
    std = torch.tensor(spec.std, dtype=torch.float32, device=x.device)
    x = (x * torch.tensor(spec.scale, dtype=torch.float32) - mean) / std
    if spec.layout == "nchw":
        x = x.permute(0, 3, 1, 2)
    return x.contiguous()


__all__ = [
    "ACTIVATIONS",
    "CHANNEL_ORDERS",
    "INPUT_FIELDS",
    "LAYOUTS",
    "ModelSpec",
    "RESIZE_MODES",
    "SPEC_FILE_SUFFIX",
    "coerce_fields",
    "prepare_frames",
    "read_spec_file",
    "resolve_spec",
    "spec_file_for",
]
