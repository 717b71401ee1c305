"""stabbench.predictors.oracles: the ground-truth oracles (exact, flicker, shifted, constant,
random flips) on synthetic masks."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.errors import ModelError
from stabbench.metrics.functional import boundary_band
from stabbench.predictors import load_predictor, predict_sequence


class FakeSequence:
    """What the oracles read from a SyntheticSequence: ``id`` and ``masks()``."""

    def __init__(self, masks: np.ndarray, id: str = "seq-0000"):
        self.id, self._masks = id, masks

    def masks(self) -> np.ndarray:
        return self._masks


def disc_masks(n: int = 6, h: int = 48, w: int = 64, classes: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        masks[t][(yy - 24) ** 2 + (xx - 20 - 3 * t) ** 2 < 12**2] = 1
        if classes > 2:
            masks[t][:, 50:] = 2
    masks[:, :2, :] = 255  # an ignore strip
    return masks


def test_oracle_is_exactly_the_ground_truth_with_ignore_as_zero():
    masks = disc_masks(classes=3)
    seq = FakeSequence(masks)
    loaded = load_predictor("builtin:oracle")
    frames = np.zeros((*masks.shape, 3), np.uint8)
    labels, issues = predict_sequence(loaded.predictor, frames, spec=loaded.spec, sequence=seq, batch_size=4)
    np.testing.assert_array_equal(labels, np.where(masks == 255, 0, masks))
    assert issues == [] and loaded.info["stateful"]
    with pytest.raises(ModelError, match="begin_sequence"):
        predict_sequence(load_predictor("builtin:oracle").predictor, frames)


def test_flicker_oracle_deterministic_and_flips_at_rate_within_band():
    masks = disc_masks(n=8, h=96, w=128)
    frames = np.zeros((*masks.shape, 3), np.uint8)

    def flicker(model: str, batch: int, seq_id: str = "seq-0000") -> np.ndarray:
        loaded = load_predictor(model)
        return predict_sequence(loaded.predictor, frames, sequence=FakeSequence(masks, seq_id), batch_size=batch)[0]

    a = flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=3)
    np.testing.assert_array_equal(a, flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=8))  # batching-independent
    assert (a != flicker("builtin:flicker,rate=0.2,band=9,seed=2", batch=3)).any()
    assert (a != flicker("builtin:flicker,rate=0.2,band=9,seed=1", batch=3, seq_id="other")).any()
    gt = np.where(masks == 255, 0, masks)
    band = np.stack([boundary_band(m, 9) for m in masks])
    flipped = a != gt
    assert not flipped[~band].any() and not flipped[masks == 255].any()
    assert abs(flipped[band].mean() - 0.2) < 0.03, flipped[band].mean()
    assert 500 < band[0].sum() < 800  # 9 px around a disc of radius 12 (perimeter ~75 px)
    assert not (a[0][flipped[0]] == gt[0][flipped[0]]).any()  # binary: flips go to the other class


def test_other_builtins():
    masks = disc_masks(n=5, h=64, w=80)
    frames = np.zeros((*masks.shape, 3), np.uint8)
    gt = np.where(masks == 255, 0, masks)
    seq = FakeSequence(masks)

    def labels(model: str) -> np.ndarray:
        return predict_sequence(load_predictor(model).predictor, frames, sequence=seq)[0]

    np.testing.assert_array_equal(labels("builtin:shifted,lag=2"), gt[[0, 0, 0, 1, 2]])
    assert (labels("builtin:constant") == 0).all() and (labels("builtin:constant,class=1") == 1).all()
    flips = labels("builtin:random-flip,rate=0.1") != gt
    assert abs(flips[masks != 255].mean() - 0.1) < 0.02 and not flips[masks == 255].any()
