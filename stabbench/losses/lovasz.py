"""Lovasz-softmax loss (Berman, Rannen Triki & Blaschko, CVPR 2018), vectorised over classes.

The Lovasz extension of the Jaccard loss ``1 - IoU_c``, evaluated at the per-pixel errors
``m_i = |[y_i = c] - p_i[c]|``: sort the errors in decreasing order and weight each by the
increment of the Jaccard loss when its pixel joins the set of mispredicted pixels. It is
a tight convex surrogate of ``1 - IoU`` that equals it exactly on one-hot predictions.

Here all classes (and, with ``per_image=True``, all images) are sorted at once, and
ignored pixels take part with error 0 and no ground truth (so they sort last and change
nothing): no boolean indexing and no host synchronisation, and an empty selection gives a
zero loss still connected to the graph (a valid, all-zero gradient).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from stabbench.losses._checks import check_4d, check_labels, check_mask

CLASS_MODES = ("present", "all")


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. the sorted errors.

    Args:
        gt_sorted: ``[..., P]`` float 0/1 ground truth of one class, in decreasing error order.

    Returns:
        ``[..., P]``: ``J(i) - J(i-1)`` with ``J(i)`` the Jaccard loss when the first ``i + 1``
        pixels are mispredicted (``J(-1) = 0``).
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1.0 - gt_sorted).cumsum(-1)  # >= 1 everywhere: never divides by 0
    jaccard = 1.0 - intersection / union
    return torch.cat((jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]), dim=-1)


def _class_weights(fg: torch.Tensor, classes) -> torch.Tensor:
    """``[N, C]`` 0/1 weights of the classes that count, from ``fg`` ``[N, C, P]``."""
    n, c = fg.shape[:2]
    if isinstance(classes, str):
        if classes == "present":
            return (fg.sum(-1) > 0).to(fg.dtype)
        return fg.new_ones(n, c)
    weights = fg.new_zeros(c)
    weights[list(classes)] = 1.0
    return weights.expand(n, c)


def _lovasz_softmax(
    probs: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, classes="present", per_image: bool = False
) -> torch.Tensor:
    """Unchecked core: ``probs`` [B, C, H, W], ``target`` [B, H, W], ``keep`` [B, H, W] bool."""
    b, c = probs.shape[:2]
    if per_image:
        p = probs.reshape(b, c, -1)
        t, k = target.reshape(b, 1, -1), keep.reshape(b, 1, -1)
    else:
        p = probs.transpose(0, 1).reshape(1, c, -1)
        t, k = target.reshape(1, 1, -1), keep.reshape(1, 1, -1)
    labels = torch.arange(c, device=probs.device).view(1, c, 1)
    fg = ((t == labels) & k).to(p.dtype)  # [N, C, P]; ignored pixels: no ground truth
    errors = torch.where(k, (fg - p).abs(), torch.zeros((), dtype=p.dtype, device=p.device))
    errors_sorted, perm = errors.sort(dim=-1, descending=True)
    grad = lovasz_grad(fg.gather(-1, perm))
    per_class = (errors_sorted * grad).sum(-1)  # [N, C]
    weights = _class_weights(fg, classes)
    counted = weights.sum(-1)
    per_item = (per_class * weights).sum(-1) / counted.clamp_min(1.0)  # [N]
    has = ((counted > 0) & k.flatten(1).any(-1)).to(p.dtype)  # items with something to score
    # sum/count keeps the graph (and a zero gradient) when nothing is selected
    return (per_item * has).sum() / has.sum().clamp_min(1.0)


def lovasz_softmax(
    probs: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None = None,
    valid: torch.Tensor | None = None,
    classes: str | Sequence[int] = "present",
    per_image: bool = False,
) -> torch.Tensor:
    """Multi-class Lovasz-softmax loss.

    Input convention: ``probs`` are **probabilities** (softmax already applied along dim 1),
    not logits. Pixels are selected by ``target != ignore_index`` and ``valid``; the rest
    are ignored.

    Args:
        probs: ``[B, C, H, W]`` floating class probabilities.
        target: ``[B, H, W]`` integer class ids in ``[0, C)`` on selected pixels (anything,
            e.g. ``ignore_index``, elsewhere).
        ignore_index: label of ignored pixels (e.g. 255), or None.
        valid: optional ``[B, H, W]`` (or ``[B, 1, H, W]``) bool mask of pixels to score.
        classes: ``"present"`` (default): average over the classes present in the selected
            target; ``"all"``: over all ``C`` classes (an absent class scores the largest
            false-positive error); or a sequence of class ids to average over.
        per_image: score each image on its own and average over the images that have at
            least one selected pixel (and a counted class); else one loss over the batch.

    Returns:
        0-d tensor, finite; ``0`` connected to ``probs``'s graph when nothing is selected.

    Example:
        >>> probs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])   # [1, 2, 1, 2], one-hot
        >>> float(lovasz_softmax(probs, torch.tensor([[[0, 1]]])))
        0.0
    """
    check_4d("probs", probs)
    target = check_labels("target", target)
    if target.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"target must have shape [B, H, W] = {tuple(probs.shape[:1] + probs.shape[2:])}, "
                         f"got {tuple(target.shape)}")
    if target.device != probs.device:
        raise ValueError(f"target is on {target.device} but probs is on {probs.device}")
    num_classes = probs.shape[1]
    if isinstance(classes, str):
        if classes not in CLASS_MODES:
            raise ValueError(
                f"classes must be one of {', '.join(CLASS_MODES)} or a sequence of class ids; got {classes!r}"
            )
    else:
        classes = [int(k) for k in classes]
        if not classes or any(not 0 <= k < num_classes for k in classes):
            raise ValueError(f"classes must be a non-empty sequence of ids in [0, {num_classes}), got {classes}")
    keep = torch.ones_like(target, dtype=torch.bool) if valid is None else check_mask("valid", valid, "probs", probs)
    if ignore_index is not None:
        keep = keep & (target != ignore_index)
    bad = keep & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise ValueError(f"target has selected labels outside [0, {num_classes}) (ignore_index={ignore_index}): "
                         f"{sorted(set(target[bad].unique().tolist()))[:10]}")
    return _lovasz_softmax(probs, target, keep, classes, per_image)


class LovaszSoftmax(nn.Module):
    """Module form of :func:`lovasz_softmax` (inputs are probabilities, not logits).

    Example:
        >>> loss = LovaszSoftmax(ignore_index=255)
        >>> probs = torch.rand(2, 3, 8, 8).softmax(1)
        >>> loss(probs, torch.randint(0, 3, (2, 8, 8))).shape
        torch.Size([])
    """

    def __init__(self, ignore_index: int | None = None, classes: str | Sequence[int] = "present",
                 per_image: bool = False) -> None:
        super().__init__()
        self.ignore_index, self.classes, self.per_image = ignore_index, classes, per_image

    def forward(self, probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return lovasz_softmax(probs, target, self.ignore_index, valid, self.classes, self.per_image)
