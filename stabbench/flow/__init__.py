"""Optical flow for the correspondences of unlabeled video (NumPy + OpenCV only).

    >>> from stabbench.flow import FlowCache, FlowParams, list_videos, sample_pair_refs
    >>> videos = list_videos(["clips/", "more/video.mp4"])       # doctest: +SKIP
    >>> pairs = sample_pair_refs(videos, n_pairs=30)              # doctest: +SKIP
    >>> cache = FlowCache("flow-cache")                           # doctest: +SKIP
    >>> pf = cache.get_or_compute(*pairs[0].load(), FlowParams("medium"))  # doctest: +SKIP
    >>> pf.flow_fw, pf.valid_fw, pf.flow_bw, pf.valid_bw          # doctest: +SKIP

Modules: :mod:`~stabbench.flow.dis` (DIS flow in both directions + validity),
:mod:`~stabbench.flow.consistency` (forward-backward check, in-frame mask),
:mod:`~stabbench.flow.cache` (on-disk cache keyed by content and parameters),
:mod:`~stabbench.flow.video` (video files, folders of frames, pair sampling).
Flow convention: :mod:`perturbations.geometry`.
"""

from stabbench.flow.cache import FlowCache, cache_key
from stabbench.flow.consistency import fb_consistency, in_frame, sample_at_targets, valid_mask
from stabbench.flow.dis import PRESETS, FlowParams, PairFlow, bidirectional_flow, compute_flow, validity
from stabbench.flow.video import (
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
    FrameFolder,
    PairRef,
    VideoFile,
    VideoSource,
    close_all_readers,
    list_videos,
    sample_pair_refs,
    sample_pairs,
)

__all__ = [
    "FRAME_SUFFIXES",
    "FlowCache",
    "FlowParams",
    "FrameFolder",
    "PRESETS",
    "PairFlow",
    "PairRef",
    "VIDEO_SUFFIXES",
    "VideoFile",
    "VideoSource",
    "bidirectional_flow",
    "cache_key",
    "close_all_readers",
    "compute_flow",
    "fb_consistency",
    "in_frame",
    "list_videos",
    "sample_at_targets",
    "sample_pair_refs",
    "sample_pairs",
    "valid_mask",
    "validity",
]
