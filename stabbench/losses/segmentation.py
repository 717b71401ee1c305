"""Supervised segmentation losses for the labelled images (L_seg of the Coherent Loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stabbench.losses._checks import check_4d, check_labels
from stabbench.losses.lovasz import lovasz_softmax

SEG_LOSSES = ("ce", "lovasz", "ce+lovasz")


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: str = "ce", ignore_index: int | None = 255
) -> torch.Tensor:
    """Supervised loss of logits against labels.

    ``"ce"``: cross-entropy averaged over the non-ignored pixels of the batch (``0`` with a
    valid zero gradient if all are ignored, where ``F.cross_entropy`` would give NaN);
    ``"lovasz"``: :func:`lovasz_softmax` of ``softmax(logits)`` (classes present, whole
    batch); ``"ce+lovasz"``: their sum with weight 1 each (SCHP's recipe, unbalanced).

    Args:
        logits: ``[B, C, H, W]`` raw scores.
        target: ``[B, H, W]`` integer class ids in ``[0, C)`` or ``ignore_index``.
        ignore_index: label of unlabelled pixels (None: every pixel is labelled).
    """
    if kind not in SEG_LOSSES:
        raise ValueError(f"kind must be one of {', '.join(SEG_LOSSES)}; got {kind!r}")
    check_4d("logits", logits)
    target = check_labels("target", target)
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target must have shape [B, H, W] = {tuple(logits.shape[:1] + logits.shape[2:])}, "
                         f"got {tuple(target.shape)}")
    loss = logits.new_zeros(())
    if "ce" in kind.split("+"):
        target_l = target.long()
        if ignore_index is None:
            loss = loss + F.cross_entropy(logits, target_l)
        else:
            count = (target_l != ignore_index).sum().to(logits.dtype)
            ce = F.cross_entropy(logits, target_l, ignore_index=ignore_index, reduction="sum")
            loss = loss + ce / count.clamp_min(1.0)
    if "lovasz" in kind.split("+"):
        loss = loss + lovasz_softmax(logits.softmax(1), target, ignore_index=ignore_index)
    return loss


class SegmentationLoss(nn.Module):
    """Module form of :func:`segmentation_loss`."""

    def __init__(self, kind: str = "ce", ignore_index: int | None = 255) -> None:
        super().__init__()
        if kind not in SEG_LOSSES:
            raise ValueError(f"kind must be one of {', '.join(SEG_LOSSES)}; got {kind!r}")
        self.kind, self.ignore_index = kind, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(logits, target, self.kind, self.ignore_index)
