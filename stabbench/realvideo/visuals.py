"""Flicker clips of a real-video comparison (``stabbench video --visuals``).

The same clip as ``stabbench show`` draws for a synthetic sequence
(:func:`~stabbench.visuals.render_clip`, the writers of :mod:`stabbench.visuals.show`), made
from what the measurement counts, per video and per model (the reference included):

* **flicker** (red) in frame ``k``: the targets ``x'`` of the tracked pixels ``x`` of pair
  ``(k-1, k)`` with ``pred_{k-1}[x] != pred_k[x']`` (:func:`~stabbench.visuals.pair_flicker`
  on the pair's tracked pixels, :func:`~stabbench.realvideo.tracks.real_tracks`): exactly the
  pixels the real-video S_global counts as not consistent; frame 0 has none;
* **band** (shaded) of frame ``k``: the band around the reference's edges of frame ``k``, the
  one the measure used for the pair ``(k, k+1)`` (the last frame: its reference's band);
* **outline** (cyan): the model's predicted outline.

Convention: that of :mod:`stabbench.realvideo.tracks` -- arrays ``[row y, column x]``, the
content at ``x`` of frame ``t`` is at ``x + f(x)`` in frame ``t+1`` (forward flow), ``x'`` the
pixel of frame ``t+1`` nearest to it.

Memory: the clips of a video are drawn while the measure holds its frames and labels (nothing
is re-read or copied); the masks are gathered pair by pair, bit-packed (1/8 byte per pixel per
frame and model, plus the band's); a clip is drawn frame by frame as the writers take it
(:class:`~stabbench.visuals.overlay.ClipFrames`, :class:`~stabbench.visuals.clips.PanelFrames`;
the MP4 encoder is fed one frame at a time), one model at a time. What a writer holds beyond
that is the GIF's indexed frames (1 byte per pixel per frame, a third of the video's frames).

Folder (staged beside the output, published with it as ``OUT/visuals``)::

    visuals.json              the items (the shape ``stabbench report`` reads)
    <video>/<model>.gif|.mp4  the clip of one model (``<model>``: :func:`model_stem`)
    <video>/<model>.vs-reference.gif|.mp4   --visuals-compare: A|B, the model beside the reference
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from stabbench.conventions import IGNORE_LABEL
from stabbench.fileio import atomic_write_text
from stabbench.metrics import StabilityMeter
from stabbench.metrics.functional import PairGeometry, boundary_band
from stabbench.report.results import to_json
from stabbench.visuals import pair_flicker
from stabbench.visuals.clips import PanelFrames
from stabbench.visuals.overlay import ClipFrames
from stabbench.visuals.show import FORMATS, VISUALS_FILE, VISUALS_FORMAT_VERSION, VISUALS_KIND, panel_name, write_clip

#: ``kind`` of a real-video item of visuals.json (a synthetic item has none).
ITEM_KIND = "real-video"
#: Longest file stem made from a model name.
STEM_CHARS = 48


def model_stem(name: str) -> str:
    """A file stem for a model name: the name itself when it is a plain file name of at most
    :data:`STEM_CHARS` characters, else its ``[A-Za-z0-9._-]`` form cut short plus ``-`` and 8
    hex digits of the name's sha256 (so two names never share a stem)."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if plain == name and 0 < len(name) <= STEM_CHARS:
        return name
    return f"{plain[:STEM_CHARS]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class PackedMasks(Sequence):
    """``(H, W)`` bool masks kept bit-packed (1/8 byte per pixel), unpacked when one is taken."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = tuple(shape)
        self.packed: list[np.ndarray] = []

    def append(self, mask: np.ndarray) -> None:
        if mask.shape != self.shape:
            raise ValueError(f"mask of shape {mask.shape}, expected {self.shape}")
        self.packed.append(np.packbits(mask.ravel()))

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, k: int) -> np.ndarray:
        size = self.shape[0] * self.shape[1]
        return np.unpackbits(self.packed[k], count=size).view(bool).reshape(self.shape)


class VideoFlicker:
    """The flicker masks of every model and the band of one video, gathered pair by pair.

    Attributes:
        flicker: model name -> :class:`PackedMasks`, frame ``k``'s red pixels (frame 0: none).
        band: :class:`PackedMasks`, frame ``k``'s band (the reference's).
        inconsistent: model name -> inconsistent pixels over all pairs. tracked: tracked pixels over all pairs.
    """

    def __init__(self, names: list[str], num_frames: int, shape: tuple[int, int]):
        self.num_frames, self.shape = num_frames, tuple(shape)
        self.flicker = {name: PackedMasks(self.shape) for name in names}
        for masks in self.flicker.values():
            masks.append(np.zeros(self.shape, bool))
        self.band = PackedMasks(self.shape)
        self.inconsistent = dict.fromkeys(names, 0)
        self.tracked = 0

    def add_pair(self, t: int, geometry: PairGeometry, labels: dict[str, np.ndarray]) -> None:
        """Pair ``(t, t+1)`` (in order): each model's flicker of frame ``t+1``, the band of frame ``t``."""
        if t != len(self.band):
            raise ValueError(f"pairs must come in order: got t={t} after {len(self.band)} pairs")
        self.band.append(geometry.band)
        self.tracked += geometry.num_tracked
        for name, masks in self.flicker.items():
            inconsistent, flicker = pair_flicker(labels[name][t], labels[name][t + 1], geometry.tracks)
            masks.append(flicker)
            self.inconsistent[name] += int(np.count_nonzero(inconsistent))

    def close(self, last_band: np.ndarray) -> None:
        """The band of the last frame (no pair starts there): its reference's band."""
        if len(self.band) != self.num_frames - 1:
            raise ValueError(f"{len(self.band)} pairs gathered, the video has {self.num_frames - 1}")
        self.band.append(last_band)


