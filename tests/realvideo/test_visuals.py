"""Flicker clips of a real-video comparison (stabbench.realvideo.visuals): on a 12x12 video whose
flow is known (1 px right per frame), the red pixels are hand-checked, the band is the
reference's, and the counts are the meter's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from stabbench.flow import list_videos
from stabbench.predictors import load_predictor
from stabbench.realvideo import ANNOTATIONS, Settings, measure
from stabbench.realvideo.visuals import ClipWriter, PackedMasks, VideoFlicker, model_stem
from stabbench.visuals import render_clip, write_gif
from stabbench.visuals.overlay import FLICKER_RGB
from stabbench.visuals.show import GIF_COLOURS
from tests.realvideo.known import FLIPS, H, KnownFlow, N, W, object_mask

BAND = 3


def prediction(t: int) -> np.ndarray:
    pred = object_mask(t)
    if t == 1:
        for y, x in FLIPS:
            pred[y, x] ^= 1
    return pred


def gray_frame(rng: np.random.Generator) -> np.ndarray:
    """Gray (R = G = B) frames: a pixel of the clip is pure red only where the flicker painted it."""
    return np.repeat(rng.integers(0, 255, (H, W, 1), dtype=np.uint8), 3, axis=2)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    frames = np.stack([gray_frame(rng) for _ in range(N)])
    for t in range(N):
        for folder, image in (("frames", frames[t]), ("ann", object_mask(t) * 255), ("pred", prediction(t))):
            (tmp_path / folder / "clip").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / folder / "clip" / f"{t:05d}.png")
    return tmp_path, frames


def expected_flicker() -> np.ndarray:
    """By hand: pair (0,1) moves x to x+1, so each flip (y, x) of frame 1 breaks the source (y, x-1),
    whose target is the flip itself: frame 1's red pixels are the flips. Pair (1,2): the flips are
    the sources (all tracked: x <= 10), their targets (y, x+1) are frame 2's red pixels. Frame 0: none."""
    red = np.zeros((N, H, W), bool)
    for y, x in FLIPS:
        red[1, y, x] = True
        red[2, y, x + 1] = True
    return red


def expected_band() -> np.ndarray:
    """The band (width 3) around the annotation's edges of frame k (columns 3+k and 6+k): columns 2..7 (+k)."""
    band = np.zeros((N, H, W), bool)
    for k in range(N):
        band[k, :, 2 + k : 8 + k] = True
    return band


def run(tiny: tuple[Path, np.ndarray], out: Path, compare: bool = False) -> tuple:
    root, _ = tiny
    model = load_predictor(f"predictions:{root / 'pred'}")
    out.mkdir()
    clips = ClipWriter(out, ANNOTATIONS, BAND, ("gif",), compare)
    state = measure(list_videos(root / "frames"), {"m": model}, ANNOTATIONS, root / "ann", Settings(band_width=BAND),
                    cache=KnownFlow(), clips=clips)
    return state, clips.finish(list(state.meters))


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_red_pixels_by_hand(tiny, tmp_path: Path) -> None:
    _, document = run(tiny, tmp_path / "vis")
    (item,) = [i for i in document["items"] if i["model"] == "m"]
    decoded = gif_frames(tmp_path / "vis" / item["clip_gif"])
    red = np.stack([np.all(frame == FLICKER_RGB, axis=2) for frame in decoded])
    np.testing.assert_array_equal(red, expected_flicker())
    # the whole clip: the renderer's drawing of the hand-made masks, byte for byte
    write_gif(tmp_path / "want.gif", render_clip(tiny[1], np.stack([prediction(t) for t in range(N)]),
                                                 expected_flicker(), expected_band()), keep=GIF_COLOURS)
    assert (tmp_path / "vis" / item["clip_gif"]).read_bytes() == (tmp_path / "want.gif").read_bytes()


def test_counts_are_the_meters(tiny, tmp_path: Path) -> None:
    state, document = run(tiny, tmp_path / "vis", compare=True)
    assert [i["model"] for i in document["items"]] == [ANNOTATIONS, "m"]  # the reference first
    for item in document["items"]:
        pairs = state.meters[item["model"]].pairs
        assert item["inconsistent_pixels"] == sum(p.tracked - p.consistent for p in pairs)
        assert item["tracked_pixels"] == sum(p.tracked for p in pairs) == 2 * 132
        (row,) = state.meters[item["model"]].per_sequence()
        assert (item["S_global"], item["S_boundary"]) == (row["S_global"], row["S_boundary"])
    m = document["items"][1]
    assert m["inconsistent_pixels"] == 8 and m["compare"]["model_b"] == ANNOTATIONS
    assert document["items"][0]["compare"] is None and document["items"][0]["inconsistent_pixels"] == 0
    (panel,) = {f.shape for f in gif_frames(tmp_path / "vis" / m["compare"]["clip_gif"])}
    assert panel == (24 + H, 2 * W + 4, 3)  # label strip on top, 4 px between A and B
    assert document["compare"] is True and document["reference"] == ANNOTATIONS


def test_reference_clip_has_no_red(tiny, tmp_path: Path) -> None:
    """The annotations move exactly with the flow: nothing flickers."""
    _, document = run(tiny, tmp_path / "vis")
    (item,) = [i for i in document["items"] if i["is_reference"]]
    decoded = np.stack(gif_frames(tmp_path / "vis" / item["clip_gif"]))
    assert not np.all(decoded == FLICKER_RGB, axis=3).any()


def test_video_flicker_needs_pairs_in_order() -> None:
    seen = VideoFlicker(["m"], 3, (4, 4))
    with pytest.raises(ValueError, match="in order"):
        seen.add_pair(1, None, {})
    with pytest.raises(ValueError, match="0 pairs gathered"):
        seen.close(np.zeros((4, 4), bool))


def test_model_stems() -> None:
    assert model_stem("annotations") == "annotations" and model_stem("osvos_v2.1") == "osvos_v2.1"
    a, b = model_stem("predictions:a/b,map=foreground"), model_stem("predictions:a-b,map=foreground")
    assert a.startswith("predictions-a-b-map-foreground-") and a != b and len(a) == len(b)
    assert len(model_stem("x" * 200)) == 48 + 9
    assert model_stem("..") != "" and "/" not in model_stem("../../etc")


def test_packed_masks_round_trip() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 5, 7)) < 0.3  # 35 px: not a multiple of 8
    packed = PackedMasks((5, 7))
    for mask in masks:
        packed.append(mask)
    assert len(packed) == 3 and all(np.array_equal(packed[k], masks[k]) for k in range(3))
    assert packed[0].dtype == bool and sum(p.nbytes for p in packed.packed) == 3 * 5
    with pytest.raises(ValueError, match="expected"):
        packed.append(masks[0].T)
