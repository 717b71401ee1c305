"""stabbench.losses.coherent: the prediction band (same definition as S_boundary's) and the
Coherent Loss terms L_bc and L_gc: values, gradients, selections, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stabbench.losses import (
    BoundaryCoherencyLoss,
    CoherentLoss,
    GlobalCoherencyLoss,
    boundary_coherency_loss,
    coherent_loss,
    global_coherency_loss,
    prediction_band,
    prediction_edges,
)
from stabbench.metrics import boundary_band
from tests.helpers import flow_tensor as const_flow
from tests.helpers import gen, grads, num


def ones_mask(b: int, h: int, w: int) -> torch.Tensor:
    return torch.ones(b, h, w, dtype=torch.bool)


def smooth_logits(b: int, c: int, h: int, w: int, seed: int = 0, scale: float = 3.0, dtype=torch.float32):
    """Spatially smooth random logits (low-res noise, bilinear upsampled): varied confidences."""
    low = torch.randn(b, c, max(2, h // 6), max(2, w // 6), generator=gen(seed), dtype=torch.float64)
    return (scale * F.interpolate(low, size=(h, w), mode="bilinear", align_corners=True)).to(dtype)


def disc_labels(b: int, h: int, w: int, num_classes: int = 3) -> torch.Tensor:
    """Blobs of different classes on a background of class 0."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    labels = torch.zeros(b, h, w, dtype=torch.long)
    for i in range(b):
        labels[i][(x - w / 3 - i) ** 2 + (y - h / 2) ** 2 <= (min(h, w) / 4) ** 2] = 1
        labels[i][(x - 3 * w / 4) ** 2 + (y - h / 3 + i) ** 2 <= (min(h, w) / 6) ** 2] = num_classes - 1
    return labels


def sharp_logits(labels: torch.Tensor, num_classes: int, scale: float = 40.0) -> torch.Tensor:
    return scale * F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def shift_right(x: torch.Tensor, k: int) -> torch.Tensor:
    """Content at column ``j`` moves to ``j + k`` (the first ``k`` columns repeat column 0)."""
    out = x.clone()
    out[..., k:] = x[..., :-k]
    out[..., :k] = x[..., :1]
    return out


# =========================================================================== band


class TestBand:
    @pytest.mark.parametrize("width", [1, 5, 15])
    def test_matches_metric_band(self, width):
        """Same definition as S_boundary's band (stabbench.metrics.boundary_band)."""
        labels = disc_labels(2, 40, 50)
        labels[1, 5:9, 3:20] = 2  # a thin bar
        got = prediction_band(labels, width)
        for b in range(2):
            assert np.array_equal(got[b].numpy(), boundary_band(labels[b].numpy().astype(np.uint8), width))

    def test_straight_edge_is_width_across(self):
        labels = torch.zeros(1, 6, 40, dtype=torch.long)
        labels[..., 20:] = 1
        band = prediction_band(labels, 15)
        assert band[0].sum(1).tolist() == [15] * 6
        assert torch.equal(prediction_band(labels, 1), prediction_edges(labels))

    def test_single_class_is_empty_and_ignore(self):
        assert not prediction_band(torch.full((2, 8, 8), 2), 15).any()
        labels = torch.zeros(1, 4, 6, dtype=torch.long)
        labels[..., 3:] = 255
        assert not prediction_band(labels, 3, ignore_index=255).any()
        assert prediction_band(labels, 3).any()

    def test_exceptions(self):
        with pytest.raises(ValueError, match="band width must be an odd positive integer.*got 4"):
            prediction_band(torch.zeros(1, 4, 4, dtype=torch.long), 4)
        with pytest.raises(ValueError, match=r"labels must have shape \[B, H, W\], got \(4, 4\)"):
            prediction_band(torch.zeros(4, 4, dtype=torch.long), 3)


# =========================================================================== coherent loss


def pair_inputs(b=2, c=3, h=12, w=14, seed=0, dtype=torch.float32):
    lt = torch.randn(b, c, h, w, generator=gen(seed), dtype=dtype, requires_grad=True)
    lt1 = torch.randn(b, c, h, w, generator=gen(seed + 1), dtype=dtype, requires_grad=True)
    flow_fw = 0.7 * torch.randn(b, 2, h, w, generator=gen(seed + 2), dtype=dtype)
    flow_bw = 0.7 * torch.randn(b, 2, h, w, generator=gen(seed + 3), dtype=dtype)
    vfw = torch.rand(b, h, w, generator=gen(seed + 4)) > 0.2
    vbw = torch.rand(b, h, w, generator=gen(seed + 5)) > 0.2
    return lt, lt1, flow_fw, vfw, flow_bw, vbw


