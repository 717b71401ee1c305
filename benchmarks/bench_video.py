#!/usr/bin/env python
"""The real-video measure (``stabbench video``): per-pair cost against DIS flow alone.

Target (issue 10): per 854x480 pair, the measure costs at most the DIS flow time plus 20 %.

Data: the DAVIS sample's ``blackswan`` frames ``--frames`` (consecutive pairs), their
annotations (the reference: the band) and the real OSVOS predictions (a compared model), read
once before timing. Cases, interleaved (``harness.interleaved``), one OpenCV thread, per pair:

* ``dis-flow`` (the baseline): :func:`stabbench.flow.bidirectional_flow`, DIS ``medium`` in
  both directions + the forward-backward check: the flow the measure needs;
* ``dis-2x``: :func:`stabbench.flow.compute_flow` twice (the two DIS calls alone);
* ``measure``: :func:`stabbench.realvideo.run.measure_pair` without a cache: the flow, the
  tracked pixels (+ the motion-boundary criterion), the reference's band, and the counts of
  the annotations and OSVOS;
* ``measure-cached``: the same with a warm :class:`~stabbench.flow.FlowCache` (every pair a
  hit, as on a second model or a re-run);
* ``counting``: the same on a precomputed flow (no flow at all: what the measure adds);
* ``cached-clips``: ``measure-cached`` plus ``--visuals``: the flicker masks gathered per pair
  and both label sets' clips (GIF + MP4) drawn and written
  (:class:`~stabbench.realvideo.visuals.ClipWriter`), per pair of the call's clip.

Needs the DAVIS sample (``../shared/data/davis-sample``, read in place)::

    .venv/bin/python benchmarks/bench_video.py
    .venv/bin/python benchmarks/bench_video.py --quick
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402

from stabbench.flow import FlowCache, FlowParams, bidirectional_flow, compute_flow, list_videos  # noqa: E402
from stabbench.metrics import StabilityMeter  # noqa: E402
from stabbench.predictors.precomputed import PrecomputedPredictor  # noqa: E402
from stabbench.realvideo.run import ANNOTATIONS, Settings, VideoSequence, measure_pair, read_frames  # noqa: E402
from stabbench.realvideo.visuals import ClipWriter  # noqa: E402

SEQ = "blackswan"


def _address(frame: np.ndarray) -> int:
    """Where a frame's pixels live (``frames[t]`` is a new view object on each indexing)."""
    return frame.__array_interface__["data"][0]


class _Precomputed:
    """A flow 'cache' holding the pairs' flows in memory (the ``counting`` case)."""

    def __init__(self, flows: dict[int, object]):
        self.flows = flows

    def get_or_compute(self, frame_t, frame_t1, params):
        return self.flows[_address(frame_t)]


def load(davis, frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    (video,) = list_videos(davis / "JPEGImages/480p" / SEQ)
    all_frames = read_frames(video)
    seq = VideoSequence(SEQ, len(all_frames), [f"{k:05d}" for k in range(len(all_frames))])
    labels = {}
    for name, root, mapping in ((ANNOTATIONS, davis / "Annotations/480p", "foreground"),
                                ("osvos", davis / "Predictions/osvos-davis2017/480p", "foreground")):
        reader = PrecomputedPredictor(root, mapping)
        reader.begin_sequence(seq)
        labels[name] = reader.predict(all_frames)[: frames + 1]
    return all_frames[: frames + 1], labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_arguments(parser, rounds=7)
    parser.add_argument("--frames", type=int, default=4, help="pairs per case call (consecutive, from frame 0)")
    parser.add_argument("--davis", default=str(harness.DEFAULT_DAVIS))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.frames = 2, 2
    davis = harness.require_dir(args.davis, "the DAVIS sample")
    cv2.setNumThreads(1)
    frames, labels = load(davis, args.frames)
    settings = Settings(FlowParams("medium"))
    pairs = range(args.frames)
    record = harness.new_record("video", args, seeds={}, parameters={
        "sequence": SEQ, "pairs_per_call": args.frames, "size": list(frames.shape[1:3]), "flow": settings.flow.to_dict(),
        "motion_boundary": settings.criterion.to_dict(), "band_width": settings.band_width, "models": 2,
        "opencv_threads": 1})
    memory = _Precomputed({_address(frames[t]): bidirectional_flow(frames[t], frames[t + 1], settings.flow) for t in pairs})
    with tempfile.TemporaryDirectory() as tmp:
        cache = FlowCache(tmp)
        for t in pairs:
            cache.get_or_compute(frames[t], frames[t + 1], settings.flow)

        def measure_case(flow_source):
            def run():
                meters = {name: StabilityMeter() for name in labels}  # fresh: a pair is counted once per meter
                return [measure_pair(SEQ, t, frames, labels, ANNOTATIONS, settings, meters, flow_source) for t in pairs]
            return run

        def clips_case():
            meters = {name: StabilityMeter() for name in labels}
            with tempfile.TemporaryDirectory() as out:
                clips = ClipWriter(Path(out), ANNOTATIONS, settings.band_width, ("gif", "mp4"))
                seen = clips.start_video(list(meters), frames)
                rows = [measure_pair(SEQ, t, frames, labels, ANNOTATIONS, settings, meters, cache,
                                     lambda t, geometry: seen.add_pair(t, geometry, labels)) for t in pairs]
                clips.write_video(SEQ, frames, labels, seen, meters)
            return rows

        cases = {
            "dis-flow": lambda: [bidirectional_flow(frames[t], frames[t + 1], settings.flow) for t in pairs],
            "dis-2x": lambda: [(compute_flow(frames[t], frames[t + 1], settings.flow),
                                compute_flow(frames[t + 1], frames[t], settings.flow)) for t in pairs],
            "measure": measure_case(None),
            "measure-cached": measure_case(cache),
            "counting": measure_case(memory),
            "cached-clips": clips_case,
        }
        timing = harness.interleaved(args.rounds, cases, baseline="dis-flow", warmup=args.warmup)
    record["timing"] = timing
    record["target"] = {"case": "measure", "baseline": "dis-flow", "max_ratio": 1.2,
                        "ratio_of_medians": timing["ratios"]["measure"]["of_medians"]}
    print(harness.header(record))
    print(harness.timing_table(timing, per=args.frames, per_label="pair"))
    harness.write_result(record, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
