"""The temporal loss of Liu et al. (ECCV 2020), the peer method fine-tuned in the same harness.

Y. Liu, C. Shen, C. Yu, J. Wang, "Efficient Semantic Video Segmentation with Per-frame
Inference", ECCV 2020, Eq. (temporal loss); public code
github.com/irfanICMLL/ETC-Real-time-Per-frame-Semantic-video-segmentation, ``model/flow_model.py``
(``FlowModel.cal_loss``: ``noc_mask2 = exp(-|sum_c(I_t - warp(I_t+1))|)``, ``ST_loss =
st_weight * MSE(pred_t * noc_mask2, warp(pred_t+1) * noc_mask2)``; ``st_weight`` 0.1 in its
Cityscapes config):

    L_liu = 1/(B H W) * sum_{b, p} O(p) * sum_c (q_t[c](p) - q^_{t+1}[c](p))^2
    O(p)  = exp(-alpha * |sum_c (I_t[c](p) - I^_{t+1}[c](p))|) * inside(p)

``q_t`` is frame ``t``'s class-probability map (softmax), ``q^_{t+1}`` and ``I^_{t+1}`` are frame
``t+1``'s probabilities and image warped back into ``t`` along the forward flow
(:func:`~stabbench.losses.warp.warp_backward`), ``O`` the photometric non-occlusion weight.

Choices (the paper and its code differ, or are silent):
    * Probabilities, as the paper writes (its code compares raw logits, whose scale is free).
    * The weight ``O`` once, as the paper writes (the code's MSE of masked maps weights by ``O^2``).
    * Images ``I`` in RGB ``[0, 1]``, independent of the model's input normalisation; the
      code's ``alpha = 1`` on ImageNet-normalised images (std about 0.226) is
      ``alpha = 1 / 0.226`` (``LIU_ALPHA`` in :mod:`stabbench.conventions`) here.
    * Frame ``t`` is the reference: its prediction is detached, so only frame ``t+1``'s
      prediction is trained (the code lets both move), as the Coherent Loss's targets are.
    * Pixels whose flow target leaves the image have ``O = 0``; no forward-backward check
      (Liu et al. rely on the photometric weight alone).

Convention (that of :mod:`stabbench.losses.warp`): tensors ``[B, C, H, W]``; ``flow_fw``
``[B, 2, H, W]`` in pixels, channel 0 = dx, 1 = dy, integer coordinates = pixel centres; the
content at pixel ``p`` of frame ``t`` is at ``p + flow_fw(p)`` in frame ``t+1``.
"""

from __future__ import annotations

import torch
from torch import nn

from stabbench.conventions import LIU_ALPHA, LIU_WEIGHT
from stabbench.losses._checks import check_4d, check_real, check_same_bhw
from stabbench.losses.warp import warp_backward


def occlusion_weight(image_t: torch.Tensor, image_t1: torch.Tensor, flow_fw: torch.Tensor,
                     alpha: float = LIU_ALPHA) -> torch.Tensor:
    """``O = exp(-alpha |sum_c (I_t - warp(I_t+1))|)``, 0 where the flow leaves the image: ``[B, 1, H, W]``.

    ``image_t``, ``image_t1``: ``[B, 3, H, W]`` in ``[0, 1]``; see the module's Convention.
    """
    warped, inside = warp_backward(image_t1, flow_fw.to(image_t1.dtype))
    difference = (image_t - warped).sum(dim=1, keepdim=True).abs()
    return torch.exp(-alpha * difference) * inside.to(image_t.dtype)


def liu_temporal_loss(logits_t: torch.Tensor, logits_t1: torch.Tensor, image_t: torch.Tensor, image_t1: torch.Tensor,
                      flow_fw: torch.Tensor, alpha: float = LIU_ALPHA) -> torch.Tensor:
    """``L_liu`` of a batch of pairs (module docstring), a 0-d tensor; gradient only to ``logits_t1``.

    Args:
        logits_t, logits_t1: ``[B, C, H, W]`` raw scores of frames ``t`` and ``t+1``.
        image_t, image_t1: ``[B, 3, H, W]`` the frames, RGB in ``[0, 1]``.
        flow_fw: ``[B, 2, H, W]`` forward flow ``t -> t+1`` in pixels (see the Convention).
        alpha: sharpness of the photometric weight (:data:`LIU_ALPHA`).

    Example:
        >>> z = torch.randn(1, 2, 4, 5)
        >>> img = torch.rand(1, 3, 4, 5)
        >>> float(liu_temporal_loss(z, z, img, img, torch.zeros(1, 2, 4, 5)))   # perfect agreement
        0.0
    """
    check_4d("logits_t", logits_t)
    check_4d("logits_t1", logits_t1)
    check_4d("image_t", image_t, channels=3)
    check_4d("image_t1", image_t1, channels=3)
    check_4d("flow_fw", flow_fw, channels=2)
    if logits_t.shape != logits_t1.shape:
        raise ValueError(f"logits_t and logits_t1 must have the same shape, got {tuple(logits_t.shape)} vs {tuple(logits_t1.shape)}")
    for name, x in (("image_t", image_t), ("image_t1", image_t1), ("flow_fw", flow_fw)):
        check_same_bhw(name, x, "logits_t", logits_t)
    alpha = check_real("alpha", alpha)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    with torch.no_grad():
        weight = occlusion_weight(image_t.to(logits_t1.dtype), image_t1.to(logits_t1.dtype), flow_fw, alpha)
        reference = logits_t.softmax(dim=1)
    warped, _ = warp_backward(logits_t1.softmax(dim=1), flow_fw)
    per_pixel = (reference - warped).square().sum(dim=1, keepdim=True)
    return (weight * per_pixel).mean()


class LiuTemporalLoss(nn.Module):
    """:func:`liu_temporal_loss` as a module: ``forward(logits_t, logits_t1, image_t, image_t1, flow_fw)``."""

    def __init__(self, alpha: float = LIU_ALPHA):
        super().__init__()
        self.alpha = alpha

    def forward(self, logits_t, logits_t1, image_t, image_t1, flow_fw) -> torch.Tensor:
        return liu_temporal_loss(logits_t, logits_t1, image_t, image_t1, flow_fw, alpha=self.alpha)


__all__ = ["LIU_ALPHA", "LIU_WEIGHT", "LiuTemporalLoss", "liu_temporal_loss", "occlusion_weight"]
