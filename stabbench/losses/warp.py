"""Backward warping of a frame ``t+1`` quantity into frame ``t`` along a forward flow.

Convention (that of :mod:`perturbations.geometry`, in PyTorch layout):
    * Tensors are ``[B, C, H, W]``; coordinates are ``(x, y)`` in pixels, ``x`` = column
      (to the right), ``y`` = row (down).
    * Integer coordinates are pixel **centres**: pixel ``[i, j]`` is the point ``(x=j, y=i)``;
      the image spans ``[-0.5, W-0.5] x [-0.5, H-0.5]``.
    * A flow is ``[B, 2, H, W]`` float with channel 0 = dx, channel 1 = dy. The forward flow
      ``f`` of the pair ``(t, t+1)`` says the content at pixel ``p`` of frame ``t`` is at
      ``p + f(p)`` in frame ``t+1``. (A NumPy ``(H, W, 2)`` flow becomes one with
      ``torch.from_numpy(flow).permute(2, 0, 1)[None]``.)
    * "Inside" means inside the hull of the pixel centres, ``[0, W-1] x [0, H-1]``, where
      bilinear sampling needs no border value.
    * Pixel-centre coordinates map to ``grid_sample``'s normalised ones by
      ``x_norm = 2 x / (W - 1) - 1`` with ``align_corners=True`` (so ``x = 0`` and
      ``x = W - 1`` are the centres of the first and last column).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stabbench.losses._checks import check_4d, check_same_bhw

#: Padding modes of :func:`warp_backward` (those of ``torch.nn.functional.grid_sample``).
PADDING_MODES = ("zeros", "border", "reflection")
#: Slack (pixels) of the inside test, so float32 round-off at the last pixel centre
#: (``W - 1 + 1e-5``) still counts as inside; the sample there differs from the border value
#: by less than 0.1 % with zero padding.
INSIDE_TOLERANCE = 1e-3


def flow_targets(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x + dx, y + dy)``: the frame ``t+1`` point of every pixel of frame ``t``, two ``[B, H, W]``."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)
    return flow[:, 0] + xs[None, None, :], flow[:, 1] + ys[None, :, None]


def warp_backward(x: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a frame ``t+1`` quantity at ``p + flow(p)`` for every pixel ``p`` of frame ``t``.

    ``warped[b, :, i, j] = x[b, :, y', x']`` (bilinear) with ``(x', y') = (j, i) + flow[b, :, i, j]``:
    the result lives on frame ``t``'s pixel grid, aligned with frame ``t``. Differentiable
    w.r.t. ``x`` and ``flow``; no NumPy, runs on the device of its inputs.

    Convention: see the module docstring (``(x, y)`` order, pixel centres, forward flow
    ``t -> t+1`` in pixels, channel 0 = dx). To bring frame ``t`` into frame ``t+1`` pass
    frame ``t``'s quantity with the backward flow ``t+1 -> t``.

    Args:
        x: ``[B, C, H, W]`` floating, the frame ``t+1`` quantity (image, probabilities, ...).
        flow: ``[B, 2, H, W]`` floating, forward flow of ``(t, t+1)`` (any float dtype; the
            sampling grid is built in it and then cast to ``x``'s dtype).
        padding: value of samples outside the image, ``"zeros"``, ``"border"`` or
            ``"reflection"`` (``grid_sample``'s ``padding_mode``); masked out by ``inside``
            in any case.

    Returns:
        warped: ``[B, C, H, W]`` of ``x``'s dtype.
        inside: ``[B, 1, H, W]`` bool, True where ``p + flow(p)`` lies in ``[0, W-1] x [0, H-1]``
            (up to :data:`INSIDE_TOLERANCE` px).

    Example:
        >>> x = torch.arange(12.).reshape(1, 1, 3, 4)
        >>> flow = torch.zeros(1, 2, 3, 4); flow[:, 0] = 1.0      # content moves 1 px right
        >>> warped, inside = warp_backward(x, flow)
        >>> warped[0, 0, 0].tolist(), inside[0, 0, 0].tolist()
        ([1.0, 2.0, 3.0, 0.0], [True, True, True, False])
    """
    check_4d("x", x)
    check_4d("flow", flow, channels=2)
    check_same_bhw("flow", flow, "x", x)
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {', '.join(PADDING_MODES)}; got {padding!r}")
    _, _, h, w = x.shape
    gx, gy = flow_targets(flow)
    tol = INSIDE_TOLERANCE
    inside = (gx >= -tol) & (gx <= w - 1 + tol) & (gy >= -tol) & (gy <= h - 1 + tol)
    # a 1-px axis has a single centre; align_corners=True maps any coordinate onto it
    sx = 2.0 / (w - 1) if w > 1 else 0.0
    sy = 2.0 / (h - 1) if h > 1 else 0.0
    grid = torch.stack((gx * sx - 1.0, gy * sy - 1.0), dim=-1).to(x.dtype)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return warped, inside[:, None]
