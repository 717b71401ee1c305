"""stabbench.predictors.contract: ``predict_sequence`` resets stateful predictors, feeds frames
in order within ``max_batch``, and maps foreground classes."""

from __future__ import annotations

import numpy as np

from stabbench.predictors import ModelSpec, predict_sequence
from tests import fixtures_models as fm


def test_foreground_classes_map_to_binary():
    predictor = fm.ThresholdPredictor()
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[:, :2, :, 0] = 200
    spec = ModelSpec.from_dict({"foreground_class": "0"}, source="test")
    labels, _ = predict_sequence(predictor, frames, spec=spec)
    assert labels.dtype == np.uint8 and (labels[:, :2] == 0).all() and (labels[:, 2:] == 1).all()
    spec = ModelSpec.from_dict({"foreground_class": [0, 1]}, source="test")
    assert (predict_sequence(predictor, frames, spec=spec)[0] == 1).all()


def test_stateful_predictor_is_reset_per_sequence_and_fed_in_order(frames):
    predictor = fm.StatefulPredictor()
    for k in (1, 2):
        labels, _ = predict_sequence(predictor, frames, batch_size=4)
        assert predictor.resets == k and predictor.batch_sizes[-1] == 1  # max_batch = 1 respected
        np.testing.assert_array_equal(labels[:, 0, 0], np.arange(5) % 2)
