"""Writing clips: animated GIF (Pillow) and MP4 (H.264, the ffmpeg of imageio-ffmpeg), and A|B panels.

Same frames, same bytes: the GIF has one palette for the clip (Pillow's fast octree of
the frames, plus colours kept exactly), no dithering, no randomness; the MP4 is encoded by libx264 (preset ultrafast) single-threaded
with bit-exact flags and no metadata (deterministic for one ffmpeg/x264 build, the one
``imageio-ffmpeg`` ships; another build may write other bytes).
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

#: Frames per second of the clips: 11 frames last 2.2 s.
FPS = 5
#: x264 constant rate factor of the MP4 (lower: better; 18-23 look the same as the frames).
MP4_CRF = 20
LABEL_HEIGHT = 24


def _check_frames(frames: Sequence[np.ndarray]) -> None:
    if not len(frames):
        raise ValueError("a clip needs at least one frame")
    shape = frames[0].shape
    for frame in frames:
        if frame.shape != shape or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"clip frames must all be (H, W, 3) uint8 of one shape, got {frame.shape} {frame.dtype}")


def clip_palette(frames: Sequence[np.ndarray], keep: Sequence[tuple[int, int, int]] = ()):
    """One 256-colour Pillow palette for a whole clip: the ``keep`` colours exactly, the rest a fast
    octree of every frame (every 4th pixel in each direction). One palette for all frames: no
    colour shimmer between frames that a GIF viewer would show as flicker."""
    from PIL import Image

    sample = np.concatenate([f[::4, ::4] for f in frames], axis=0)
    octree = Image.fromarray(np.ascontiguousarray(sample)).quantize(256 - len(keep), method=Image.Quantize.FASTOCTREE,
                                                                    dither=Image.Dither.NONE)
    colours = [c for rgb in keep for c in rgb] + octree.getpalette()[: 3 * (256 - len(keep))]
    palette = Image.new("P", (1, 1))
    palette.putpalette(colours + [0] * (768 - len(colours)))
    return palette


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: int = FPS,
              keep: Sequence[tuple[int, int, int]] = ()) -> None:
    """Animated GIF of ``(H, W, 3)`` uint8 RGB ``frames``, looping, on one :func:`clip_palette`
    (``keep``: colours that must stay exact, e.g. the overlay's); each pixel takes its nearest
    palette colour, no dithering."""
    from PIL import Image

    _check_frames(frames)
    palette = clip_palette(frames, keep)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   optimize=False)


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int = FPS) -> None:
    """H.264 MP4 (yuv420p) of ``(H, W, 3)`` uint8 RGB ``frames``; odd sizes are padded by one black pixel.

    Encoded by the ffmpeg binary of ``imageio-ffmpeg`` (what imageio's ffmpeg plugin runs), fed
    raw RGB on stdin. A failure is an ``OSError`` naming ``path`` with ffmpeg's message.
    """
    import imageio_ffmpeg

    _check_frames(frames)
    height, width = frames[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    raw = b"".join(np.ascontiguousarray(np.pad(f, pad)).tobytes() for f in frames)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width + width % 2}x{height + height % 2}", "-r", str(fps), "-i", "pipe:0",
               "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(MP4_CRF), "-pix_fmt", "yuv420p", "-threads", "1",
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-f", "mp4", str(path)]
    done = subprocess.run(command, input=raw, capture_output=True)
    if done.returncode != 0:
        message = " ".join(done.stderr.decode(errors="replace").split())[-300:]
        raise OSError(errno.EIO, f"ffmpeg could not write the MP4 ({message or f'exit {done.returncode}'})", str(path))


def labelled(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with a white strip of :data:`LABEL_HEIGHT` px on top holding ``text``."""
    strip = np.full((LABEL_HEIGHT, frame.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_8)
    return np.concatenate([strip, frame], axis=0)


def side_by_side(clip_a: Sequence[np.ndarray], clip_b: Sequence[np.ndarray], name_a: str, name_b: str,
                 gap: int = 4) -> list[np.ndarray]:
    """A|B frames: each clip's frame under its label, ``gap`` white px between; the clips must match in length and size."""
    if len(clip_a) != len(clip_b) or clip_a[0].shape != clip_b[0].shape:
        raise ValueError(f"A|B clips differ: {len(clip_a)} x {clip_a[0].shape} vs {len(clip_b)} x {clip_b[0].shape}")
    spacer = np.full((clip_a[0].shape[0] + LABEL_HEIGHT, gap, 3), 255, np.uint8)
    return [np.concatenate([labelled(a, name_a), spacer, labelled(b, name_b)], axis=1) for a, b in zip(clip_a, clip_b)]
