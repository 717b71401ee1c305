"""stabbench.losses.segmentation: cross-entropy, Lovasz and their sum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stabbench.losses import SegmentationLoss, lovasz_softmax, segmentation_loss
from tests.helpers import gen, grads, num


class TestSegmentationLoss:
    def test_kinds(self):
        logits = torch.randn(2, 3, 5, 6, generator=gen(30))
        target = torch.randint(0, 3, (2, 5, 6), generator=gen(31))
        target[0, 0] = 255
        ce = segmentation_loss(logits, target, "ce")
        assert torch.allclose(ce, F.cross_entropy(logits, target, ignore_index=255))
        lov = segmentation_loss(logits, target, "lovasz")
        assert torch.allclose(lov, lovasz_softmax(logits.softmax(1), target, ignore_index=255))
        assert torch.allclose(segmentation_loss(logits, target, "ce+lovasz"), ce + lov)
        assert torch.equal(SegmentationLoss("lovasz")(logits, target), lov)

    @pytest.mark.parametrize("kind", ["ce", "lovasz", "ce+lovasz"])
    def test_all_ignored_is_finite(self, kind):
        logits = torch.randn(1, 3, 4, 4, requires_grad=True)
        loss = segmentation_loss(logits, torch.full((1, 4, 4), 255), kind)
        (g,) = grads(loss, logits)
        assert num(loss) == 0.0 and torch.isfinite(g).all()

    def test_exceptions(self):
        with pytest.raises(ValueError, match="kind must be one of ce, lovasz, ce\\+lovasz; got 'dice'"):
            segmentation_loss(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), "dice")
        with pytest.raises(ValueError, match=r"target must have shape \[B, H, W\] = \(1, 4, 4\), got \(1, 4, 5\)"):
            segmentation_loss(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
