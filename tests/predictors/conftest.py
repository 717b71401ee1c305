"""Fixtures of the predictor tests: frames, and TinyNet's labels on them computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import fixtures_models as fm
from tests.helpers import MEAN, STD


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def reference(frames) -> np.ndarray:
    """Labels of TinyNet computed by hand (no stabbench code): (x / 255 - mean) / std, NCHW, argmax."""
    x = (frames.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    with torch.no_grad():
        return fm.TinyNet()(torch.from_numpy(x).permute(0, 3, 1, 2)).argmax(1).numpy()
