"""Measure models on real videos: every frame predicted, every pair counted on shared tracked pixels.

For each video: its frames are read once; every model (and the reference model, if any)
predicts every frame (:func:`~stabbench.predictors.predict_sequence`, in temporal order);
the reference labels are the annotations (``--annotations``) or the reference model's
prediction. For each pair ``(t, t+1)``: DIS flow in both directions from the flow cache,
the tracked pixels (:func:`~stabbench.realvideo.tracks.real_tracks`), the band around the
**reference's** edges of frame ``t``; then every model's counts on exactly those pixels, in
one :class:`~stabbench.metrics.StabilityMeter` per model.

Memory: a video's frames are held at once (about 1.2 MB per 854x480 frame), with one uint8
label map per frame and model. With ``clips`` (``--visuals``) the video's clips are drawn from
them before they are dropped (:mod:`stabbench.realvideo.visuals`: no copy of the video).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from stabbench.conventions import BAND_WIDTH, IGNORE_LABEL
from stabbench.errors import DataError, ModelError
from stabbench.flow import FlowCache, FlowParams, FrameFolder, VideoSource, bidirectional_flow
from stabbench.flow.dis import MIN_SIDE
from stabbench.metrics import StabilityMeter
from stabbench.metrics.functional import PairGeometry, boundary_band
from stabbench.predictors.precomputed import PrecomputedPredictor, mask_name
from stabbench.realvideo.tracks import MotionBoundary, real_tracks

if TYPE_CHECKING:
    from stabbench.realvideo.visuals import ClipWriter, VideoFlicker

ANNOTATIONS = "annotations"


@dataclass
class VideoSequence:
    """What a predictor's ``begin_sequence`` receives for a real video.

    ``id``: the folder name (frames) or file stem (video file); ``frame_names``: the frame
    files' stems, or :func:`~stabbench.predictors.precomputed.mask_name` of each index for a
    video file. ``masks()`` gives the annotations (``(N, H, W)`` uint8), only with
    ``--annotations`` (the built-in oracles need them).
    """

    id: str
    num_frames: int
    frame_names: list[str]
    annotations: np.ndarray | None = None

    def masks(self) -> np.ndarray:
        if self.annotations is None:
            raise DataError(None, f"video {self.id}: no ground truth (a built-in oracle on real video needs --annotations)")
        return self.annotations


def video_id(video: VideoSource) -> str:
    return video.path.name if isinstance(video, FrameFolder) else video.path.stem


def frame_names(video: VideoSource) -> list[str]:
    if isinstance(video, FrameFolder):
        return [p.stem for p in video.frames]
    return [mask_name(k) for k in range(video.num_frames)]


def read_frames(video: VideoSource) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB, every frame of the video (all the same size, else DataError)."""
    if video.num_frames < 2:
        raise DataError(video.path, f"{video.num_frames} frame(s): a video needs at least 2")
    first = video.read_frame(0)
    if min(first.shape[:2]) < MIN_SIDE:
        raise DataError(video.frame_path(0), f"frames of {first.shape[1]}x{first.shape[0]} px: optical flow needs at "
                                             f"least {MIN_SIDE}x{MIN_SIDE}")
    frames = np.empty((video.num_frames, *first.shape), np.uint8)
    frames[0] = first
    for i in range(1, video.num_frames):
        frame = video.read_frame(i)
        if frame.shape != first.shape:
            raise DataError(video.frame_path(i), f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, "
                                                 f"frame 0 is {first.shape[1]}x{first.shape[0]}")
        frames[i] = frame
    return frames


def video_checksum(video: VideoSource) -> str:
    """sha256 over the video's files (each frame file of a folder, or the video file)."""
    digest = hashlib.sha256()
    files = video.frames if isinstance(video, FrameFolder) else (video.path,)
    for path in files:
        digest.update(f"{Path(path).name}\n".encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Settings:
    """How the correspondences and the band are made (all recorded in the results)."""

    flow: FlowParams = FlowParams()
    criterion: MotionBoundary | None = MotionBoundary()
    band_width: int = BAND_WIDTH


@dataclass
class RealVideoState:
    """The counts: one meter per model (reference included), pixel counts per pair.

    ``coverage``: ``{video: [[t, pixels, fb_valid, tracked, band, band_tracked], ...]}``.
    """

    meters: dict[str, StabilityMeter]
    coverage: dict[str, list[list[int]]] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)


def predict_video(name: str, loaded: Any, frames: np.ndarray, seq: VideoSequence, batch_size: int | None) -> np.ndarray:
    """``(N, H, W)`` labels of one model on one video; NaN/Inf outputs are a ModelError naming the video."""
    from stabbench.predictors import predict_sequence

    try:
        labels, non_finite = predict_sequence(loaded.predictor, frames, spec=loaded.spec, sequence=seq,
                                              batch_size=batch_size)
    except ModelError as exc:
        raise ModelError(f"{name} on video {seq.id}: {exc}") from exc
    if non_finite:
        raise ModelError(f"{name} on video {seq.id}: {non_finite[0]}")
    return labels


