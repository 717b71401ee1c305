"""Overlay: band shaded, predicted outline, flicker pixels exactly red; hand-checked on a tiny frame."""

from __future__ import annotations

import numpy as np
import pytest

from stabbench.visuals import draw_overlay, render_clip
from stabbench.visuals.overlay import BAND_ALPHA, FLICKER_RGB, OUTLINE_RGB, ClipFrames


def tiny_case():
    frame = np.full((4, 6, 3), 100, np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    labels[:, 3:] = 1  # the outline is column 3 (the larger label's side of the edge)
    flicker = np.zeros((4, 6), bool)
    flicker[1, 1] = flicker[2, 3] = True  # one flip inside a region, one on the outline
    band = np.zeros((4, 6), bool)
    band[:, 2:4] = True
    return frame, labels, flicker, band


def test_flicker_red_exactly_where_a_flip_happens_outline_on_the_label_edge_band_shaded() -> None:
    frame, labels, flicker, band = tiny_case()
    out = draw_overlay(frame, labels, flicker, band)
    shaded = (100 * (256 - BAND_ALPHA) + 255 * BAND_ALPHA + 128) >> 8
    assert shaded == 148  # hand-computed: (17600 + 20400 + 128) >> 8
    want = np.full((4, 6, 3), 100, np.uint8)
    want[:, 2] = shaded  # band, not outline
    want[:, 3] = OUTLINE_RGB  # outline (in the band: the outline wins)
    want[1, 1] = want[2, 3] = FLICKER_RGB  # flicker wins over the outline
    np.testing.assert_array_equal(out, want)
    assert (frame == 100).all()  # the input is not drawn on


def test_render_clip_is_draw_overlay_per_frame_and_checks_lengths() -> None:
    frame, labels, flicker, band = tiny_case()
    frames = np.stack([frame, frame + 10])
    clip = render_clip(frames, np.stack([labels, 1 - labels]), np.stack([flicker, ~flicker]), np.stack([band, band]))
    assert len(clip) == 2
    np.testing.assert_array_equal(clip[1], draw_overlay(frame + 10, 1 - labels, ~flicker, band))
    with pytest.raises(ValueError, match="differ in length"):
        render_clip(frames, labels[None], flicker[None], band[None])
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        draw_overlay(frame.astype(np.float32), labels, flicker, band)


def test_clip_frames_draw_each_frame_when_taken() -> None:
    """ClipFrames gives render_clip's frames one at a time, from masks of any sequence type."""
    frame, labels, flicker, band = tiny_case()
    drawn = []

    class Counting(list):
        def __getitem__(self, k):
            drawn.append(k)
            return list.__getitem__(self, k)

    clip = ClipFrames(np.stack([frame] * 3), np.stack([labels] * 3), Counting([flicker, ~flicker, flicker]), [band] * 3)
    assert len(clip) == 3 and drawn == []  # nothing drawn until taken
    np.testing.assert_array_equal(clip[1], draw_overlay(frame, labels, ~flicker, band))
    assert drawn == [1]
    for got, want in zip(clip, render_clip(np.stack([frame] * 3), np.stack([labels] * 3),
                                           np.stack([flicker, ~flicker, flicker]), np.stack([band] * 3))):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError):
        clip[3]
    with pytest.raises(ValueError, match="differ in length"):
        ClipFrames([frame], [labels], [flicker, flicker], [band])
