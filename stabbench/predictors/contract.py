"""The predictor contract and the sequence runner.

A predictor is any object with ``predict(frames)``; :func:`predict_sequence` feeds it one
sequence in temporal order and turns what it returns into labels (see
:mod:`stabbench.predictors.output` for the accepted outputs).

Convention
----------
- ``frames``: NumPy ``uint8`` array ``(B, H, W, 3)``, RGB, ``B >= 1`` consecutive frames of
  one sequence, always in temporal order, one sequence at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from stabbench.errors import ModelError, StabbenchError
from stabbench.predictors.output import NonFinite, map_foreground, normalize_output
from stabbench.predictors.spec import ModelSpec


@runtime_checkable
class Predictor(Protocol):
    """What a user implements to wrap any framework (see the package docstring).

    Required: ``predict(frames) -> np.ndarray``. Optional, looked up with ``getattr``:

    - ``reset()``: called before each sequence (stateful video models drop their memory).
    - ``max_batch``: int attribute; the most frames one ``predict`` call may receive
      (default: the runner's batch size). A stateful model may leave it unset: frames of a
      batch are consecutive and in order, so it can loop over them itself.
    - ``begin_sequence(sequence)`` (advanced, used by the built-in oracles and precomputed
      predictions): called after ``reset()`` with the sequence about to be fed: a
      :class:`~stabbench.synth.SyntheticSequence`, or for real video a
      :class:`~stabbench.realvideo.VideoSequence` (``id``, ``num_frames``, ``frame_names``;
      ``masks()`` only with annotations). An oracle reads its ground truth; precomputed
      predictions read which masks to serve. Real models must not use it.
    """

    def predict(self, frames: np.ndarray) -> np.ndarray: ...


def _check_frames(frames: np.ndarray) -> None:
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3):
        got = f"{getattr(frames, 'shape', None)} {getattr(frames, 'dtype', type(frames).__name__)}"
        raise ValueError(f"frames must be a uint8 array (B, H, W, 3), got {got}")


def predict_sequence(
    predictor: Predictor,
    frames: np.ndarray,
    *,
    spec: ModelSpec | None = None,
    sequence: Any = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, list[NonFinite]]:
    """Run one sequence through a predictor: labels ``(N, H, W)`` and the non-finite outputs seen.

    Calls ``reset()`` (if defined), then ``begin_sequence(sequence)`` (if defined and a
    ``sequence`` is given), then ``predict`` on consecutive batches of at most
    ``batch_size`` frames (and at most ``predictor.max_batch``; default: all frames in one
    call), each checked with :func:`normalize_output`; finally ``spec.foreground_class``
    is applied. An exception raised inside ``reset``, ``begin_sequence`` or ``predict`` becomes a
    :class:`ModelError`. Each :class:`NonFinite` carries its frame range; the caller decides.
    """
    _check_frames(frames)
    spec = spec or ModelSpec()
    n, height, width = frames.shape[:3]
    if callable(getattr(predictor, "reset", None)):
        _call(predictor.reset, "reset()")
    if sequence is not None and callable(getattr(predictor, "begin_sequence", None)):
        _call(predictor.begin_sequence, "begin_sequence()", sequence)
    step = n if batch_size is None else max(1, int(batch_size))
    max_batch = getattr(predictor, "max_batch", None)
    if max_batch:
        step = min(step, int(max_batch))
    labels: list[np.ndarray] = []
    issues: list[NonFinite] = []
    for start in range(0, n, step):
        chunk = frames[start : start + step]
        where = f"frame {start}" if len(chunk) == 1 else f"frames {start}..{start + len(chunk) - 1}"
        out = _call(predictor.predict, f"predict() on {where}", chunk)
        got, found = normalize_output(out, len(chunk), height, width, spec.num_classes, spec.threshold)
        labels.append(got)
        if found is not None:
            issues.append(dataclasses.replace(found, frames=(start, start + len(chunk) - 1)))
    result = np.concatenate(labels) if len(labels) > 1 else labels[0]
    return map_foreground(result, spec.foreground_classes), issues


def _call(method: Callable[..., Any], what: str, *args: Any) -> Any:
    """Call a predictor's method; anything it raises (``SystemExit`` included) is a ModelError."""
    try:
        return method(*args)
    except (StabbenchError, KeyboardInterrupt):  # already typed (e.g. a DataError of precomputed masks)
        raise
    except BaseException as exc:  # the user's model failed: a bad-model error, with its cause
        raise ModelError(f"model failed in {what}: {type(exc).__name__}: {exc}") from exc


__all__ = ["Predictor", "predict_sequence"]
