"""stabbench.models.tiny_unet: the built-in architecture's shapes, size and variants."""

from __future__ import annotations

import pytest
import torch

from stabbench.models import build_model, count_parameters


def test_tiny_unet_shapes_and_parameters() -> None:
    torch.manual_seed(0)
    net = build_model("tiny_unet", num_classes=3).eval()
    assert 100_000 <= count_parameters(net) <= 500_000
    x = torch.rand(2, 3, 37, 50)  # sizes that do not divide by 8
    with torch.no_grad():
        assert net(x).shape == (2, 3, 37, 50)  # (its torch.export round trip: test_finetune_writes_its_outputs)
    group = build_model("tiny_unet", num_classes=2, base=8, norm="group")
    assert group(torch.rand(1, 3, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(KeyError):
        build_model("no_such_net", num_classes=2)