class TestCoherent:
    def test_smoke_dict_and_modules(self):
        args = pair_inputs()
        seg = torch.tensor(0.7, requires_grad=True)
        terms = coherent_loss(seg, *args, width=5, beta=0.05, lambda_bc=0.5, lambda_gc=2.0)
        assert set(terms) == {"total", "seg", "bc", "gc"} and all(v.shape == () for v in terms.values())
        assert num(terms["bc"]) > 0 and num(terms["gc"]) > 0
        assert torch.allclose(terms["total"], seg + 0.5 * terms["bc"] + 2.0 * terms["gc"])
        assert torch.allclose(terms["bc"], boundary_coherency_loss(*args, width=5))
        assert torch.allclose(terms["gc"], global_coherency_loss(*args, beta=0.05))
        mod = CoherentLoss(width=5, beta=0.05, lambda_bc=0.5, lambda_gc=2.0)(seg, *args)
        assert all(torch.equal(mod[k], terms[k]) for k in terms)
        assert torch.equal(BoundaryCoherencyLoss(5)(*args), terms["bc"])
        assert torch.equal(GlobalCoherencyLoss(0.05)(*args), terms["gc"])
        terms["total"].backward()
        assert torch.isfinite(args[0].grad).all() and args[0].grad.any() and args[1].grad.any()

    def test_masks_with_channel_dim_and_uint8(self):
        lt, lt1, ffw, vfw, fbw, vbw = pair_inputs()
        ref = boundary_coherency_loss(lt, lt1, ffw, vfw, fbw, vbw, 5)
        assert torch.equal(boundary_coherency_loss(lt, lt1, ffw, vfw[:, None], fbw, vbw.to(torch.uint8), 5), ref)

    def test_exceptions(self):
        lt, lt1, ffw, vfw, fbw, vbw = pair_inputs()
        msg = r"logits_t1 must have the shape of logits_t \(2, 3, 12, 14\), got \(2, 4, 12, 14\)"
        with pytest.raises(ValueError, match=msg):
            global_coherency_loss(lt, torch.rand(2, 4, 12, 14), ffw, vfw, fbw, vbw)
        with pytest.raises(ValueError, match=r"flow_bw must have 2 channels.*got \(2, 3, 12, 14\)"):
            global_coherency_loss(lt, lt1, ffw, vfw, torch.rand(2, 3, 12, 14), vbw)
        with pytest.raises(ValueError, match=r"flow_fw must match logits_t.*\(2, 2, 12, 13\)"):
            boundary_coherency_loss(lt, lt1, ffw[..., :13], vfw, fbw, vbw)
        with pytest.raises(ValueError, match=r"valid_fw must have shape \[B, H, W\] = \(2, 12, 14\).*got \(12, 14\)"):
            boundary_coherency_loss(lt, lt1, ffw, vfw[0], fbw, vbw)
        with pytest.raises(ValueError, match="valid_bw must be a bool mask, got dtype torch.float32"):
            boundary_coherency_loss(lt, lt1, ffw, vfw, fbw, vbw.float())
        with pytest.raises(ValueError, match=r"seg_loss must be a 0-d tensor, got \(2,\)"):
            coherent_loss(torch.zeros(2), lt, lt1, ffw, vfw, fbw, vbw)
        with pytest.raises(ValueError, match="band width must be an odd positive integer.*got 14"):
            CoherentLoss(width=14)
        with pytest.raises(ValueError, match="beta must be a finite real number, got nan"):
            GlobalCoherencyLoss(beta=float("nan"))

    def test_perfect_agreement_is_zero(self):
        labels = disc_labels(2, 20, 24)
        lt = sharp_logits(labels, 3).requires_grad_()
        lt1 = lt.detach().clone().requires_grad_()
        zero, valid = const_flow(2, 20, 24), ones_mask(2, 20, 24)
        terms = coherent_loss(torch.tensor(0.0), lt, lt1, zero, valid, zero, valid)
        assert num(terms["bc"]) < 1e-6 and num(terms["gc"]) == 0.0 and num(terms["total"]) < 1e-6
        # soft predictions that agree: no confidence gap, so no global term either
        soft = smooth_logits(2, 3, 20, 24)
        assert num(global_coherency_loss(soft, soft.clone(), zero, valid, zero, valid)) == 0.0

    def test_empty_band_gives_zero_with_gradient(self):
        lt = torch.randn(1, 3, 8, 9, generator=gen(20))
        lt[:, 1] += 20.0  # every pixel predicts class 1 in both frames: no edge, no band
        lt.requires_grad_()
        lt1 = (lt.detach() + 0.1 * torch.randn(1, 3, 8, 9, generator=gen(21))).requires_grad_()
        zero, valid = const_flow(1, 8, 9), ones_mask(1, 8, 9)
        loss = boundary_coherency_loss(lt, lt1, zero, valid, zero, valid)
        g_t, g_t1 = grads(loss, lt, lt1)
        assert num(loss) == 0.0 and torch.isfinite(g_t).all() and not g_t.any() and not g_t1.any()
        terms = coherent_loss(torch.tensor(0.0), lt, lt1, zero, ~valid, zero, ~valid)  # nothing valid at all
        g_t, g_t1 = grads(terms["total"], lt, lt1)
        assert num(terms["total"]) == 0.0 and torch.isfinite(g_t).all() and torch.isfinite(g_t1).all()

    @pytest.mark.parametrize("term", ["bc", "gc"])
    def test_gradient_reaches_only_the_non_reference_frame(self, term):
        lt, lt1, ffw, vfw, fbw, vbw = pair_inputs(seed=3)
        fn = (lambda *a: boundary_coherency_loss(*a, width=5)) if term == "bc" else global_coherency_loss
        none = torch.zeros_like(vfw)
        g_t, g_t1 = grads(fn(lt, lt1, ffw, vfw, fbw, none), lt, lt1)  # forward term only: t is the reference
        assert not g_t.any() and g_t1.any()
        g_t, g_t1 = grads(fn(lt, lt1, ffw, none, fbw, vbw), lt, lt1)  # backward term only
        assert g_t.any() and not g_t1.any()

    def test_global_selects_only_gaps_above_beta(self):
        p_t = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3]], dtype=torch.float64)
        p_t1 = torch.tensor([[0.8, 0.2], [0.58, 0.42], [0.2, 0.8]], dtype=torch.float64)
        lt = p_t.log().T.reshape(1, 2, 1, 3).requires_grad_()
        lt1 = p_t1.log().T.reshape(1, 2, 1, 3).requires_grad_()
        zero, valid = const_flow(1, 1, 3, dtype=torch.float64), ones_mask(1, 1, 3)
        # forward: gaps 0.1 (selected), 0.02 (not), -0.5 (not); backward: -0.1, -0.02, 0.1 (selected)
        fwd = -(0.9 * math.log(0.8) + 0.1 * math.log(0.2))
        bwd = -(0.2 * math.log(0.7) + 0.8 * math.log(0.3))
        assert num(global_coherency_loss(lt, lt1, zero, valid, zero, ~valid, beta=0.05)) == pytest.approx(fwd)
        assert num(global_coherency_loss(lt, lt1, zero, ~valid, zero, valid, beta=0.05)) == pytest.approx(bwd)
        loss = global_coherency_loss(lt, lt1, zero, valid, zero, valid, beta=0.05)
        assert num(loss) == pytest.approx(fwd + bwd)
        g_t, g_t1 = grads(loss, lt, lt1)
        assert g_t1[0, :, 0, 0].any() and not g_t1[0, :, 0, 1:].any()  # only pixel 0 of t+1 is trained
        assert g_t[0, :, 0, 2].any() and not g_t[0, :, 0, :2].any()  # only pixel 2 of t
        assert num(global_coherency_loss(lt, lt1, zero, valid, zero, valid, beta=0.2)) == 0.0

    def test_gradcheck_boundary_and_global(self):
        lt, lt1, ffw, vfw, fbw, vbw = pair_inputs(b=1, c=3, h=6, w=7, seed=7, dtype=torch.float64)
        assert prediction_band(lt.argmax(1), 3).any()
        assert torch.autograd.gradcheck(lambda a, b: boundary_coherency_loss(a, b, ffw, vfw, fbw, vbw, 3), (lt, lt1))
        # L_gc's target (the reference frame's softmax) is detached by design, so its gradient is the
        # derivative w.r.t. the non-reference frame with the reference held fixed: check each direction
        none = torch.zeros_like(vfw)
        lt_fixed, lt1_fixed = lt.detach(), lt1.detach()
        assert torch.autograd.gradcheck(lambda b: global_coherency_loss(lt_fixed, b, ffw, vfw, fbw, none, 0.05), (lt1,))
        assert torch.autograd.gradcheck(lambda a: global_coherency_loss(a, lt1_fixed, ffw, none, fbw, vbw, 0.05), (lt,))

    def test_translated_copy(self):
        """t+1 = t moved 2 px right: ~0 with the matching flow, clearly > 0 with the wrong sign."""
        b, h, w = 2, 24, 30
        interior = ones_mask(b, h, w)
        interior[..., :2] = interior[..., -2:] = False
        lt = sharp_logits(disc_labels(b, h, w), 3)
        soft = smooth_logits(b, 3, h, w, seed=5)
        right = (const_flow(b, h, w, dx=2.0), interior, const_flow(b, h, w, dx=-2.0), interior)
        wrong = (const_flow(b, h, w, dx=-2.0), interior, const_flow(b, h, w, dx=2.0), interior)
        assert num(boundary_coherency_loss(lt, shift_right(lt, 2), *right)) < 1e-6
        assert num(boundary_coherency_loss(lt, shift_right(lt, 2), *wrong)) > 0.1
        assert num(global_coherency_loss(soft, shift_right(soft, 2), *right)) < 1e-6
        assert num(global_coherency_loss(soft, shift_right(soft, 2), *wrong)) > 0.1


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_channel_argmax_is_argmax_with_first_index_ties(channels: int) -> None:
    from stabbench.losses.coherent import channel_argmax

    ties = torch.randint(0, 3, (3, channels, 9, 11), generator=gen(0)).float()  # many exact ties
    smooth = smooth_logits(2, channels, 9, 11, seed=1)
    for x in (ties, smooth, ties[:, :, ::2, 1:]):  # a non-contiguous view too
        assert torch.equal(channel_argmax(x), x.argmax(1))
