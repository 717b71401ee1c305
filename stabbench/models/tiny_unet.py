"""``tiny_unet``: a compact U-Net that trains on a CPU in minutes.

Input ``x``: ``float32 [B, 3, H, W]``, RGB, ``pixel / 255`` (the ImageNet mean/std
normalisation happens inside the model, so an exported file needs only ``scale = 1/255``).
Output: logits ``[B, num_classes, H, W]`` at the input resolution, for any ``H, W >= 1``
(decoder stages are resized to their skip connection, so sizes need not divide by
``2 ** depth``).

Architecture (defaults ``base=16, depth=3``: 488,035 parameters for 3 classes)::

    stem     conv3x3(3 -> 16) - norm - ReLU, conv3x3 - norm - ReLU              (full res)
    down k   maxpool 2, [conv3x3 - norm - ReLU] x 2, channels 16 -> 32 -> 64 -> 128
    up k     bilinear x2 to the skip's size, concat skip, [conv3x3 - norm - ReLU] x 2
    head     conv1x1(16 -> num_classes)

``norm``: ``batch`` (BatchNorm2d, the default) or ``group`` (GroupNorm, 8 groups or fewer).
The whole module exports with ``torch.export`` (batch, height and width dynamic).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = 8
        while channels % groups:
            groups //= 2
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class ConvBlock(nn.Sequential):
    """``[conv3x3 - norm - ReLU] x 2``."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
        )


class TinyUNet(nn.Module):
    """See the module docstring. ``channels`` of stage ``k`` = ``base * 2**k``."""

    def __init__(self, num_classes: int, base: int = 16, depth: int = 3, norm: str = "batch"):
        super().__init__()
        if num_classes < 1 or base < 1 or depth < 1:
            raise ValueError(f"tiny_unet needs num_classes, base, depth >= 1 (got {num_classes}, {base}, {depth})")
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))
        widths = [base * 2**k for k in range(depth + 1)]
        self.stem = ConvBlock(3, widths[0], norm)
        self.down = nn.ModuleList([ConvBlock(widths[k], widths[k + 1], norm) for k in range(depth)])
        self.up = nn.ModuleList([ConvBlock(widths[k + 1] + widths[k], widths[k], norm) for k in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = self.stem(x)
        skips: list[torch.Tensor] = []
        for block in self.down:
            skips.append(x)
            x = block(F.max_pool2d(x, 2, ceil_mode=True))
        k = len(skips) - 1
        for block in self.up:
            skip = skips[k]
            x = F.interpolate(x, size=[skip.shape[2], skip.shape[3]], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
            k -= 1
        return self.head(x)
