"""Training losses of the Coherent Loss (method.md section 4), PyTorch only, device-agnostic.

    >>> import torch
    >>> from stabbench.losses import coherent_loss, segmentation_loss
    >>> net = torch.nn.Conv2d(3, 3, 3, padding=1)                     # any segmentation model
    >>> logits_l, y_l = net(torch.randn(2, 3, 32, 32)), torch.randint(0, 3, (2, 32, 32))
    >>> logits_t, logits_t1 = net(torch.randn(2, 3, 32, 32)), net(torch.randn(2, 3, 32, 32))
    >>> flow_fw = torch.zeros(2, 2, 32, 32); flow_fw[:, 0] = 1.5      # t -> t+1, (dx, dy) px
    >>> flow_bw = -flow_fw                                             # t+1 -> t
    >>> valid_fw = valid_bw = torch.ones(2, 32, 32, dtype=torch.bool)
    >>> seg = segmentation_loss(logits_l, y_l, kind="ce+lovasz", ignore_index=255)
    >>> terms = coherent_loss(seg, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw,
    ...                       width=15, beta=5e-2, lambda_bc=1.0, lambda_gc=5e-5)
    >>> sorted(terms)
    ['bc', 'gc', 'seg', 'total']
    >>> terms["total"].backward()

Modules: :mod:`~stabbench.losses.warp` (backward warping along a forward flow, the
pixel-centre convention of :mod:`perturbations.geometry`), :mod:`~stabbench.losses.lovasz`
(Lovasz-softmax), :mod:`~stabbench.losses.coherent` (band, L_bc, L_gc, L),
:mod:`~stabbench.losses.segmentation` (L_seg), :mod:`~stabbench.losses.temporal` (the peer
temporal loss of Liu et al., ECCV 2020). Each loss is a function plus a thin
``nn.Module``. Flows are ``[B, 2, H, W]`` (channel 0 = dx); a NumPy ``(H, W, 2)`` flow is
``torch.from_numpy(flow).permute(2, 0, 1)``.
"""

from stabbench.losses.coherent import (
    BAND_WIDTH,
    BETA,
    BoundaryCoherencyLoss,
    CoherentLoss,
    GlobalCoherencyLoss,
    boundary_coherency_loss,
    coherent_loss,
    global_coherency_loss,
    prediction_band,
    prediction_edges,
)
from stabbench.losses.lovasz import LovaszSoftmax, lovasz_grad, lovasz_softmax
from stabbench.losses.segmentation import SEG_LOSSES, SegmentationLoss, segmentation_loss
from stabbench.losses.temporal import LIU_ALPHA, LIU_WEIGHT, LiuTemporalLoss, liu_temporal_loss, occlusion_weight
from stabbench.losses.warp import INSIDE_TOLERANCE, PADDING_MODES, flow_targets, warp_backward

__all__ = [
    "BAND_WIDTH",
    "BETA",
    "BoundaryCoherencyLoss",
    "CoherentLoss",
    "GlobalCoherencyLoss",
    "INSIDE_TOLERANCE",
    "LIU_ALPHA",
    "LIU_WEIGHT",
    "LiuTemporalLoss",
    "LovaszSoftmax",
    "PADDING_MODES",
    "SEG_LOSSES",
    "SegmentationLoss",
    "boundary_coherency_loss",
    "coherent_loss",
    "flow_targets",
    "global_coherency_loss",
    "lovasz_grad",
    "liu_temporal_loss",
    "lovasz_softmax",
    "occlusion_weight",
    "prediction_band",
    "prediction_edges",
    "segmentation_loss",
    "warp_backward",
]