class ClipWriter:
    """Draws and writes the clips of each video (:func:`stabbench.realvideo.run.measure_video` calls
    :meth:`write_video` while it holds the video); :meth:`finish` writes ``visuals.json``.

    Args:
        folder: an empty folder (the staging folder of the output's ``visuals/``).
        reference: the reference's name (a key of the labels). band_width: the measure's.
        formats: ``gif`` and/or ``mp4``. compare: also an A|B clip of each model beside the reference.
    """

    def __init__(self, folder: Path, reference: str, band_width: int, formats: tuple[str, ...] = FORMATS,
                 compare: bool = False):
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise ValueError(f"formats: {', '.join(unknown) or 'nothing'} given; choose from {', '.join(FORMATS)}")
        self.folder, self.reference, self.band_width = Path(folder), reference, int(band_width)
        self.formats, self.compare = tuple(formats), bool(compare)
        self.items: list[dict] = []

    def start_video(self, names: list[str], frames: np.ndarray) -> VideoFlicker:
        return VideoFlicker(names, len(frames), frames.shape[1:3])

    def write_video(self, vid: str, frames: np.ndarray, labels: dict[str, np.ndarray], seen: VideoFlicker,
                    meters: dict[str, StabilityMeter]) -> None:
        """Every model's clip of video ``vid`` (the reference first), into ``folder/<vid>/``."""
        seen.close(boundary_band(labels[self.reference][-1], self.band_width, IGNORE_LABEL))
        folder = self.folder / vid
        folder.mkdir()
        names = [self.reference] + [name for name in seen.flicker if name != self.reference]
        rows = {name: _video_row(meters[name], vid) for name in names}
        reference_clip = None
        for name in names:
            clip = ClipFrames(frames, labels[name], seen.flicker[name], seen.band)
            item = {"kind": ITEM_KIND, "video": vid, "model": name, "is_reference": name == self.reference,
                    "frames": len(frames), "S_global": rows[name].get("S_global"),
                    "S_boundary": rows[name].get("S_boundary"), "inconsistent_pixels": seen.inconsistent[name],
                    "tracked_pixels": seen.tracked, **self._write(folder, model_stem(name), clip), "compare": None}
            if name == self.reference:
                reference_clip = clip if self.compare else None
            elif reference_clip is not None:
                panel = PanelFrames(clip, reference_clip, f"A: {panel_name(name)}",
                                    f"B: {panel_name(self.reference)} (reference)")
                item["compare"] = {"model_b": self.reference, **self._write(folder, f"{model_stem(name)}.vs-reference",
                                                                            panel),
                                   "S_global_b": rows[self.reference].get("S_global"),
                                   "S_boundary_b": rows[self.reference].get("S_boundary")}
            self.items.append(item)

    def _write(self, folder: Path, stem: str, frames: Sequence[np.ndarray]) -> dict:
        """``stem.gif`` / ``stem.mp4`` (the MP4 encoded meanwhile, waited for before returning)."""
        pending: list[Future] = []
        with ThreadPoolExecutor(1, thread_name_prefix="stabbench-mp4") as pool:
            try:
                return write_clip(folder, stem, frames, self.formats, pool, pending)
            finally:
                for future in pending:
                    future.result()

    def finish(self, models: list[str]) -> dict:
        """Write ``visuals.json`` (sorted keys, NaN as null; paths relative to the visuals folder); return its content."""
        from stabbench import __version__

        document = {"format_version": VISUALS_FORMAT_VERSION, "kind": VISUALS_KIND, "source": ITEM_KIND,
                    "result": "..", "reference": self.reference, "models": list(models),
                    "boundary_width": self.band_width, "formats": list(self.formats), "compare": self.compare,
                    "stabbench_version": __version__, "items": self.items}
        atomic_write_text(self.folder / VISUALS_FILE, to_json(document))  # a video with nothing tracked: S null
        return document


def _video_row(meter: StabilityMeter, vid: str) -> dict:
    return next((row for row in meter.per_sequence() if row["sequence"] == vid), {})


__all__ = ["ClipWriter", "ITEM_KIND", "PackedMasks", "VideoFlicker", "model_stem"]
