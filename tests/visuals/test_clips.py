"""Clip files: GIF and MP4 decode to the frames written, the same frames give the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stabbench.visuals import side_by_side, write_gif, write_mp4
from stabbench.visuals.clips import LABEL_HEIGHT, PanelFrames


def frames(count: int = 3, h: int = 32, w: int = 48) -> list[np.ndarray]:
    out = []
    for k in range(count):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : w // 2] = (40 * k, 90, 200)
        frame[k * 4: k * 4 + 4, -8:] = (255, 0, 0)  # a red square moving down
        out.append(frame)
    return out


def test_gif_round_trip_and_deterministic_bytes(tmp_path: Path) -> None:
    clip = frames()
    write_gif(tmp_path / "a.gif", clip)
    write_gif(tmp_path / "b.gif", clip)
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()
    with Image.open(tmp_path / "a.gif") as image:
        assert image.n_frames == 3 and image.size == (48, 32)
        for k in range(3):
            image.seek(k)
            np.testing.assert_array_equal(np.asarray(image.convert("RGB")), clip[k])  # few colours: lossless


def test_mp4_round_trip_and_deterministic_bytes_on_this_build(tmp_path: Path) -> None:
    import imageio.v3 as iio

    clip = frames(5, 31, 47)  # odd size: padded to even for yuv420p
    write_mp4(tmp_path / "a.mp4", clip)
    write_mp4(tmp_path / "b.mp4", clip)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    decoded = iio.imread(tmp_path / "a.mp4", plugin="FFMPEG")
    assert decoded.shape == (5, 32, 48, 3)
    assert np.abs(decoded[:, :31, :47].astype(int) - np.stack(clip)).mean() < 8  # lossy, close


def test_side_by_side_labels_both_clips() -> None:
    a, b = frames(), frames()
    panel = side_by_side(a, b, "A: one", "B: two", gap=4)
    assert len(panel) == 3 and panel[0].shape == (32 + LABEL_HEIGHT, 48 * 2 + 4, 3)
    np.testing.assert_array_equal(panel[1][LABEL_HEIGHT:, :48], a[1])
    np.testing.assert_array_equal(panel[1][LABEL_HEIGHT:, 52:], b[1])
    assert (panel[0][:LABEL_HEIGHT] < 255).any()  # the label is written
    with pytest.raises(ValueError, match="differ"):
        side_by_side(a, b[:2], "a", "b")


def test_an_mp4_that_cannot_be_written_is_an_os_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing-folder" / "a.mp4"
    with pytest.raises(OSError, match="ffmpeg could not write the MP4") as excinfo:
        write_mp4(path, frames())
    assert excinfo.value.filename == str(path)


def test_gif_keeps_the_overlay_colours_exact_on_a_photo(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)]  # thousands of colours
    for k, frame in enumerate(clip):
        frame[5 + k, 10:20] = (255, 0, 0)
    write_gif(tmp_path / "a.gif", clip, keep=[(255, 0, 0)])
    with Image.open(tmp_path / "a.gif") as image:
        for k in range(3):
            image.seek(k)
            decoded = np.asarray(image.convert("RGB"))
            assert (decoded[5 + k, 10:20] == (255, 0, 0)).all()
            assert np.abs(decoded.astype(int) - clip[k]).mean() < 20  # 256 colours for a random image: close


def test_panel_frames_are_side_by_side_frame_by_frame() -> None:
    a, b = frames(), frames()
    panel = PanelFrames(a, b, "A: one", "B: two")
    assert len(panel) == 3
    for got, want in zip(panel, side_by_side(a, b, "A: one", "B: two")):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError):
        panel[3]


def test_mp4_streams_frames_and_a_bad_frame_leaves_no_file(tmp_path: Path) -> None:
    clip = frames(4)
    with pytest.raises(ValueError, match="one shape"):
        write_mp4(tmp_path / "a.mp4", clip[:3] + [clip[3][:10]])
    assert not (tmp_path / "a.mp4").exists()
