"""stabbench.metrics.confusion: ConfusionMeter per sequence, per group and per class."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.metrics import ConfusionMeter
from tests.helpers import vertical_edge


def test_confusion_meter_groups_and_rows():
    meter = ConfusionMeter(2)
    gt = vertical_edge(4, 8, col=4)
    meter.update("a", gt, gt)
    meter.update("a", gt, gt)
    meter.update("b", np.zeros_like(gt), gt)
    res = meter.compute()
    assert res["frames"] == 3 and res["pixels"] == 96 and res["sequences"] == 2
    np.testing.assert_array_equal(meter.matrix(), [[48, 0], [16, 32]])
    assert res["mIoU"] == pytest.approx((100 * 48 / 64 + 100 * 32 / 48) / 2)
    rows = meter.per_sequence()
    assert rows[0] == {"sequence": "a", "mIoU": 100.0, "frames": 2, "pixels": 64}
    assert rows[1]["mIoU"] == pytest.approx(25.0)  # class 0: 16/32, class 1: 0/16
    by_group = meter.compute({"a": "clean", "b": "noisy"})
    assert by_group["clean"]["mIoU"] == 100.0 and by_group["noisy"]["frames"] == 1
    classes = meter.per_class(["background", "object"])
    assert classes[1] == {
        "class": 1,
        "name": "object",
        "IoU": pytest.approx(200 / 3),
        "gt_pixels": 48,
        "pred_pixels": 32,
    }
