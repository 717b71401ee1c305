#!/usr/bin/env python
"""Optical flow (DIS) for the correspondences: error against known flow, speed, cache.

(a) **Flow error** (not timed) of each configuration (DIS presets ``ultrafast``, ``fast``,
    ``medium`` at full resolution, and ``medium`` at a working resolution of ``--max-side``
    px) against the synthesizer's exact flow. Data: the first annotated frame of each
    sequence of the real DAVIS sample (854x480), perturbed with
    ``perturbations.make_trajectory`` (every perturbation, severities ``--severities``,
    ``--num-frames`` frames, seeded; occluders pass the labelled object's centroid, as in
    ``stabbench synth``) and rendered with ``render_sequence``. For ``--pairs`` pairs per
    sequence (equally spaced) the forward flow is compared with ``pair_correspondence``'s
    flow on the pixels it marks valid (gt-valid): end-point error (EPE) mean, median (0.001
    px histogram), share > 1 px; the forward-backward check's keep rate on gt-valid pixels
    and the mean EPE of kept / rejected pixels; the share of gt-invalid pixels it rejects.
(b) **Time** of one 854x480 pair (blackswan frames 0, 1) on one OpenCV thread, interleaved:
    ``bidirectional_flow`` (both directions + check) per configuration, and for ``medium``
    one direction (``compute_flow``) and the check alone (``validity``). Ratios against
    ``medium`` (the training default).
(c) **Cache**: ``FlowCache`` over ``--cache-pairs`` real DAVIS video pairs (``list_videos`` +
    ``sample_pair_refs``, equal intervals), preset medium, OpenCV's default threads. Hit
    rate of two epochs in a fresh folder (the cache's own counters), bytes per pair on disk
    (zlib level 1, the default, and 0), the check's keep rate on these real pairs; then,
    interleaved over ``--cache-rounds`` rounds, per pair: computing the flow without a cache
    (the baseline), a miss (fresh folder: DIS + check + encode + write + decode), a hit at
    level 1 and at level 0 (key + read + decode), the sha256 key alone, and reading the two
    JPEG frames.

Needs the DAVIS sample (``../shared/data/davis-sample``, read in place)::

    .venv/bin/python benchmarks/bench_flow.py
    .venv/bin/python benchmarks/bench_flow.py --quick
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402

import perturbations as P  # noqa: E402
from stabbench.datasets import list_sources  # noqa: E402
from stabbench.flow import (  # noqa: E402
    FlowCache,
    FlowParams,
    bidirectional_flow,
    cache_key,
    compute_flow,
    list_videos,
    sample_pair_refs,
    sample_pairs,
    validity,
)
from stabbench.synth.writer import label_focus  # noqa: E402

HIST_STEP = 0.001  # px, EPE histogram bin (median resolution)
HIST_MAX = 64.0


def configs(max_side: int) -> dict[str, FlowParams]:
    return {"ultrafast": FlowParams("ultrafast"), "fast": FlowParams("fast"), "medium": FlowParams("medium"),
            f"medium@{max_side}": FlowParams("medium", max_side=max_side)}


# --------------------------------------------------------------------------- (a) error


class ErrorStats:
    """Accumulates the error statistics of one (configuration, perturbation)."""

    def __init__(self):
        self.hist = np.zeros(int(HIST_MAX / HIST_STEP) + 1, np.int64)
        self.n = self.over1 = self.kept = self.invalid = self.invalid_rejected = self.pairs = 0
        self.sum = self.sum_kept = self.sum_rejected = 0.0

    def add(self, epe: np.ndarray, gt_valid: np.ndarray, kept: np.ndarray) -> None:
        e, k = epe[gt_valid], kept[gt_valid]
        self.pairs += 1
        self.n += e.size
        self.sum += float(e.sum(dtype=np.float64))
        self.over1 += int(np.count_nonzero(e > 1.0))
        self.kept += int(np.count_nonzero(k))
        self.sum_kept += float(e[k].sum(dtype=np.float64))
        self.sum_rejected += float(e[~k].sum(dtype=np.float64))
        self.hist += np.bincount(np.minimum((e / HIST_STEP).astype(np.int64), self.hist.size - 1),
                                 minlength=self.hist.size)
        self.invalid += int(np.count_nonzero(~gt_valid))
        self.invalid_rejected += int(np.count_nonzero(~gt_valid & ~kept))

    def median(self) -> float:
        return float((np.searchsorted(np.cumsum(self.hist), (self.n + 1) / 2) + 0.5) * HIST_STEP)

    def merge(self, other: ErrorStats) -> None:
        self.hist += other.hist
        for name in ("n", "over1", "kept", "invalid", "invalid_rejected", "pairs", "sum", "sum_kept", "sum_rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict:
        rejected = self.n - self.kept
        return {"pairs": self.pairs, "gt_valid_pixels": self.n, "epe_mean": self.sum / self.n,
                "epe_median": self.median(), "frac_epe_over_1px": self.over1 / self.n, "keep_rate": self.kept / self.n,
                "epe_mean_kept": self.sum_kept / self.kept if self.kept else None,
                "epe_mean_rejected": self.sum_rejected / rejected if rejected else None,
                "gt_invalid_pixels": self.invalid,
                "gt_invalid_rejected": self.invalid_rejected / self.invalid if self.invalid else None}


def measure_error(args, cfgs: dict[str, FlowParams]) -> dict:
    listing = list_sources("davis", str(args.davis_root))
    sources = listing.sources[: args.sources] if args.sources else listing.sources
    stats = {c: {p: ErrorStats() for p in P.PERTURBATION_NAMES} for c in cfgs}
    for si, src in enumerate(sources):
        sample = src.load()
        height, width = sample.label.shape
        for pi, name in enumerate(P.PERTURBATION_NAMES):
            for severity in args.severities:
                rng = np.random.default_rng([args.seed, si, pi, severity])
                traj = P.make_trajectory(name, severity, rng, height, width, args.num_frames,
                                         focus=label_focus(sample.label))
                frames = [f for f, _ in P.render_sequence(sample.image, sample.label, traj, rng)]
                for t, _ in sample_pairs(len(frames), args.pairs):
                    gt, gt_valid = P.pair_correspondence(traj, t)
                    for c, params in cfgs.items():
                        pf = bidirectional_flow(frames[t], frames[t + 1], params)
                        epe = np.sqrt(((pf.flow_fw - gt) ** 2).sum(axis=2))
                        stats[c][name].add(epe, gt_valid, pf.valid_fw)
        print(f"  (a) source {si + 1}/{len(sources)} {src.name}", file=sys.stderr, flush=True)
    out = {}
    for c in cfgs:
        total = ErrorStats()
        rows = {}
        for name in P.PERTURBATION_NAMES:
            rows[name] = stats[c][name].summary()
            total.merge(stats[c][name])
        rows["all"] = total.summary()
        out[c] = rows
    return {"sources": [s.name for s in sources], "per_config": out}


# --------------------------------------------------------------------------- (b) time


def measure_time(args, cfgs: dict[str, FlowParams]) -> dict:
    (video,) = [v for v in list_videos(Path(args.davis_root) / "JPEGImages" / "480p") if v.name == "blackswan"]
    a, b = video.read_pair(0)
    medium = cfgs["medium"]
    fw, bw = compute_flow(a, b, medium), compute_flow(b, a, medium)
    cases = {c: (lambda p=params: bidirectional_flow(a, b, p)) for c, params in cfgs.items()}
    cases["medium: one direction (compute_flow)"] = lambda: compute_flow(a, b, medium)
    cases["medium: check only (validity)"] = lambda: validity(fw, bw, medium)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        timing = harness.interleaved(args.rounds, cases, baseline="medium", warmup=args.warmup, log=False)
    finally:
        cv2.setNumThreads(threads)
    return {"pair": f"{video.path.name} frames 0,1", "size": list(a.shape[:2]), "cv2_threads": 1, "timing": timing}


# --------------------------------------------------------------------------- (c) cache


def measure_cache(args, params: FlowParams, tmp: Path) -> dict:
    videos = list_videos(Path(args.davis_root) / "JPEGImages" / "480p")
    per_video = max(1, -(-args.cache_pairs // len(videos)))
    refs = sample_pair_refs(videos, per_video)[: args.cache_pairs]
    frames = [ref.load() for ref in refs]
    levels, keep = {}, []
    caches = {}
    for level in (1, 0):  # hit rate of two epochs in a fresh folder (the cache's counters; not timed)
        cache = FlowCache(tmp / f"level{level}", compress_level=level)
        epochs = []
        for _ in range(2):
            cache.reset_stats()
            for a, b in frames:
                pf = cache.get_or_compute(a, b, params)
                if level == 1 and not epochs:
                    keep.append((float(pf.valid_fw.mean()), float(pf.valid_bw.mean())))
            epochs.append(dict(cache.stats()))
        sizes = [p.stat().st_size for p in (tmp / f"level{level}").rglob("*.flow")]
        levels[level] = {"epochs": epochs, "files": len(sizes), "bytes_per_pair_mean": statistics.mean(sizes)}
        caches[level] = cache
        print(f"  (c) level {level}: {epochs}", file=sys.stderr)
    fresh = itertools.count()

    def miss() -> float:
        folder = tmp / f"miss{next(fresh)}"
        cache = FlowCache(folder)
        t0 = time.perf_counter()
        for a, b in frames:
            cache.get_or_compute(a, b, params)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(folder)
        return elapsed

    def each(fn):
        def case():
            for a, b in frames:
                fn(a, b)
        return case

    def load():
        for ref in refs:
            ref.load()

    cases = {"compute, no cache (bidirectional_flow)": each(lambda a, b: bidirectional_flow(a, b, params)),
             "miss, zlib 1 (fresh folder)": miss,
             "hit, zlib 1": each(lambda a, b: caches[1].get_or_compute(a, b, params)),
             "hit, zlib 0": each(lambda a, b: caches[0].get_or_compute(a, b, params)),
             "sha256 key only": each(lambda a, b: cache_key(a, b, params)),
             "read the two JPEG frames": load}
    timing = harness.interleaved(args.cache_rounds, cases, baseline="compute, no cache (bidirectional_flow)",
                                 warmup=args.warmup)
    return {"params": params.to_dict(), "pairs": len(refs), "videos": len(videos), "pairs_per_video": per_video,
            "levels": levels, "raw_float32_bytes_per_pair": int(np.prod(frames[0][0].shape[:2])) * (2 * 2 * 4 + 2),
            "real_keep_rate_fw_mean": statistics.mean(k[0] for k in keep),
            "real_keep_rate_bw_mean": statistics.mean(k[1] for k in keep),
            "real_keep_rate_fw_min": min(k[0] for k in keep), "cv2_threads": cv2.getNumThreads(), "timing": timing}


# --------------------------------------------------------------------------- reporting


def fmt(v, digits=3, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"


def markdown(record: dict) -> str:
    lines = [harness.header(record), ""]
    p = record["parameters"]
    if "error" in record:
        err = record["error"]
        lines += [f"(a) Flow error vs the synthesizer's flow, forward, gt-valid pixels ({len(err['sources'])} DAVIS "
                  f"sources x {len(P.PERTURBATION_NAMES)} perturbations x severities {p['severities']} x {p['pairs']} pairs):",
                  "", "| config | perturbation | EPE mean px | EPE median px | EPE > 1 px | check keeps (gt-valid) "
                  "| EPE kept / rejected px | gt-invalid rejected |", "|---|---|---|---|---|---|---|---|"]
        for c, rows in err["per_config"].items():
            for name, row in rows.items():
                label = f"**{name}**" if name == "all" else name
                lines.append(f"| {c} | {label} | {fmt(row['epe_mean'])} | {fmt(row['epe_median'])} "
                             f"| {fmt(row['frac_epe_over_1px'], pct=True)} | {fmt(row['keep_rate'], pct=True)} "
                             f"| {fmt(row['epe_mean_kept'])} / {fmt(row['epe_mean_rejected'])} "
                             f"| {fmt(row['gt_invalid_rejected'], pct=True)} |")
        lines.append("")
    if "time" in record:
        tm = record["time"]
        lines += [f"(b) One {tm['size'][1]}x{tm['size'][0]} pair ({tm['pair']}), one OpenCV thread:", "",
                  harness.timing_table(tm["timing"]), ""]
    if "cache" in record:
        ca = record["cache"]
        l1, l0 = ca["levels"][1], ca["levels"][0]
        lines += [f"(c) Cache, {ca['pairs']} real DAVIS pairs ({ca['videos']} videos), preset {ca['params']['preset']}, "
                  f"OpenCV threads {ca['cv2_threads']}: epoch 1 hits/misses {l1['epochs'][0]['hits']}/"
                  f"{l1['epochs'][0]['misses']}, **epoch 2 hit rate {100 * l1['epochs'][1]['hit_rate']:.0f} %** "
                  f"(level 0: {100 * l0['epochs'][1]['hit_rate']:.0f} %); bytes per pair on disk "
                  f"{l1['bytes_per_pair_mean'] / 1e6:.2f} MB (level 0: {l0['bytes_per_pair_mean'] / 1e6:.2f} MB; raw float32 "
                  f"{ca['raw_float32_bytes_per_pair'] / 1e6:.2f} MB); check keep rate on these real pairs: forward mean "
                  f"{fmt(ca['real_keep_rate_fw_mean'], pct=True)} (min {fmt(ca['real_keep_rate_fw_min'], pct=True)}), "
                  f"backward {fmt(ca['real_keep_rate_bw_mean'], pct=True)}.", "",
                  harness.timing_table(ca["timing"], per=ca["pairs"], per_label="pair")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--davis-root", default=str(harness.DEFAULT_DAVIS), help="DAVIS sample (read in place, never copied)")
    p.add_argument("--severities", type=lambda s: [int(v) for v in s.split(",")], default=[1, 3, 6])
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--pairs", type=int, default=5, help="(a) pairs per synthetic sequence, equally spaced")
    p.add_argument("--sources", type=int, default=0, help="(a) DAVIS sources used (0: all)")
    p.add_argument("--max-side", type=int, default=427, help="working resolution of the extra medium config")
    p.add_argument("--cache-pairs", type=int, default=35, help="(c) real video pairs")
    p.add_argument("--cache-rounds", type=int, default=5, help="(c) timed interleaved rounds")
    p.add_argument("--parts", default="error,time,cache", help="comma-separated subset of error,time,cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="where the temporary caches are written")
    harness.add_arguments(p, rounds=20)
    args = p.parse_args(argv)
    if args.quick:
        args.sources, args.severities, args.pairs, args.num_frames = 1, [3], 2, 5
        args.rounds, args.cache_pairs, args.cache_rounds = min(args.rounds, 3), 4, 2
    harness.require_dir(args.davis_root, "DAVIS sample", "pass --davis-root")
    parts = set(args.parts.split(","))
    cfgs = configs(args.max_side)
    record = harness.new_record("flow", args, seeds={"perturbations": args.seed}, parameters={
        "severities": args.severities, "num_frames": args.num_frames, "pairs": args.pairs, "sources": args.sources,
        "cache_pairs": args.cache_pairs, "cache_rounds": args.cache_rounds, "parts": sorted(parts),
        "configs": {c: v.to_dict() for c, v in cfgs.items()}, "davis_root": args.davis_root})
    if "time" in parts:  # first, on a quiet process
        record["time"] = measure_time(args, cfgs)
    if "error" in parts:
        record["error"] = measure_error(args, cfgs)
    if "cache" in parts:
        with tempfile.TemporaryDirectory(prefix="bench_flow_cache_", dir=args.tmp) as tmp:
            record["cache"] = measure_cache(args, cfgs["medium"], Path(tmp))
    harness.write_result(record, args)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
