"""Built-in predictors (``--model builtin:NAME[,key=value,...]``) and the reference parser.

Parameters follow the name, separated by commas (shell-safe); ``?`` and ``&`` work too:
``builtin:flicker,rate=0.1,band=15,seed=0`` == ``"builtin:flicker?rate=0.1&band=15"``.
Omitted parameters take their defaults; the recorded id lists them all, sorted. The
predictors themselves are in :mod:`~stabbench.predictors.oracles` (ground-truth references)
and :mod:`~stabbench.predictors.mediapipe` (a real model). Built-in *architectures* (to
train, or to evaluate with ``--weights``) are ``arch:NAME`` (:mod:`stabbench.models`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from stabbench.conventions import BAND_WIDTH
from stabbench.errors import UsageError
from stabbench.predictors.mediapipe import MEDIAPIPE_FILES, make_mediapipe
from stabbench.predictors.oracles import (
    ConstantPredictor,
    FlickerOracle,
    OraclePredictor,
    RandomFlipOracle,
    ShiftedOracle,
)

MEDIAPIPE_VARIANTS = tuple(MEDIAPIPE_FILES)


def split_reference(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``"flicker,rate=0.2&seed=1"`` -> ``("flicker", [("rate", "0.2"), ("seed", "1")])``.

    The name ends at the first ``,`` or ``?``; items are separated by ``,`` or ``&``, values
    are URL-unquoted. An item without ``=`` is a :class:`UsageError`.
    """
    cut = min([i for i in (text.find(","), text.find("?")) if i >= 0], default=len(text))
    name, rest = text[:cut].strip(), text[cut + 1 :]
    items = []
    for item in filter(None, (p.strip() for p in rest.replace("&", ",").split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"{name}: parameter {item!r} needs a value (key=value)")
        items.append((key.strip(), unquote(value.strip())))
    return name, items


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
    if v not in MEDIAPIPE_VARIANTS:
        raise ValueError(f"must be one of {', '.join(MEDIAPIPE_VARIANTS)}")
    return v


def _make_mediapipe(device: str, variant: str) -> Builtin:
    return Builtin("mediapipe-selfie", {"variant": variant}, **make_mediapipe(variant))


# name -> (constructor(device, **params), {param: (parser, default)}, one-line description)
BUILTINS: dict[str, tuple[Callable[..., Any], dict[str, tuple[Callable[[str], Any], Any]], str]] = {
    "oracle": (lambda device: OraclePredictor(), {}, "the ground truth (S=100, mIoU=100)"),
    "flicker": (
        lambda device, rate, band, seed: FlickerOracle(rate, band, seed),
        {"rate": (_rate, 0.1), "band": (_odd_positive, BAND_WIDTH), "seed": (_int_at_least(0), 0)},
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
    name, items = split_reference(text)
    if name not in BUILTINS:
        raise UsageError(f"unknown built-in predictor {name!r} (known: {', '.join(sorted(BUILTINS))})")
    schema = BUILTINS[name][1]
    params = {key: default for key, (_, default) in schema.items()}
    for key, value in items:
        if key not in schema:
            known = ", ".join(schema) or "none"
            raise UsageError(f"builtin:{name}: unknown parameter {key!r} (parameters: {known})")
        try:
            params[key] = schema[key][0](value)
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
