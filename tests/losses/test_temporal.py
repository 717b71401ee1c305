"""stabbench.losses.temporal: Liu et al.'s temporal loss against a plain NumPy version, its
zero for perfect agreement, its gradient (only the non-reference frame), and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stabbench.losses import LIU_ALPHA, LiuTemporalLoss, liu_temporal_loss, occlusion_weight
from tests.helpers import flow_tensor, gen


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def shift_np(x: np.ndarray, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` sampled at ``(j + dx, i)`` (integer flow ``dx``); zeros and ``inside=False`` beyond the edge."""
    out = np.zeros_like(x)
    inside = np.zeros(x.shape[-2:], bool)
    w = x.shape[-1]
    for j in range(w):
        if 0 <= j + dx < w:
            out[..., j] = x[..., j + dx]
            inside[:, j] = True
    return out, inside


def reference_np(z_t, z_t1, img_t, img_t1, dx: int, alpha: float) -> float:
    """The loss written out in NumPy for an integer horizontal flow ``dx`` (float64)."""
    q_t, q_t1 = softmax_np(z_t), softmax_np(z_t1)
    warped_q, inside = shift_np(q_t1, dx)
    warped_i, _ = shift_np(img_t1, dx)
    weight = np.exp(-alpha * np.abs((img_t - warped_i).sum(axis=1))) * inside
    return float((weight * ((q_t - warped_q) ** 2).sum(axis=1)).mean())


def case(b=2, c=3, h=5, w=7, seed=0, dtype=torch.float64):
    g = gen(seed)
    return (torch.randn(b, c, h, w, generator=g, dtype=dtype), torch.randn(b, c, h, w, generator=g, dtype=dtype),
            torch.rand(b, 3, h, w, generator=g, dtype=dtype), torch.rand(b, 3, h, w, generator=g, dtype=dtype))


@pytest.mark.parametrize("dx", [0, 1, -2])
def test_matches_numpy_reference(dx: int) -> None:
    z_t, z_t1, img_t, img_t1 = case()
    got = liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow_tensor(2, 5, 7, dx=dx, dtype=torch.float64))
    want = reference_np(z_t.numpy(), z_t1.numpy(), img_t.numpy(), img_t1.numpy(), dx, LIU_ALPHA)
    assert math.isclose(float(got), want, rel_tol=1e-12, abs_tol=1e-15)


def test_hand_computed_single_pixel() -> None:
    # one pixel, 2 classes: q_t = (0.5, 0.5), q_t1 = softmax(0, ln 3) = (0.25, 0.75); images differ by 0.1 per channel
    z_t = torch.zeros(1, 2, 1, 1, dtype=torch.float64)
    z_t1 = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64).reshape(1, 2, 1, 1)
    img_t, img_t1 = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64), torch.full((1, 3, 1, 1), 0.4, dtype=torch.float64)
    got = liu_temporal_loss(z_t, z_t1, img_t, img_t1, torch.zeros(1, 2, 1, 1, dtype=torch.float64), alpha=2.0)
    assert math.isclose(float(got), math.exp(-2.0 * 0.3) * (0.25**2 + 0.25**2), rel_tol=1e-12)


def test_zero_for_perfect_agreement_along_the_flow() -> None:
    z_t, _, img_t, _ = case(dtype=torch.float32)
    dx = 2  # frame t+1 is frame t moved 2 px right: content of p is at p + (2, 0)
    z_t1, img_t1 = torch.roll(z_t, dx, dims=-1), torch.roll(img_t, dx, dims=-1)
    flow = flow_tensor(2, 5, 7, dx=dx)
    assert float(liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow)) == pytest.approx(0.0, abs=1e-7)
    weight = occlusion_weight(img_t, img_t1, flow)
    assert weight.shape == (2, 1, 5, 7)
    assert torch.allclose(weight[..., : 7 - dx], torch.ones(()), atol=1e-6) and torch.all(weight[..., 7 - dx :] == 0)
    # a disagreement raises the loss; an occluded (photometrically different) pixel counts less
    assert float(liu_temporal_loss(z_t, -z_t1, img_t, img_t1, flow)) > 1e-3
    darker = img_t1.clone()
    darker[..., 3] = 0.0
    assert float(occlusion_weight(img_t, darker, flow)[..., 1].max()) < float(weight[..., 1].min())


def test_gradient_only_to_the_non_reference_frame() -> None:
    z_t, z_t1, img_t, img_t1 = case(dtype=torch.float32)
    z_t.requires_grad_(True)
    z_t1.requires_grad_(True)
    loss = liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow_tensor(2, 5, 7, dx=0.5))
    grad_t, grad_t1 = torch.autograd.grad(loss, (z_t, z_t1), allow_unused=True)
    assert grad_t is None
    assert grad_t1 is not None and torch.isfinite(grad_t1).all() and grad_t1.abs().sum() > 0


def test_gradcheck_float64() -> None:
    z_t, z_t1, img_t, img_t1 = case(b=1, c=2, h=3, w=4)
    flow = flow_tensor(1, 3, 4, dx=0.3, dy=-0.4, dtype=torch.float64)
    z_t1.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: liu_temporal_loss(z_t, z, img_t, img_t1, flow), (z_t1,))


def test_module_matches_function_and_errors() -> None:
    z_t, z_t1, img_t, img_t1 = case(dtype=torch.float32)
    flow = flow_tensor(2, 5, 7, dx=1.0)
    assert torch.equal(LiuTemporalLoss(alpha=3.0)(z_t, z_t1, img_t, img_t1, flow),
                       liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow, alpha=3.0))
    with pytest.raises(ValueError, match=r"logits_t and logits_t1 must have the same shape, got \(2, 3, 5, 7\) vs \(2, 2, 5, 7\)"):
        liu_temporal_loss(z_t, z_t1[:, :2], img_t, img_t1, flow)
    with pytest.raises(ValueError, match=r"image_t must have 3 channels"):
        liu_temporal_loss(z_t, z_t1, img_t[:, :1], img_t1, flow)
    with pytest.raises(ValueError, match=r"flow_fw must match logits_t in batch and spatial size"):
        liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow[:1])
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        liu_temporal_loss(z_t, z_t1, img_t, img_t1, flow, alpha=-1.0)
    with pytest.raises(ValueError, match="logits_t must have shape"):
        liu_temporal_loss(z_t[0], z_t1, img_t, img_t1, flow)
