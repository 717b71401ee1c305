"""stabbench.flow.video: video files and frame folders, pair sampling, bad video input."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from stabbench.errors import EXIT_BAD_DATA, DataError
from stabbench.flow import (
    FrameFolder,
    PairRef,
    VideoFile,
    close_all_readers,
    list_videos,
    sample_pair_refs,
    sample_pairs,
)

imageio = pytest.importorskip("imageio.v3")


def gray_frames(n: int, h: int = 64, w: int = 96) -> np.ndarray:
    """Frame k is uniform gray 10 k (easy to recognise after lossy coding)."""
    return np.stack([np.full((h, w, 3), 10 * k, np.uint8) for k in range(n)])


def write_mp4(path: Path, frames: np.ndarray) -> Path:
    imageio.imwrite(path, frames, extension=".mp4", plugin="FFMPEG", fps=25)
    return path


def test_mp4_read_back(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", gray_frames(20))
    (video,) = list_videos(tmp_path)
    assert isinstance(video, VideoFile) and video.path == path
    assert video.num_frames == 20
    for i in (0, 7, 19, 3, 4):  # seeks backwards and forwards
        frame = video.read_frame(i)
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - 10 * i) < 3
    a, b = PairRef(video, 12).load()
    assert abs(float(a.mean()) - 120) < 3 and abs(float(b.mean()) - 130) < 3
    with pytest.raises(IndexError):
        video.read_pair(19)
    clone = pickle.loads(pickle.dumps(PairRef(video, 5)))
    assert abs(float(clone.load()[1].mean()) - 60) < 3
    close_all_readers()


def test_frame_folder_natural_order_and_layouts(tmp_path):
    seq = tmp_path / "videos" / "seq"
    seq.mkdir(parents=True)
    frames = gray_frames(12, 20, 24)
    for k in range(12):  # unpadded names: natural order f1 < f2 < f10
        cv2.imwrite(str(seq / f"f{k + 1}.png"), frames[k])
    (seq / "notes.txt").write_text("ignored")
    (seq / ".hidden.png").write_bytes(b"not read")
    write_mp4(tmp_path / "videos" / "a.MP4", gray_frames(3))
    (tmp_path / "videos" / "nested" / "deeper").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "videos" / "nested" / "deeper" / "000.jpg"), frames[0])
    cv2.imwrite(str(tmp_path / "videos" / "nested" / "deeper" / "001.jpg"), frames[1])

    videos = list_videos(tmp_path / "videos")
    assert [(type(v).__name__, v.path.name) for v in videos] == [
        ("VideoFile", "a.MP4"), ("FrameFolder", "deeper"), ("FrameFolder", "seq")]
    folder = videos[2]
    assert isinstance(folder, FrameFolder) and folder.num_frames == 12
    assert [p.name for p in folder.frames[:3]] == ["f1.png", "f2.png", "f3.png"]
    assert folder.frames[-1].name == "f12.png"
    for i in range(12):
        assert folder.read_frame(i).shape == (20, 24, 3) and int(folder.read_frame(i)[0, 0, 0]) == 10 * i
    # a folder of frames given directly, duplicates listed once
    again = list_videos([seq, tmp_path / "videos" / "seq", tmp_path / "videos" / "a.MP4"])
    assert [v.path.name for v in again] == ["seq", "a.MP4"]
    refs = sample_pair_refs(videos, n_pairs=4)
    assert [(r.video.path.name, r.indices) for r in refs] == [
        ("a.MP4", (0, 1)), ("a.MP4", (1, 2)), ("deeper", (0, 1)),
        ("seq", (0, 1)), ("seq", (3, 4)), ("seq", (7, 8)), ("seq", (10, 11))]
    a, b = refs[-1].load()
    assert int(a[0, 0, 0]) == 100 and int(b[0, 0, 0]) == 110
    close_all_readers()


def test_symlinked_folders_of_frames_are_followed_and_a_loop_ends(tmp_path):
    """A dataset symlinked into place (DAVIS ``JPEGImages/480p/<seq>`` as links) lists as the real one;
    a link back to an ancestor is not searched again."""
    frames = gray_frames(3, 20, 24)
    for seq in ("bear", "camel"):
        (tmp_path / "data" / seq).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(tmp_path / "data" / seq / f"{k:05d}.jpg"), frames[k])
    linked = tmp_path / "linked" / "480p"
    linked.mkdir(parents=True)
    (linked / "bear").symlink_to(tmp_path / "data" / "bear", target_is_directory=True)
    (linked / "kamel").symlink_to(tmp_path / "data" / "camel", target_is_directory=True)  # named by the link
    (linked / "loop").symlink_to(tmp_path / "linked", target_is_directory=True)
    videos = list_videos(tmp_path / "linked")
    assert [(v.path.name, v.num_frames) for v in videos] == [("bear", 3), ("kamel", 3)]
    assert int(videos[1].read_frame(2)[0, 0, 0]) == 20
    assert [v.path.name for v in list_videos(linked / "kamel")] == ["kamel"]  # a linked folder named directly


def test_sample_pairs_equal_intervals():
    pairs = sample_pairs(301, 30)
    starts = [t for t, _ in pairs]
    assert len(pairs) == 30 and all(t1 == t + 1 for t, t1 in pairs)
    assert starts[0] == 0 and starts[-1] == 299
    gaps = np.diff(starts)
    assert gaps.min() >= 10 and gaps.max() <= 11  # 299 / 29 = 10.3
    assert sample_pairs(101, 5) == [(0, 1), (25, 26), (50, 51), (74, 75), (99, 100)]
    assert sample_pairs(6, 30) == [(t, t + 1) for t in range(5)]  # short video: every pair
    assert sample_pairs(2, 30) == [(0, 1)]
    assert sample_pairs(31, 30) == [(t, t + 1) for t in range(30)]
    assert sample_pairs(50, 1) == [(0, 1)]
    for n in range(2, 80):
        for k in (1, 2, 7, 30):
            s = [t for t, _ in sample_pairs(n, k)]
            assert s == sorted(set(s)) and len(s) == min(k, n - 1) and s[-1] <= n - 2
    assert sample_pairs(301, 30) == sample_pairs(301, 30)
    with pytest.raises(ValueError):
        sample_pairs(10, 0)


def test_bad_video_inputs(tmp_path):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"definitely not a video" * 50)
    (video,) = list_videos(garbage)
    with pytest.raises(DataError) as err:
        sample_pairs(video)
    assert err.value.path == garbage and "broken.mp4" in str(err.value)
    assert err.value.exit_code == EXIT_BAD_DATA
    with pytest.raises(DataError, match="broken.mp4"):
        video.read_frame(0)

    one = tmp_path / "one"
    one.mkdir()
    cv2.imwrite(str(one / "0001.png"), gray_frames(1, 16, 16)[0])
    (folder,) = list_videos(one)
    with pytest.raises(DataError, match="no pairs") as err:
        sample_pairs(folder)
    assert err.value.path == one
    with pytest.raises(DataError, match="no pairs"):
        sample_pair_refs([folder])

    single = write_mp4(tmp_path / "single.mp4", gray_frames(1))
    with pytest.raises(DataError, match="no pairs") as err:
        sample_pairs(list_videos(single)[0])
    assert err.value.path == single

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no video files") as err:
        list_videos(empty)
    assert err.value.path == empty
    with pytest.raises(DataError, match="no such file"):
        list_videos(tmp_path / "missing.mp4")
    with pytest.raises(DataError, match="not a video file"):
        list_videos(empty / "readme.txt")
    with pytest.raises(DataError, match="single image"):
        list_videos(one / "0001.png")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    cv2.imwrite(str(corrupt / "a.png"), gray_frames(1, 16, 16)[0])
    (corrupt / "b.png").write_bytes(b"not a png")
    (folder,) = list_videos(corrupt)
    with pytest.raises(DataError, match="cannot decode") as err:
        PairRef(folder, 0).load()
    assert err.value.path == corrupt / "b.png"
    (corrupt / "b.png").unlink()
    cv2.imwrite(str(corrupt / "b.png"), gray_frames(1, 16, 20)[0])
    with pytest.raises(DataError, match="16x16"):
        list_videos(corrupt)[0].read_pair(0)
    close_all_readers()
