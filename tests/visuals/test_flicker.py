"""The clip's flicker is the metric's inconsistency, mapped to the next frame's pixels."""

from __future__ import annotations

import numpy as np

from stabbench.metrics import boundary_band, pair_counts, pair_geometry
from stabbench.visuals import sequence_flicker
from tests.helpers import const_flow


def moving_edge(frames: int, h: int = 8, w: int = 12, col: int = 5) -> np.ndarray:
    """Ground truth of a vertical edge moving one pixel right per frame."""
    masks = np.zeros((frames, h, w), np.uint8)
    for t in range(frames):
        masks[t, :, col + t:] = 1
    return masks


def pairs_of(frames: int, h: int = 8, w: int = 12):
    flow, valid = const_flow(h, w, dx=1.0)
    valid[:, -1] = False  # the last column leaves the frame
    return [(t, flow, valid) for t in range(frames - 1)]


def test_one_flipped_pixel_flickers_into_and_out_of_its_frame() -> None:
    masks = moving_edge(3)
    labels = masks.copy()
    labels[1, 2, 8] = 0  # a flip in frame 1, inside the object
    seen = sequence_flicker(labels, masks, pairs_of(3), band_width=3)
    assert sorted(zip(*np.nonzero(seen.inconsistent))) == [(0, 2, 7), (1, 2, 8)]  # frame t's pixel x
    assert sorted(zip(*np.nonzero(seen.flicker))) == [(1, 2, 8), (2, 2, 9)]  # its target x + 1 in frame t + 1
    assert not seen.flicker[0].any()
    for t in range(2):
        np.testing.assert_array_equal(seen.band[t], boundary_band(masks[t], 3))


def test_counts_are_the_metrics_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    masks = moving_edge(4)
    labels = np.where(rng.random(masks.shape) < 0.2, 1 - masks, masks).astype(np.uint8)
    pairs = pairs_of(4)
    seen = sequence_flicker(labels, masks, pairs, band_width=3)
    for t, flow, valid in pairs:
        geometry = pair_geometry(flow, valid, masks[t], 3, gt_t1=masks[t + 1])
        consistent, tracked, band_consistent, band_tracked, *_ = pair_counts(labels[t], labels[t + 1], geometry)
        assert seen.tracked[t].sum() == tracked
        assert seen.inconsistent[t].sum() == tracked - consistent
        assert (seen.inconsistent[t] & seen.band[t]).sum() == band_tracked - band_consistent
        # plain NumPy reference: x tracked and the label at x + 1 in frame t+1 differs
        ref = valid & (labels[t] != np.roll(labels[t + 1], -1, axis=1)) & (masks[t] == np.roll(masks[t + 1], -1, axis=1))
        np.testing.assert_array_equal(seen.inconsistent[t], ref)
