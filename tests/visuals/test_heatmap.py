"""Source-space heatmap: a flicker at a known frame pixel lands on its source pixel."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.visuals import draw_heatmap, source_flicker_rate
from stabbench.visuals.heatmap import BAR_MARGIN, DIM, _colours, colour_scale

H, W = 20, 30


def translations(steps) -> np.ndarray:
    """``(N, 2, 3)`` affines translating the source by ``(dx, dy)`` per frame (source -> frame)."""
    return np.array([[[1.0, 0.0, dx], [0.0, 1.0, dy]] for dx, dy in steps])


def test_a_flicker_lands_on_its_source_pixel_normalised_by_the_pairs_that_saw_it() -> None:
    affines = translations([(0, 0), (2, 1), (4, 2)])
    tracked = np.ones((3, H, W), bool)
    inconsistent = np.zeros((3, H, W), bool)
    inconsistent[:, 8, 10] = True  # frame pixel (x=10, y=8) in every pair
    rate, seen = source_flicker_rate(inconsistent, tracked, affines, (H, W))
    hot = {(10, 8), (8, 7), (6, 6)}  # source (x, y) = (10 - 2t, 8 - t)
    for y, x in zip(*np.nonzero(rate > 0)):
        assert (x, y) in hot
    for x, y in hot:
        assert seen[y, x] == 3 and rate[y, x] == pytest.approx(1 / 3)
    assert seen[19, 29] == 1  # the bottom-right source pixel is in frame 0 only
    assert seen[0, 0] == 3 and rate[0, 0] == 0


def test_half_pixel_motion_splits_bilinearly() -> None:
    affines = translations([(0.5, 0)])  # frame pixel x shows source point x - 0.5
    tracked = np.ones((1, H, W), bool)
    inconsistent = np.zeros((1, H, W), bool)
    inconsistent[0, 5, 10] = True  # source point (9.5, 5): half to (9, 5), half to (10, 5)
    rate, seen = source_flicker_rate(inconsistent, tracked, affines, (H, W))
    assert seen[5, 9] == pytest.approx(1.0) and seen[5, 10] == pytest.approx(1.0)
    assert rate[5, 9] == pytest.approx(0.5) and rate[5, 10] == pytest.approx(0.5)
    assert np.nansum(rate) == pytest.approx(1.0)


def test_unseen_source_pixels_are_nan_and_drawn_black() -> None:
    tracked = np.zeros((1, H, W), bool)
    tracked[0, :10, :10] = True
    inconsistent = np.zeros_like(tracked)
    inconsistent[0, 2, 3] = True
    rate, _ = source_flicker_rate(inconsistent, tracked, translations([(0, 0)]), (H, W))
    assert np.isnan(rate[15, 15]) and rate[2, 3] == 1.0 and colour_scale(rate) == 1.0
    source = np.full((H, W, 3), 200, np.uint8)
    image = draw_heatmap(source, rate)
    assert image.shape == (H, W + BAR_MARGIN, 3) and image.dtype == np.uint8
    assert (image[15, 15] == 0).all()
    assert (image[0, 0] == (200 * DIM) >> 8).all()  # seen, no flicker: the dimmed source
    np.testing.assert_array_equal(image[2, 3], _colours(np.array([[255]], np.uint8))[0, 0])  # the top colour


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\(P, H, W\)"):
        source_flicker_rate(np.zeros((2, H, W), bool), np.zeros((1, H, W), bool), translations([(0, 0)] * 2), (H, W))
    with pytest.raises(ValueError, match="affines"):
        source_flicker_rate(np.zeros((2, H, W), bool), np.zeros((2, H, W), bool), translations([(0, 0)]), (H, W))
