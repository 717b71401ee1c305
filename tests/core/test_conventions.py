"""stabbench.conventions: one home per constant, the same value in every layer."""

from __future__ import annotations

import perturbations as P
from stabbench.datasets.base import IGNORE_LABEL as DATASET_IGNORE
from stabbench.metrics import functional as F


def test_ignore_label_matches_datasets():
    assert F.IGNORE_LABEL == DATASET_IGNORE == P.render.IGNORE_LABEL
