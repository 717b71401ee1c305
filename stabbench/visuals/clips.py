"""Writing clips: animated GIF (Pillow) and MP4 (H.264, the ffmpeg of imageio-ffmpeg), and A|B panels.

Same frames, same bytes: the GIF has one palette for the clip (Pillow's fast octree of
the frames, plus colours kept exactly), no dithering, no randomness; the MP4 is encoded by libx264 (preset ultrafast) single-threaded
with bit-exact flags and no metadata (deterministic for one ffmpeg/x264 build, the one
``imageio-ffmpeg`` ships; another build may write other bytes).
"""

from __future__ import annotations

import errno
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

#: Frames per second of the clips: 11 frames last 2.2 s.
FPS = 5
#: x264 constant rate factor of the MP4 (lower: better; 18-23 look the same as the frames).
MP4_CRF = 20
LABEL_HEIGHT = 24


def _checked(frames: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames, each checked as it is taken (``frames`` may draw each frame on access: a frame
    is held only while it is used)."""
    if not len(frames):
        raise ValueError("a clip needs at least one frame")
    shape = None
    for frame in frames:
        shape = frame.shape if shape is None else shape
        if frame.shape != shape or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"clip frames must all be (H, W, 3) uint8 of one shape, got {frame.shape} {frame.dtype}")
        yield frame


def clip_palette(frames: Sequence[np.ndarray], keep: Sequence[tuple[int, int, int]] = ()):
    """One 256-colour Pillow palette for a whole clip: the ``keep`` colours exactly, the rest a fast
    octree of every frame (every 4th pixel in each direction). One palette for all frames: no
    colour shimmer between frames that a GIF viewer would show as flicker."""
    from PIL import Image

    sample = np.concatenate([f[::4, ::4].copy() for f in _checked(frames)], axis=0)  # copies: no frame kept alive
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

    palette = clip_palette(frames, keep)
    images = (Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in _checked(frames))
    first = next(images)  # the rest are quantized as Pillow takes them (it keeps one indexed copy of each)
    first.save(path, format="GIF", save_all=True, append_images=images, duration=int(1000 / fps), loop=0,
               optimize=False)


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int = FPS) -> None:
    """H.264 MP4 (yuv420p) of ``(H, W, 3)`` uint8 RGB ``frames``; odd sizes are padded by one black pixel.

    Encoded by the ffmpeg binary of ``imageio-ffmpeg`` (what imageio's ffmpeg plugin runs), fed
    raw RGB on stdin one frame at a time. A failure is an ``OSError`` naming ``path`` with
    ffmpeg's message; a bad frame a ``ValueError``; either way no file is left at ``path``.
    """
    import imageio_ffmpeg

    if not len(frames):
        raise ValueError("a clip needs at least one frame")
    height, width = frames[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width + width % 2}x{height + height % 2}", "-r", str(fps), "-i", "pipe:0",
               "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(MP4_CRF), "-pix_fmt", "yuv420p", "-threads", "1",
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-f", "mp4", str(path)]
    with tempfile.TemporaryFile() as errors:
        encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            _feed(encoder, (np.ascontiguousarray(np.pad(f, pad)) for f in _checked(frames)))
        except BaseException:
            encoder.kill()
            encoder.wait()
            Path(path).unlink(missing_ok=True)
            raise
        if encoder.wait() != 0:
            errors.seek(0)
            message = " ".join(errors.read().decode(errors="replace").split())[-300:]
            Path(path).unlink(missing_ok=True)
            raise OSError(errno.EIO, f"ffmpeg could not write the MP4 ({message or f'exit {encoder.returncode}'})",
                          str(path))


def _feed(encoder: subprocess.Popen, raw_frames: Iterator[np.ndarray]) -> None:
    """Write the frames' bytes to the encoder's stdin and close it; an encoder that stopped reading
    (it failed: its exit status says so) ends the feeding."""
    try:
        for frame in raw_frames:
            encoder.stdin.write(frame.tobytes())
    except BrokenPipeError:
        pass
    finally:
        try:
            encoder.stdin.close()
        except BrokenPipeError:
            pass


def labelled(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with a white strip of :data:`LABEL_HEIGHT` px on top holding ``text``."""
    strip = np.full((LABEL_HEIGHT, frame.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_8)
    return np.concatenate([strip, frame], axis=0)


class PanelFrames(Sequence):
    """The frames of :func:`side_by_side`, each put together when it is taken (from clips that may
    draw their frames on access, e.g. :class:`~stabbench.visuals.overlay.ClipFrames`)."""

    def __init__(self, clip_a: Sequence[np.ndarray], clip_b: Sequence[np.ndarray], name_a: str, name_b: str,
                 gap: int = 4):
        if len(clip_a) != len(clip_b) or clip_a[0].shape != clip_b[0].shape:
            raise ValueError(f"A|B clips differ: {len(clip_a)} x {clip_a[0].shape} vs {len(clip_b)} x {clip_b[0].shape}")
        self.clip_a, self.clip_b, self.names = clip_a, clip_b, (name_a, name_b)
        self.spacer = np.full((clip_a[0].shape[0] + LABEL_HEIGHT, gap, 3), 255, np.uint8)

    def __len__(self) -> int:
        return len(self.clip_a)

    def __getitem__(self, k: int) -> np.ndarray:
        if isinstance(k, slice):
            raise TypeError("PanelFrames takes one frame index, not a slice")
        if not -len(self) <= k < len(self):
            raise IndexError(f"frame {k} of a clip of {len(self)}")
        return np.concatenate([labelled(self.clip_a[k], self.names[0]), self.spacer,
                               labelled(self.clip_b[k], self.names[1])], axis=1)


def side_by_side(clip_a: Sequence[np.ndarray], clip_b: Sequence[np.ndarray], name_a: str, name_b: str,
                 gap: int = 4) -> list[np.ndarray]:
    """A|B frames: each clip's frame under its label, ``gap`` white px between; the clips must match in length and size."""
    return list(PanelFrames(clip_a, clip_b, name_a, name_b, gap))
