"""stabbench.flow.consistency: the in-frame mask and the forward-backward check (against a
per-pixel loop, hand cases, a planted occlusion, pixels leaving the frame)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from stabbench.flow import FlowParams, bidirectional_flow, fb_consistency, in_frame, sample_at_targets
from tests.helpers import shifted, texture


def test_in_frame_mask():
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0] = 2.5
    m = in_frame(flow)
    assert m[:, :17].all() and not m[:, 17:].any()  # x + 2.5 <= 19  <=>  x <= 16
    flow[..., 0] = 0
    flow[..., 1] = -1.0
    m = in_frame(flow)
    assert not m[0].any() and m[1:].all()
    flow[3, 4] = np.nan
    flow[5, 6] = (0.0, 9.0)  # y + 9 = 14 > 9
    m = in_frame(flow)
    assert not m[3, 4] and not m[5, 6] and m[5, 5]
    assert m.dtype == bool and set(np.unique(m.view(np.uint8))) <= {0, 1}
    exact = np.zeros((4, 5, 2), np.float32)
    exact[..., 0] = 4 - np.arange(5, dtype=np.float32)  # every target exactly x = W-1: inside
    assert in_frame(exact).all()


def bilinear_reference(field: np.ndarray, x: float, y: float) -> np.ndarray:
    """Exact bilinear sample of ``field`` at ``(x, y)`` (pixel centres; border replicated)."""
    h, w = field.shape[:2]
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = min(int(math.floor(x)), w - 2), min(int(math.floor(y)), h - 2)
    ax, ay = x - x0, y - y0
    return ((1 - ax) * (1 - ay) * field[y0, x0] + ax * (1 - ay) * field[y0, x0 + 1]
            + (1 - ax) * ay * field[y0 + 1, x0] + ax * ay * field[y0 + 1, x0 + 1])


def test_fb_consistency_matches_a_per_pixel_loop():
    rng = np.random.default_rng(3)
    h, w = 14, 17
    fw = cv2.GaussianBlur(rng.normal(0, 3, (h, w, 2)).astype(np.float32), (0, 0), 2) * 3
    # backward flow: minus the forward one, plus errors around the threshold so both outcomes occur
    bw = (-fw + rng.normal(0, 0.6, (h, w, 2))).astype(np.float32)
    alpha, beta = 0.01, 0.5
    got = fb_consistency(fw, bw, alpha, beta)
    sampled = sample_at_targets(bw, fw)
    agree = checked = 0
    for y in range(h):
        for x in range(w):
            f = fw[y, x].astype(np.float64)
            b = bilinear_reference(bw.astype(np.float64), x + f[0], y + f[1])
            # cv2.remap interpolates with 1/32-pixel weights: values agree to a fraction of a step
            step = np.abs(np.diff(bw, axis=0)).max() + np.abs(np.diff(bw, axis=1)).max()
            assert np.allclose(sampled[y, x], b, atol=step / 32 + 1e-4)
            lhs = float(np.sum((f + b) ** 2))
            rhs = alpha * (float(np.sum(f ** 2)) + float(np.sum(b ** 2))) + beta
            if abs(lhs - rhs) > 0.05:  # away from the threshold, the decision must be the same
                checked += 1
                agree += bool(got[y, x]) == (lhs < rhs)
    assert checked > 0.8 * h * w and agree == checked
    assert 0.2 < got.mean() < 0.9  # both outcomes occur


def test_fb_consistency_alpha_beta_and_exact_cases():
    h, w = 12, 12
    fw = np.zeros((h, w, 2), np.float32)
    fw[..., 0] = 1.0
    bw = np.zeros((h, w, 2), np.float32)
    bw[..., 0] = -1.0
    assert fb_consistency(fw, bw).all()  # exact inverse: |f + b|^2 = 0 < beta
    bw[..., 0] = -1.0 + 0.8  # |f + b|^2 = 0.64 >= 0.01 * (1 + 0.04) + 0.5
    assert not fb_consistency(fw, bw).any()
    assert fb_consistency(fw, bw, alpha=0.01, beta=0.7).all()
    assert fb_consistency(fw, bw, alpha=1.0, beta=0.0).all()
    fw[2, 3] = np.nan
    assert not fb_consistency(fw, bw, beta=10)[2, 3]


def test_fb_check_flags_a_planted_occlusion():
    """A textured square moves 16 px right over a static background: the background pixels of
    frame t it covers in t+1 fail the forward check; the pixels it reveals in t+1 fail the
    backward one; pixels away from the square and the square's interior pass."""
    h, w, s, d = 200, 260, 80, 16
    bg, fg = texture(h, w, 0), texture(s, s, 1, 2.0)
    x0, y0 = w // 4, (h - s) // 2

    def scene(x):
        im = bg.copy()
        im[y0:y0 + s, x:x + s] = fg
        return im

    pf = bidirectional_flow(scene(x0), scene(x0 + d), FlowParams("medium"))
    occluded = np.zeros((h, w), bool)
    occluded[y0:y0 + s, x0 + s:x0 + s + d] = True
    revealed = np.zeros((h, w), bool)
    revealed[y0:y0 + s, x0:x0 + d] = True
    square = np.zeros((h, w), bool)
    square[y0:y0 + s, x0:x0 + s] = True
    near = cv2.dilate((square | occluded).astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    inner = cv2.erode(square.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert 1 - pf.valid_fw[occluded].mean() > 0.8
    assert 1 - pf.valid_bw[revealed].mean() > 0.8
    assert pf.valid_fw[~near].mean() > 0.97
    assert pf.valid_fw[inner].mean() > 0.9
    # validity = forward-backward consistency and in frame, both directions
    assert np.array_equal(pf.valid_fw, fb_consistency(pf.flow_fw, pf.flow_bw) & in_frame(pf.flow_fw))
    assert np.array_equal(pf.valid_bw, fb_consistency(pf.flow_bw, pf.flow_fw) & in_frame(pf.flow_bw))


def test_out_of_frame_pixels_are_invalid():
    a = texture(80, 100, scale=4.0)
    b = shifted(a, 6.0, 0.0)
    pf = bidirectional_flow(a, b, FlowParams("medium"))
    assert not pf.valid_fw[:, -4:].any()  # targets x + 6 beyond W-1
    assert not pf.valid_bw[:, :4].any()
    assert pf.valid_fw[10:-10, 10:-12].mean() > 0.95
