"""stabbench.losses.lovasz: the Lovasz-softmax loss against Berman et al.'s formula and the
threshold integral, edge cases and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stabbench.losses import LovaszSoftmax, lovasz_softmax
from tests.helpers import gen, grads, num


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
