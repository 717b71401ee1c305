"""The Coherent Loss (method.md section 4): boundary and global coherency of a frame pair.

    L = L_seg + lambda_bc * L_bc + lambda_gc * L_gc

Each coherency term has a forward part (frame ``t`` is the reference: its prediction,
detached, supervises frame ``t+1``'s prediction warped into ``t`` along the forward flow)
and a backward part (``t+1`` is the reference, ``t`` is warped into ``t+1`` along the
backward flow); the two parts are added. Targets never carry a gradient, so each part
trains only the non-reference frame.

Convention (that of :mod:`perturbations.geometry` and :mod:`stabbench.losses.warp`):
    * ``logits_t``, ``logits_t1``: ``[B, C, H, W]`` raw scores of frames ``t`` and ``t+1``
      (pair ``b`` of the batch is ``(logits_t[b], logits_t1[b])``).
    * ``flow_fw``: ``[B, 2, H, W]`` float, channel 0 = dx, 1 = dy, in pixels, integer
      coordinates = pixel centres: the content at pixel ``p`` of frame ``t`` is at
      ``p + flow_fw(p)`` in frame ``t+1``. ``valid_fw``: ``[B, H, W]`` (or ``[B, 1, H, W]``)
      bool on frame ``t``'s grid, the pixels with a trusted correspondence (e.g. passing
      the forward-backward check; :mod:`stabbench.flow`).
    * ``flow_bw``, ``valid_bw``: the same for the backward flow ``t+1 -> t``, on frame
      ``t+1``'s grid.
    * Pixels whose target point falls outside ``[0, W-1] x [0, H-1]`` are dropped too.

Choices where the paper is silent (all versioned with this module):
    * Band: the edge of the hard prediction (a pixel whose label ``a`` has a 4-neighbour
      ``b < a``, marked on one side only) dilated by a Euclidean disc of radius
      ``(width - 1) / 2`` -- the definition of S_boundary's band in
      :func:`stabbench.metrics.functional.boundary_band`, so the band is exactly ``width``
      px across a straight edge.
    * L_bc: Lovasz-softmax over the whole batch (one sort over the band pixels of all pairs,
      classes present in the band target), forward + backward.
    * L_gc: class **probabilities** are warped (bilinear mixing of distributions stays a
      distribution, is what the confidence test compares, and is the same warped
      prediction L_bc sees); the log is taken after a clamp at the dtype's smallest normal
      number, which only guards exact zeros, so a confident disagreement keeps its gradient.
      Warping logits then applying softmax would instead sharpen the mixture at object
      edges. The soft cross-entropy ``-sum_c p_ref[c] log q[c]`` is averaged over the
      selected pixels of the batch (``0``, with a valid zero gradient, if none), forward +
      backward. Being a cross-entropy, not a KL divergence, a selected pixel scores at least
      the entropy of its target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stabbench.conventions import BAND_WIDTH
from stabbench.losses._checks import check_4d, check_labels, check_mask, check_real, check_same_bhw, check_width
from stabbench.losses.lovasz import _lovasz_softmax
from stabbench.losses.warp import warp_backward

#: The paper's confidence threshold (VHS / DAVIS settings); the band width is in conventions.
BETA = 5e-2


# ------------------------------------------------------------------------ band


def _disc(radius: int, device: torch.device) -> torch.Tensor:
    """``[1, 1, 2r+1, 2r+1]`` float32 kernel of the offsets with ``dx^2 + dy^2 <= r^2``."""
    d = torch.arange(-radius, radius + 1, device=device)
    return ((d[None, :] ** 2 + d[:, None] ** 2) <= radius * radius).float()[None, None]


def prediction_edges(labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """``[B, H, W]`` bool: pixels whose label ``a`` has a 4-neighbour with a label ``b < a``.

    Each boundary between two labels is marked once, on the larger label's side (as
    :func:`stabbench.metrics.functional.object_edges`). The image border is not an edge;
    ``ignore_index`` pixels are never edges and never count as a smaller neighbour.
    """
    labels = check_labels("labels", labels)
    lower = labels
    if ignore_index is not None:  # an ignore neighbour must never compare as smaller
        lower = labels.masked_fill(labels == ignore_index, torch.iinfo(labels.dtype).max)
    edges = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    edges[:, 1:, :] |= lower[:, :-1, :] < labels[:, 1:, :]  # neighbour above
    edges[:, :-1, :] |= lower[:, 1:, :] < labels[:, :-1, :]  # below
    edges[:, :, 1:] |= lower[:, :, :-1] < labels[:, :, 1:]  # left
    edges[:, :, :-1] |= lower[:, :, 1:] < labels[:, :, :-1]  # right
    if ignore_index is not None:
        edges &= labels != ignore_index
    return edges


def prediction_band(labels: torch.Tensor, width: int = BAND_WIDTH, ignore_index: int | None = None) -> torch.Tensor:
    """``[B, H, W]`` bool: the band of ``width`` px around the edges of hard labels.

    Definition: the pixels within Euclidean distance ``r = (width - 1) / 2`` (between pixel
    centres) of a pixel of :func:`prediction_edges`, i.e. the edge dilated by a digital disc
    of radius ``r`` (a ``conv2d`` with the disc, thresholded; the outside of the image has
    no edge). Same definition as S_boundary's band
    (:func:`stabbench.metrics.functional.boundary_band`): exactly ``width`` px across a
    straight edge, whatever its orientation. A single-class map gives an empty band.

    Args:
        labels: ``[B, H, W]`` integer class ids (e.g. ``logits.argmax(1)``).
        width: odd positive integer (the paper's 15).
        ignore_index: label that is never an edge (None: every label is a class).
    """
    width = check_width(width)
    edges = prediction_edges(labels, ignore_index)
    r = (width - 1) // 2
    if r == 0:
        return edges
    hits = F.conv2d(edges[:, None].float(), _disc(r, labels.device), padding=r)
    return hits[:, 0] > 0.5


def channel_argmax(x: torch.Tensor) -> torch.Tensor:
    """``x.argmax(1)`` of a finite ``[B, C, H, W]`` tensor (ties: the first channel) as ``C - 1``
    element-wise steps: on the CPU ``argmax`` over the channel dimension of NCHW is a strided
    reduction, about 40x slower at 6x2x256x256 (one thread)."""
    best, ids = x[:, 0], torch.zeros(x.shape[:1] + x.shape[2:], dtype=torch.long, device=x.device)
    for c in range(1, x.shape[1]):
        better = x[:, c] > best
        best = torch.where(better, x[:, c], best)
        ids = ids.masked_fill(better, c)
    return ids


# ------------------------------------------------------------------------ checks


def _check_pair(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw):
    """Validated inputs; masks as ``[B, H, W]`` bool."""
    check_4d("logits_t", logits_t)
    check_4d("logits_t1", logits_t1)
    if logits_t1.shape != logits_t.shape:
        raise ValueError(
            f"logits_t1 must have the shape of logits_t {tuple(logits_t.shape)}, got {tuple(logits_t1.shape)}"
        )
    if logits_t1.device != logits_t.device:
        raise ValueError(f"logits_t1 is on {logits_t1.device} but logits_t is on {logits_t.device}")
    for name, flow in (("flow_fw", flow_fw), ("flow_bw", flow_bw)):
        check_4d(name, flow, channels=2)
        check_same_bhw(name, flow, "logits_t", logits_t)
    valid_fw = check_mask("valid_fw", valid_fw, "logits_t", logits_t)
    valid_bw = check_mask("valid_bw", valid_bw, "logits_t", logits_t)
    return valid_fw, valid_bw


# ------------------------------------------------------------------------ one direction


def _boundary_direction(probs_ref, probs_other, flow, valid, width):
    """Lovasz-softmax of ``probs_other`` warped into the reference frame, on the reference's band."""
    target = channel_argmax(probs_ref.detach())
    warped, inside = warp_backward(probs_other, flow)
    keep = prediction_band(target, width) & valid & inside[:, 0]
    return _lovasz_softmax(warped, target, keep, "present", per_image=False)


def _global_direction(probs_ref, probs_other, flow, valid, beta):
    """Soft CE of warped ``probs_other`` against ``probs_ref`` where ref is more confident by > beta."""
    target = probs_ref.detach()
    warped, inside = warp_backward(probs_other, flow)
    gap = target.amax(1) - warped.detach().amax(1)
    select = valid & inside[:, 0] & (gap > beta)
    log_q = warped.clamp_min(torch.finfo(warped.dtype).tiny).log()
    ce = -(target * log_q).sum(1)
    zero = torch.zeros((), dtype=ce.dtype, device=ce.device)
    return torch.where(select, ce, zero).sum() / select.sum().to(ce.dtype).clamp_min(1.0)


# ------------------------------------------------------------------------ public terms


def boundary_coherency_loss(
    logits_t: torch.Tensor,
    logits_t1: torch.Tensor,
    flow_fw: torch.Tensor,
    valid_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    valid_bw: torch.Tensor,
    width: int = BAND_WIDTH,
) -> torch.Tensor:
    """L_bc: Lovasz-softmax consistency inside the predicted boundary band, both directions.

    Forward: the hard prediction of ``t`` (``argmax``, no gradient) is the target for
    ``softmax(logits_t1)`` warped into ``t`` along ``flow_fw``, scored on the pixels of
    ``t`` in :func:`prediction_band` ``& valid_fw &`` inside. Backward: the same with the
    frames swapped, ``flow_bw``, ``valid_bw`` and ``t+1``'s band. Returns the sum (each
    part a batch-wide Lovasz-softmax over classes present in its band).

    Convention: see the module docstring (shapes, flow directions, pixel centres).

    Returns:
        0-d tensor; ``0`` with a valid zero gradient when a band is empty (single-class
        prediction) or fully invalid. ``0`` exactly only if the warped prediction is also
        one-hot: the term rewards agreement *and* confidence inside the band.
    """
    valid_fw, valid_bw = _check_pair(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw)
    width = check_width(width)
    p_t, p_t1 = logits_t.softmax(1), logits_t1.softmax(1)
    return _boundary_direction(p_t, p_t1, flow_fw, valid_fw, width) + _boundary_direction(
        p_t1, p_t, flow_bw, valid_bw, width
    )


def global_coherency_loss(
    logits_t: torch.Tensor,
    logits_t1: torch.Tensor,
    flow_fw: torch.Tensor,
    valid_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    valid_bw: torch.Tensor,
    beta: float = BETA,
) -> torch.Tensor:
    """L_gc: confidence-gated soft cross-entropy between the frames, both directions.

    Forward: with ``p = softmax(logits_t)`` (detached) and ``q = softmax(logits_t1)`` warped
    into ``t`` along ``flow_fw``, the pixels of ``t`` that are valid, inside, and where
    ``max_c p - max_c q > beta`` score ``-sum_c p[c] log q[c]``; the mean over those pixels
    of the batch. Backward: the same with the frames swapped along ``flow_bw``. Returns the
    sum of both means.

    Convention: see the module docstring (shapes, flow directions, what is warped and why).

    Returns:
        0-d tensor; ``0`` with a valid zero gradient when no pixel is selected (e.g. the
        frames agree to within ``beta`` everywhere).
    """
    valid_fw, valid_bw = _check_pair(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw)
    beta = check_real("beta", beta)
    p_t, p_t1 = logits_t.softmax(1), logits_t1.softmax(1)
    return _global_direction(p_t, p_t1, flow_fw, valid_fw, beta) + _global_direction(p_t1, p_t, flow_bw, valid_bw, beta)


def coherent_loss(
    seg_loss: torch.Tensor,
    logits_t: torch.Tensor,
    logits_t1: torch.Tensor,
    flow_fw: torch.Tensor,
    valid_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    valid_bw: torch.Tensor,
    *,
    width: int = BAND_WIDTH,
    beta: float = BETA,
    lambda_bc: float = 1.0,
    lambda_gc: float = 5e-5,
) -> dict[str, torch.Tensor]:
    """``L = seg_loss + lambda_bc * L_bc + lambda_gc * L_gc`` (defaults: the paper's VHS setting).

    Args:
        seg_loss: 0-d tensor, the supervised loss of the labelled images
            (e.g. :func:`stabbench.losses.segmentation_loss`).
        logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw: the pair batch, see the
            module docstring.
        width: band width of L_bc; beta: confidence gap of L_gc.

    Returns:
        ``{"total", "seg", "bc", "gc"}``, 0-d tensors (``bc`` and ``gc`` unweighted).
    """
    valid_fw, valid_bw = _check_pair(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw)
    width, beta = check_width(width), check_real("beta", beta)
    lambda_bc, lambda_gc = check_real("lambda_bc", lambda_bc), check_real("lambda_gc", lambda_gc)
    if not isinstance(seg_loss, torch.Tensor) or seg_loss.ndim != 0:
        shape = tuple(seg_loss.shape) if isinstance(seg_loss, torch.Tensor) else type(seg_loss).__name__
        raise ValueError(f"seg_loss must be a 0-d tensor, got {shape}")
    p_t, p_t1 = logits_t.softmax(1), logits_t1.softmax(1)
    bc = _boundary_direction(p_t, p_t1, flow_fw, valid_fw, width)
    bc = bc + _boundary_direction(p_t1, p_t, flow_bw, valid_bw, width)
    gc = _global_direction(p_t, p_t1, flow_fw, valid_fw, beta) + _global_direction(p_t1, p_t, flow_bw, valid_bw, beta)
    total = seg_loss + lambda_bc * bc + lambda_gc * gc
    return {"total": total, "seg": seg_loss, "bc": bc, "gc": gc}


# ------------------------------------------------------------------------ modules


class BoundaryCoherencyLoss(nn.Module):
    """Module form of :func:`boundary_coherency_loss`."""

    def __init__(self, width: int = BAND_WIDTH) -> None:
        super().__init__()
        self.width = check_width(width)

    def forward(self, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw) -> torch.Tensor:
        return boundary_coherency_loss(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw, self.width)


class GlobalCoherencyLoss(nn.Module):
    """Module form of :func:`global_coherency_loss`."""

    def __init__(self, beta: float = BETA) -> None:
        super().__init__()
        self.beta = check_real("beta", beta)

    def forward(self, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw) -> torch.Tensor:
        return global_coherency_loss(logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw, self.beta)


class CoherentLoss(nn.Module):
    """Module form of :func:`coherent_loss`; ``forward`` returns ``{"total", "seg", "bc", "gc"}``.

    Example:
        >>> loss = CoherentLoss(width=15, beta=5e-2, lambda_bc=1.0, lambda_gc=5e-5)
        >>> terms = loss(seg, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw)  # doctest: +SKIP
        >>> terms["total"].backward()                                                       # doctest: +SKIP
    """

    def __init__(self, width: int = BAND_WIDTH, beta: float = BETA, lambda_bc: float = 1.0, lambda_gc: float = 5e-5):
        super().__init__()
        self.width, self.beta = check_width(width), check_real("beta", beta)
        self.lambda_bc, self.lambda_gc = check_real("lambda_bc", lambda_bc), check_real("lambda_gc", lambda_gc)

    def forward(self, seg_loss, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw) -> dict[str, torch.Tensor]:
        return coherent_loss(seg_loss, logits_t, logits_t1, flow_fw, valid_fw, flow_bw, valid_bw, width=self.width,
                             beta=self.beta, lambda_bc=self.lambda_bc, lambda_gc=self.lambda_gc)

    def extra_repr(self) -> str:
        return f"width={self.width}, beta={self.beta}, lambda_bc={self.lambda_bc}, lambda_gc={self.lambda_gc}"
