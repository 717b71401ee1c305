"""Ground-truth predictors (``builtin:oracle``, ``flicker``, ``random-flip``, ``shifted``, ``constant``):
reference predictors that make the metric visible.

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
from typing import Any

import numpy as np

from stabbench.conventions import BAND_WIDTH, IGNORE_LABEL
from stabbench.errors import ModelError

IGNORE = IGNORE_LABEL


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

    def __init__(self, rate: float = 0.1, band: int = BAND_WIDTH, seed: int = 0):
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
