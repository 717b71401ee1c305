"""stabbench.losses.warp: backward warping along a flow, checked against the synthesizer's
ground truth and OpenCV's remap."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import perturbations as P
from stabbench.losses import warp_backward
from tests.helpers import flow_tensor as const_flow
from tests.helpers import gen


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
        # OpenCV 5 interpolates exactly; OpenCV 4 with 1/32-pixel weights (INTER_TAB_SIZE): here
        # 0.002 apart in the mean, up to 0.5 (of 255) at a pixel
        exact = int(cv2.__version__.split(".")[0]) >= 5
        assert np.abs(ref - frame0)[valid].mean() == pytest.approx(err, abs=1e-3 if exact else 5e-3)
        assert np.abs(ref - warped)[valid].max() < (1e-2 if exact else 1.0)  # exact: ~1e-3 relative agreement

    def test_gradcheck(self):
        x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
        flow = (0.3 + 0.4 * torch.rand(1, 2, 4, 5, generator=gen(1), dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, f: warp_backward(a, f)[0], (x, flow))
