"""stabbench.losses: warp convention vs the synthesizer, Lovasz vs references, Coherent Loss properties."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import perturbations as P
from stabbench.losses import (
    BoundaryCoherencyLoss,
    CoherentLoss,
    GlobalCoherencyLoss,
    LovaszSoftmax,
    SegmentationLoss,
    boundary_coherency_loss,
    coherent_loss,
    global_coherency_loss,
    lovasz_softmax,
    prediction_band,
    prediction_edges,
    segmentation_loss,
    warp_backward,
)
from stabbench.metrics import boundary_band


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def const_flow(b: int, h: int, w: int, dx: float = 0.0, dy: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    flow = torch.empty(b, 2, h, w, dtype=dtype)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


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


def num(t: torch.Tensor) -> float:
    """A 0-d tensor's value (detached: converting a grad-requiring tensor warns)."""
    return t.detach().item()


def grads(loss: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, tensors, allow_unused=False)


# =========================================================================== warp


class TestWarp:
    def test_smoke_shapes(self):
        x, flow = torch.rand(2, 5, 7, 9), torch.randn(2, 2, 7, 9)
        warped, inside = warp_backward(x, flow)
        assert warped.shape == (2, 5, 7, 9) and warped.dtype == x.dtype
        assert inside.shape == (2, 1, 7, 9) and inside.dtype == torch.bool

    def test_zero_flow_is_identity(self):
        x = torch.rand(1, 3, 5, 6, dtype=torch.float64)
        warped, inside = warp_backward(x, const_flow(1, 5, 6, dtype=torch.float64))
        assert torch.allclose(warped, x, atol=1e-12) and bool(inside.all())

    def test_integer_and_half_pixel_shift(self):
        x = torch.arange(12.0).reshape(1, 1, 3, 4)
        warped, inside = warp_backward(x, const_flow(1, 3, 4, dx=1.0))
        assert warped[0, 0, 0].tolist() == [1.0, 2.0, 3.0, 0.0]
        assert inside[0, 0].all(0).tolist() == [True, True, True, False]
        warped, _ = warp_backward(x, const_flow(1, 3, 4, dy=0.5))  # halfway between rows
        assert torch.allclose(warped[0, 0, 0], (x[0, 0, 0] + x[0, 0, 1]) / 2)

    def test_padding_border(self):
        x = torch.arange(4.0).reshape(1, 1, 1, 4)
        warped, inside = warp_backward(x, const_flow(1, 1, 4, dx=2.0), padding="border")
        assert warped[0, 0, 0].tolist() == [2.0, 3.0, 3.0, 3.0]
        assert inside[0, 0, 0].tolist() == [True, True, False, False]

    def test_exceptions(self):
        with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\], got \(3, 4, 5\)"):
            warp_backward(torch.rand(3, 4, 5), torch.rand(1, 2, 4, 5))
        with pytest.raises(ValueError, match=r"flow must have 2 channels.*got \(1, 3, 4, 5\)"):
            warp_backward(torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5))
        with pytest.raises(ValueError, match=r"flow must match x.*\(1, 2, 4, 6\)"):
            warp_backward(torch.rand(1, 3, 4, 5), torch.rand(1, 2, 4, 6))
        with pytest.raises(ValueError, match="flow must be a floating tensor"):
            warp_backward(torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 5, dtype=torch.long))
        with pytest.raises(ValueError, match="padding must be one of zeros, border, reflection; got 'wrap'"):
            warp_backward(torch.rand(1, 3, 4, 5), torch.rand(1, 2, 4, 5), padding="wrap")

    def test_agrees_with_synthesizer(self):
        """Warping frame 1 back along the ground-truth flow of (0, 1) reproduces frame 0."""
        h, w = 48, 64
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        image = np.stack(
            [
                127 + 100 * np.sin(x / 9.0) * np.cos(y / 11.0),
                127 + 100 * np.cos((x + y) / 13.0),
                127 + 80 * np.sin(y / 7.0),
            ],
            axis=-1,
        ).round().astype(np.uint8)
        label = (x > w / 2).astype(np.uint8)
        traj = P.make_trajectory("rotation", 4, np.random.default_rng(0), h, w, 3)
        frames = [frame for frame, _ in P.render_sequence(image, label, traj, np.random.default_rng(1))]
        flow, valid = P.pair_correspondence(traj, 0)
        assert 0.5 < valid.mean() < 1.0 and np.abs(flow).max() > 0.5  # a real, non-trivial motion

        frame1 = torch.from_numpy(frames[1]).permute(2, 0, 1)[None].double()
        warped, inside = warp_backward(frame1, torch.from_numpy(flow).permute(2, 0, 1)[None])
        warped = warped[0].permute(1, 2, 0).numpy()
        assert inside[0, 0].numpy()[valid].all()
        frame0 = frames[0].astype(np.float64)
        err = np.abs(warped - frame0)[valid].mean()
        wrong, _ = warp_backward(frame1, -torch.from_numpy(flow).permute(2, 0, 1)[None])
        assert err < 1.5  # minute noise + interpolation, on a 0..255 scale
        assert np.abs(wrong[0].permute(1, 2, 0).numpy() - frame0)[valid].mean() > 3 * err

        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        ref = cv2.remap(frames[1].astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
        assert np.abs(ref - frame0)[valid].mean() == pytest.approx(err, abs=1e-3)
        assert np.abs(ref - warped)[valid].max() < 1e-2  # on 0..255: ~1e-3 relative agreement

    def test_gradcheck(self):
        x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
        flow = (0.3 + 0.4 * torch.rand(1, 2, 4, 5, generator=gen(1), dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, f: warp_backward(a, f)[0], (x, flow))


# =========================================================================== Lovasz


def reference_lovasz(probs, target, keep, classes="present", per_image=False) -> float:
    """Berman et al.'s per-class, sort-based formula in NumPy (ignored pixels removed)."""
    probs, target, keep = probs.detach().double().numpy(), target.numpy(), keep.numpy()
    c = probs.shape[1]

    def flat(p, t):  # p [C, N], t [N]
        losses = []
        for k in range(c) if isinstance(classes, str) else classes:
            fg = (t == k).astype(np.float64)
            if classes == "present" and fg.sum() == 0:
                continue
            err = np.abs(fg - p[k])
            order = np.argsort(-err, kind="stable")
            fs = fg[order]
            gts = fs.sum()
            jac = 1.0 - (gts - np.cumsum(fs)) / (gts + np.cumsum(1.0 - fs))
            jac[1:] = jac[1:] - jac[:-1]
            losses.append(float(err[order] @ jac))
        return losses

    if not per_image:
        p = probs.transpose(1, 0, 2, 3)[:, keep]
        losses = flat(p, target[keep]) if keep.any() else []
        return float(np.mean(losses)) if losses else 0.0
    per = []
    for b in range(probs.shape[0]):
        if keep[b].any():
            losses = flat(probs[b][:, keep[b]], target[b][keep[b]])
            if losses:
                per.append(np.mean(losses))
    return float(np.mean(per)) if per else 0.0


def brute_force_lovasz_binary(probs, target) -> float:
    """Lovasz extension as the threshold integral  f(m) = int_0^1 Delta({m >= tau}) dtau  (no cumsum)."""
    p, t = probs.detach().double().numpy()[0].reshape(2, -1), target.numpy()[0].reshape(-1)
    losses = []
    for k in (0, 1):
        gt = t == k
        if not gt.any():
            continue
        m = np.abs(gt.astype(np.float64) - p[k])
        levels = np.concatenate([np.unique(m)[::-1], [0.0]])
        total = 0.0
        for hi, lo in zip(levels[:-1], levels[1:]):
            mis = m >= hi  # the mispredicted set at threshold tau in (lo, hi]
            total += (hi - lo) * mis.sum() / (gt | mis).sum()
        losses.append(total)
    return float(np.mean(losses))


class TestLovasz:
    def test_smoke_and_module(self):
        probs = torch.rand(2, 4, 5, 6, generator=gen()).softmax(1)
        target = torch.randint(0, 4, (2, 5, 6), generator=gen(1))
        out = lovasz_softmax(probs, target)
        assert out.shape == () and torch.isfinite(out)
        assert torch.equal(LovaszSoftmax()(probs, target), out)

    def test_perfect_prediction_is_zero(self):
        target = torch.randint(0, 3, (2, 6, 7), generator=gen())
        probs = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
        assert num(lovasz_softmax(probs, target)) == 0.0
        assert num(lovasz_softmax(probs, target, classes="all", per_image=True)) == 0.0

    def test_one_hot_prediction_is_jaccard_loss(self):
        """On the vertices of the cube the extension equals 1 - IoU (mean over present classes)."""
        target = torch.randint(0, 3, (1, 8, 8), generator=gen(2))
        pred = torch.randint(0, 3, (1, 8, 8), generator=gen(3))
        probs = F.one_hot(pred, 3).permute(0, 3, 1, 2).double()
        ious = [
            ((pred == k) & (target == k)).sum().item() / ((pred == k) | (target == k)).sum().item() for k in range(3)
        ]
        assert num(lovasz_softmax(probs, target)) == pytest.approx(1 - np.mean(ious), abs=1e-12)

    @pytest.mark.parametrize("classes", ["present", "all", [0, 2]])
    @pytest.mark.parametrize("per_image", [False, True])
    def test_against_reference(self, classes, per_image):
        probs = torch.randn(3, 4, 6, 5, generator=gen(4), dtype=torch.float64).softmax(1)
        target = torch.randint(0, 3, (3, 6, 5), generator=gen(5))  # class 3 absent
        target[0, :2] = 255
        valid = torch.rand(3, 6, 5, generator=gen(6)) > 0.3
        valid[2] = False  # an image with nothing selected
        keep = valid & (target != 255)
        got = lovasz_softmax(probs, target, ignore_index=255, valid=valid, classes=classes, per_image=per_image)
        assert num(got) == pytest.approx(reference_lovasz(probs, target, keep, classes, per_image), abs=1e-12)

    def test_binary_against_brute_force(self):
        probs = torch.randn(1, 2, 5, 6, generator=gen(7), dtype=torch.float64).softmax(1)
        target = torch.randint(0, 2, (1, 5, 6), generator=gen(8))
        assert num(lovasz_softmax(probs, target)) == pytest.approx(brute_force_lovasz_binary(probs, target), abs=1e-12)

    @pytest.mark.parametrize(
        "case", ["all_ignored", "empty_valid", "single_pixel", "one_class", "absent_class_all"]
    )
    def test_edge_cases_finite_with_gradient(self, case):
        logits = torch.randn(2, 3, 4, 5, generator=gen(9), requires_grad=True)
        probs = logits.softmax(1)
        target = torch.randint(0, 3, (2, 4, 5), generator=gen(10))
        valid = torch.ones(2, 4, 5, dtype=torch.bool)
        kwargs = {}
        if case == "all_ignored":
            target[:] = 255
        elif case == "empty_valid":
            valid[:] = False
        elif case == "single_pixel":
            valid[:] = False
            valid[1, 2, 3] = True
        elif case == "one_class":
            target[:] = 1
        else:
            target[:] = 1
            kwargs = {"classes": "all"}
        loss = lovasz_softmax(probs, target, ignore_index=255, valid=valid, **kwargs)
        (g,) = grads(loss, logits)
        loss = loss.detach()
        assert torch.isfinite(loss) and torch.isfinite(g).all()
        if case in ("all_ignored", "empty_valid"):
            assert num(loss) == 0.0 and not g.any()
        else:
            assert num(loss) > 0.0 and g.any()

    def test_exceptions(self):
        probs = torch.rand(1, 3, 4, 5)
        with pytest.raises(ValueError, match=r"target must have shape \[B, H, W\] = \(1, 4, 5\), got \(1, 4, 6\)"):
            lovasz_softmax(probs, torch.zeros(1, 4, 6, dtype=torch.long))
        with pytest.raises(ValueError, match="target must hold integer class ids, got dtype torch.float32"):
            lovasz_softmax(probs, torch.zeros(1, 4, 5))
        with pytest.raises(ValueError, match=r"outside \[0, 3\).*\[255\]"):
            lovasz_softmax(probs, torch.full((1, 4, 5), 255))
        with pytest.raises(ValueError, match="classes must be one of present, all"):
            lovasz_softmax(probs, torch.zeros(1, 4, 5, dtype=torch.long), classes="some")
        with pytest.raises(ValueError, match=r"valid must have shape \[B, H, W\]"):
            lovasz_softmax(probs, torch.zeros(1, 4, 5, dtype=torch.long), valid=torch.ones(4, 5, dtype=torch.bool))

    def test_gradcheck(self):
        probs = torch.rand(1, 3, 3, 4, generator=gen(11), dtype=torch.float64).requires_grad_()
        target = torch.randint(0, 3, (1, 3, 4), generator=gen(12))
        valid = torch.rand(1, 3, 4, generator=gen(13)) > 0.2
        assert torch.autograd.gradcheck(lambda p: lovasz_softmax(p, target, valid=valid), (probs,))
        assert torch.autograd.gradcheck(lambda p: lovasz_softmax(p, target, classes="all", per_image=True), (probs,))


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


# =========================================================================== segmentation loss


class TestSegmentationLoss:
    def test_kinds(self):
        logits = torch.randn(2, 3, 5, 6, generator=gen(30))
        target = torch.randint(0, 3, (2, 5, 6), generator=gen(31))
        target[0, 0] = 255
        ce = segmentation_loss(logits, target, "ce")
        assert torch.allclose(ce, F.cross_entropy(logits, target, ignore_index=255))
        lov = segmentation_loss(logits, target, "lovasz")
        assert torch.allclose(lov, lovasz_softmax(logits.softmax(1), target, ignore_index=255))
        assert torch.allclose(segmentation_loss(logits, target, "ce+lovasz"), ce + lov)
        assert torch.equal(SegmentationLoss("lovasz")(logits, target), lov)

    @pytest.mark.parametrize("kind", ["ce", "lovasz", "ce+lovasz"])
    def test_all_ignored_is_finite(self, kind):
        logits = torch.randn(1, 3, 4, 4, requires_grad=True)
        loss = segmentation_loss(logits, torch.full((1, 4, 4), 255), kind)
        (g,) = grads(loss, logits)
        assert num(loss) == 0.0 and torch.isfinite(g).all()

    def test_exceptions(self):
        with pytest.raises(ValueError, match="kind must be one of ce, lovasz, ce\\+lovasz; got 'dice'"):
            segmentation_loss(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), "dice")
        with pytest.raises(ValueError, match=r"target must have shape \[B, H, W\] = \(1, 4, 4\), got \(1, 4, 5\)"):
            segmentation_loss(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