def read_annotations(root: Path, frames: np.ndarray, seq: VideoSequence) -> np.ndarray:
    """The annotations of a video, ``(N, H, W)`` uint8, any non-zero value -> 1 (missing, extra,
    mis-sized and unreadable masks: DataError naming the file). The user's own folder: links are
    followed (a dataset symlinked file by file reads as it is)."""
    reader = PrecomputedPredictor(root, "foreground", what="annotations", confined=False)
    reader.begin_sequence(seq)
    return reader.predict(frames)


def measure_pair(vid: str, t: int, frames: np.ndarray, labels: dict[str, np.ndarray], reference: str,
                 settings: Settings, meters: dict[str, StabilityMeter], cache: FlowCache | None = None,
                 observe: Callable[[int, PairGeometry], None] | None = None) -> list[int]:
    """Count the pair ``(t, t+1)`` of one video for every model of ``meters`` (the per-pair cost
    that ``benchmarks/bench_video.py`` measures); its coverage row
    ``[t, pixels, fb_valid, tracked, band, band_tracked]``.

    ``frames``: ``(N, H, W, 3)`` uint8; ``labels``: model name -> ``(N, H, W)`` labels, the
    reference's included. Without a ``cache`` the flow is computed here. ``observe(t, geometry)``
    sees the pair's tracked pixels and band after the counting (``--visuals``).
    """
    pair = cache.get_or_compute(frames[t], frames[t + 1], settings.flow) if cache is not None else \
        bidirectional_flow(frames[t], frames[t + 1], settings.flow)
    tracks, stats = real_tracks(pair, settings.criterion)
    band = boundary_band(labels[reference][t], settings.band_width, IGNORE_LABEL)
    geometry = PairGeometry(tracks, band, tracks.tracked & band, settings.band_width, IGNORE_LABEL)
    for name, meter in meters.items():
        meter.update_prepared(vid, t, labels[name][t], labels[name][t + 1], geometry)
    if observe is not None:
        observe(t, geometry)
    return [t, stats.pixels, stats.fb_valid, stats.tracked, int(np.count_nonzero(band)), geometry.num_band_tracked]


def _observe(seen: VideoFlicker, labels: dict[str, np.ndarray], t: int, geometry: PairGeometry) -> None:
    seen.add_pair(t, geometry, labels)


def measure_video(video: VideoSource, models: dict[str, Any], reference: str, annotations: Path | None,
                  settings: Settings, state: RealVideoState, cache: FlowCache | None,
                  batch_size: int | None = None, clips: ClipWriter | None = None) -> None:
    """Count one video into ``state`` (module docstring). ``reference``: a key of ``models`` or
    :data:`ANNOTATIONS`. ``clips``: also draw its flicker clips (while its frames are held)."""
    vid = video_id(video)
    if vid in state.frames:
        raise DataError(video.path, f"two videos share the id {vid!r} (a folder or file name); rename one")
    frames = read_frames(video)
    seq = VideoSequence(vid, len(frames), frame_names(video))
    if annotations is not None:
        seq.annotations = read_annotations(annotations, frames, seq)
    labels = {name: predict_video(name, loaded, frames, seq, batch_size) for name, loaded in models.items()}
    if reference == ANNOTATIONS:
        labels[ANNOTATIONS] = seq.annotations
    rows = state.coverage.setdefault(vid, [])
    seen = None if clips is None else clips.start_video(list(state.meters), frames)
    observe = None if seen is None else partial(_observe, seen, labels)
    for t in range(len(frames) - 1):
        rows.append(measure_pair(vid, t, frames, labels, reference, settings, state.meters, cache, observe))
    if clips is not None:
        clips.write_video(vid, frames, labels, seen, state.meters)
    state.frames[vid] = len(frames)
    state.checksums[vid] = video_checksum(video)


def measure(videos: list[VideoSource], models: dict[str, Any], reference: str, annotations: Path | None,
            settings: Settings = Settings(), cache: FlowCache | None = None, batch_size: int | None = None,
            progress: Callable[[int, int], None] | None = None, clips: ClipWriter | None = None) -> RealVideoState:
    """Count every video (see :func:`measure_video`); the meters are keyed by model name, the
    reference's included (:data:`ANNOTATIONS` for annotations). ``clips``: also draw every
    video's flicker clips (:mod:`stabbench.realvideo.visuals`)."""
    names = list(models) + ([ANNOTATIONS] if reference == ANNOTATIONS else [])
    state = RealVideoState({name: StabilityMeter(settings.band_width, IGNORE_LABEL) for name in names})
    for done, video in enumerate(videos):
        measure_video(video, models, reference, annotations, settings, state, cache, batch_size, clips)
        video.close()
        if progress is not None:
            progress(done + 1, len(videos))
    return state


__all__ = ["ANNOTATIONS", "RealVideoState", "Settings", "VideoSequence", "measure", "measure_pair", "measure_video", "read_frames",
           "video_checksum", "video_id"]
