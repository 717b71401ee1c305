#!/usr/bin/env python
"""Optical flow (DIS) for the correspondences: error against known flow, speed, cache.

What it measures:

(a) **Flow error** of each configuration (DIS presets ``ultrafast``, ``fast``, ``medium``
    at full resolution, and ``medium`` at a working resolution of ``--max-side`` px) against
    the synthesizer's exact flow. Data: the first annotated frame of each sequence of the
    real DAVIS sample (854x480), perturbed with ``perturbations.make_trajectory`` (every
    perturbation, severities ``--severities``, ``--num-frames`` frames, seeded; occluders
    pass the labelled object's centroid, as in ``stabbench synth``) and rendered with
    ``render_sequence`` (minute noise included). For each of ``--pairs`` pairs per sequence
    (equally spaced) the forward flow is compared with ``pair_correspondence``'s flow on
    the pixels it marks valid (``gt-valid``). Reported per perturbation: end-point error
    (EPE = |f_DIS - f_true|) mean, median (from a 0.001 px histogram) and the fraction
    > 1 px; the forward-backward check's keep rate on gt-valid pixels (``valid_fw``:
    consistent and in frame) and the mean EPE of the kept and of the rejected pixels; and
    the share of gt-invalid pixels (no true correspondence: occluded, uncovered border,
    leaving the frame) the check rejects.
(b) **Time** of one 854x480 pair, both directions + the check (``bidirectional_flow``),
    on one core (``cv2.setNumThreads(1)``), per configuration: ``--repeats`` timed calls
    after 2 warm-ups on a real DAVIS pair (blackswan frames 0, 1); median and min, and the
    split forward flow / backward flow / validity.
(c) **Cache**: ``FlowCache`` over ``--cache-pairs`` real DAVIS video pairs
    (``list_videos`` on ``JPEGImages/480p`` + ``sample_pair_refs``, equal intervals), two
    epochs in a fresh temporary folder (``medium``), once with the default zlib level 1
    and once stored (level 0): hit rate of each epoch, time of a miss (DIS + check + encode
    + atomic write + decode) and of a cached fetch (sha256 key + read + decode; frames
    already decoded), bytes per pair on disk; and the check's keep rate on these real
    pairs (no ground truth there). Default OpenCV threads (timings of (c) are not
    single-threaded).

Run from the repository root (the DAVIS sample is read in place, never copied)::

    .venv/bin/python benchmarks/bench_flow.py

Results go to ``benchmarks/out/flow-<time>.json`` and stdout (markdown).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks._common import REPO, DEFAULT_DAVIS, OUT_DIR, machine  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import perturbations as P  # noqa: E402
from stabbench import __version__  # noqa: E402
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
    return {
        "ultrafast": FlowParams("ultrafast"),
        "fast": FlowParams("fast"),
        "medium": FlowParams("medium"),
        f"medium@{max_side}": FlowParams("medium", max_side=max_side),
    }


# --------------------------------------------------------------------------- (a) error


class ErrorStats:
    """Accumulates the error statistics of one (configuration, perturbation)."""

    def __init__(self):
        self.hist = np.zeros(int(HIST_MAX / HIST_STEP) + 1, np.int64)
        self.n = self.over1 = self.kept = self.invalid = self.invalid_rejected = 0
        self.sum = self.sum_kept = self.sum_rejected = 0.0
        self.pairs = 0

    def add(self, epe: np.ndarray, gt_valid: np.ndarray, kept: np.ndarray) -> None:
        e = epe[gt_valid]
        k = kept[gt_valid]
        self.pairs += 1
        self.n += e.size
        self.sum += float(e.sum(dtype=np.float64))
        self.over1 += int(np.count_nonzero(e > 1.0))
        self.kept += int(np.count_nonzero(k))
        self.sum_kept += float(e[k].sum(dtype=np.float64))
        self.sum_rejected += float(e[~k].sum(dtype=np.float64))
        bins = np.minimum((e / HIST_STEP).astype(np.int64), self.hist.size - 1)
        self.hist += np.bincount(bins, minlength=self.hist.size)
        self.invalid += int(np.count_nonzero(~gt_valid))
        self.invalid_rejected += int(np.count_nonzero(~gt_valid & ~kept))

    def median(self) -> float:
        cum = np.cumsum(self.hist)
        return float((np.searchsorted(cum, (self.n + 1) / 2) + 0.5) * HIST_STEP)

    def merge(self, other: "ErrorStats") -> None:
        self.hist += other.hist
        for name in ("n", "over1", "kept", "invalid", "invalid_rejected", "pairs", "sum", "sum_kept", "sum_rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict:
        rejected = self.n - self.kept
        return {
            "pairs": self.pairs,
            "gt_valid_pixels": self.n,
            "epe_mean": self.sum / self.n,
            "epe_median": self.median(),
            "frac_epe_over_1px": self.over1 / self.n,
            "keep_rate": self.kept / self.n,
            "epe_mean_kept": self.sum_kept / self.kept if self.kept else None,
            "epe_mean_rejected": self.sum_rejected / rejected if rejected else None,
            "gt_invalid_pixels": self.invalid,
            "gt_invalid_rejected": self.invalid_rejected / self.invalid if self.invalid else None,
        }


def measure_error(args, cfgs: dict[str, FlowParams]) -> dict:
    listing = list_sources("davis", str(args.davis_root))
    sources = listing.sources[: args.sources] if args.sources else listing.sources
    stats = {c: {p: ErrorStats() for p in P.PERTURBATION_NAMES} for c in cfgs}
    times = {c: 0.0 for c in cfgs}
    started = time.perf_counter()
    for si, src in enumerate(sources):
        sample = src.load()
        height, width = sample.label.shape
        for pi, name in enumerate(P.PERTURBATION_NAMES):
            for severity in args.severities:
                rng = np.random.default_rng([args.seed, si, pi, severity])
                traj = P.make_trajectory(name, severity, rng, height, width, args.num_frames, focus=label_focus(sample.label))
                frames = [f for f, _ in P.render_sequence(sample.image, sample.label, traj, rng)]
                for t, _ in sample_pairs(len(frames), args.pairs):
                    gt, gt_valid = P.pair_correspondence(traj, t)
                    for c, params in cfgs.items():
                        t0 = time.perf_counter()
                        pf = bidirectional_flow(frames[t], frames[t + 1], params)
                        times[c] += time.perf_counter() - t0
                        epe = np.sqrt(((pf.flow_fw - gt) ** 2).sum(axis=2))
                        stats[c][name].add(epe, gt_valid, pf.valid_fw)
        print(f"  (a) source {si + 1}/{len(sources)} {src.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out = {}
    for c in cfgs:
        total = ErrorStats()
        rows = {}
        for name in P.PERTURBATION_NAMES:
            rows[name] = stats[c][name].summary()
            total.merge(stats[c][name])
        rows["all"] = total.summary()
        out[c] = {"per_perturbation": rows, "flow_time_s": times[c]}
    return {"sources": [s.name for s in sources], "results": out}


# --------------------------------------------------------------------------- (b) time


def measure_time(args, cfgs: dict[str, FlowParams]) -> dict:
    (video,) = [v for v in list_videos(Path(args.davis_root) / "JPEGImages" / "480p") if v.name == "blackswan"]
    frame_t, frame_t1 = video.read_pair(0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    out = {}
    try:
        for c, params in cfgs.items():
            for _ in range(2):
                bidirectional_flow(frame_t, frame_t1, params)
            total, fw, bw, chk = [], [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                bidirectional_flow(frame_t, frame_t1, params)
                total.append(time.perf_counter() - t0)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                f = compute_flow(frame_t, frame_t1, params)
                t1 = time.perf_counter()
                b = compute_flow(frame_t1, frame_t, params)
                t2 = time.perf_counter()
                validity(f, b, params)
                t3 = time.perf_counter()
                fw.append(t1 - t0)
                bw.append(t2 - t1)
                chk.append(t3 - t2)
            ms = lambda v: 1e3 * statistics.median(v)  # noqa: E731
            out[c] = {"total_ms_median": ms(total), "total_ms_min": 1e3 * min(total), "forward_ms": ms(fw),
                      "backward_ms": ms(bw), "validity_ms": ms(chk), "repeats": args.repeats}
            print(f"  (b) {c}: {out[c]['total_ms_median']:.1f} ms", file=sys.stderr)
    finally:
        cv2.setNumThreads(threads)
    return {"pair": f"{video.path.name} frames 0,1", "size": list(frame_t.shape[:2]), "results": out}


# --------------------------------------------------------------------------- (c) cache


def measure_cache(args, params: FlowParams) -> dict:
    videos = list_videos(Path(args.davis_root) / "JPEGImages" / "480p")
    per_video = max(1, -(-args.cache_pairs // len(videos)))
    refs = sample_pair_refs(videos, per_video)[: args.cache_pairs]
    frames = [ref.load() for ref in refs]
    load_times = []
    for ref in refs:
        t0 = time.perf_counter()
        ref.load()
        load_times.append(time.perf_counter() - t0)
    key_times = []
    for a, b in frames:
        t0 = time.perf_counter()
        cache_key(a, b, params)
        key_times.append(time.perf_counter() - t0)
    levels = {}
    keep = []
    for level in (1, 0):
        epochs = []
        with tempfile.TemporaryDirectory(prefix="bench_flow_cache_", dir=args.tmp) as tmp:
            cache = FlowCache(tmp, compress_level=level)
            for epoch in range(2):
                cache.reset_stats()
                times = []
                for a, b in frames:
                    t0 = time.perf_counter()
                    pf = cache.get_or_compute(a, b, params)
                    times.append(time.perf_counter() - t0)
                    if epoch == 0 and level == 1:
                        keep.append((float(pf.valid_fw.mean()), float(pf.valid_bw.mean())))
                epochs.append({**cache.stats(), "ms_median": 1e3 * statistics.median(times), "ms_max": 1e3 * max(times)})
                print(f"  (c) level {level} epoch {epoch + 1}: {cache.stats()}", file=sys.stderr)
            sizes = [p.stat().st_size for p in Path(tmp).rglob("*.flow")]
        levels[level] = {"epochs": epochs, "files": len(sizes), "bytes_per_pair_mean": statistics.mean(sizes)}
    return {
        "params": params.to_dict(),
        "pairs": len(refs),
        "videos": len(videos),
        "pairs_per_video": per_video,
        "levels": levels,
        "raw_float32_bytes_per_pair": int(np.prod(frames[0][0].shape[:2])) * (2 * 2 * 4 + 2),
        "key_ms_median": 1e3 * statistics.median(key_times),
        "pair_load_ms_median": 1e3 * statistics.median(load_times),
        "real_keep_rate_fw_mean": statistics.mean(k[0] for k in keep),
        "real_keep_rate_bw_mean": statistics.mean(k[1] for k in keep),
        "real_keep_rate_fw_min": min(k[0] for k in keep),
    }


# --------------------------------------------------------------------------- reporting


def fmt(v, digits=3, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    lines = []
    if "error" in result:
        err = result["error"]
        lines += [f"(a) Flow error vs the synthesizer's flow, forward direction, gt-valid pixels "
                  f"({len(err['sources'])} DAVIS sources x {len(P.PERTURBATION_NAMES)} perturbations x severities "
                  f"{result['settings']['severities']} x {result['settings']['pairs']} pairs):", ""]
        lines += ["| config | perturbation | EPE mean px | EPE median px | EPE > 1 px | check keeps (gt-valid) "
                  "| EPE kept / rejected px | gt-invalid rejected |", "|---|---|---|---|---|---|---|---|"]
        for c, data in err["results"].items():
            for name, row in data["per_perturbation"].items():
                label = f"**{name}**" if name == "all" else name
                lines.append(
                    f"| {c} | {label} | {fmt(row['epe_mean'])} | {fmt(row['epe_median'])} | {fmt(row['frac_epe_over_1px'], pct=True)} "
                    f"| {fmt(row['keep_rate'], pct=True)} | {fmt(row['epe_mean_kept'])} / {fmt(row['epe_mean_rejected'])} "
                    f"| {fmt(row['gt_invalid_rejected'], pct=True)} |")
        lines.append("")
    if "time" in result:
        tm = result["time"]
        lines += [f"(b) Time of one {tm['size'][1]}x{tm['size'][0]} pair ({tm['pair']}), both directions + check, "
                  "one thread:", "",
                  "| config | total ms (median) | min | forward | backward | check |", "|---|---|---|---|---|---|"]
        for c, row in tm["results"].items():
            lines.append(f"| {c} | **{row['total_ms_median']:.1f}** | {row['total_ms_min']:.1f} | {row['forward_ms']:.1f} "
                         f"| {row['backward_ms']:.1f} | {row['validity_ms']:.1f} |")
        lines.append("")
    if "cache" in result:
        ca = result["cache"]
        l1, l0 = ca["levels"][1], ca["levels"][0]
        lines += [f"(c) Cache, {ca['pairs']} real DAVIS pairs ({ca['videos']} videos, {ca['pairs_per_video']} per video), "
                  f"preset {ca['params']['preset']}, two epochs each in a fresh folder:", "",
                  "| measure | zlib level 1 (default) | level 0 (stored) |", "|---|---|---|",
                  f"| epoch 1 hits / misses | {l1['epochs'][0]['hits']} / {l1['epochs'][0]['misses']} "
                  f"| {l0['epochs'][0]['hits']} / {l0['epochs'][0]['misses']} |",
                  f"| **epoch 2 hit rate** | **{100 * l1['epochs'][1]['hit_rate']:.0f} %** "
                  f"| **{100 * l0['epochs'][1]['hit_rate']:.0f} %** |",
                  f"| miss (DIS both ways + check + encode + write + decode), median | {l1['epochs'][0]['ms_median']:.1f} ms "
                  f"| {l0['epochs'][0]['ms_median']:.1f} ms |",
                  f"| **cached fetch** (key + read + decode), median / max | **{l1['epochs'][1]['ms_median']:.1f} ms** / "
                  f"{l1['epochs'][1]['ms_max']:.1f} ms | **{l0['epochs'][1]['ms_median']:.1f} ms** / {l0['epochs'][1]['ms_max']:.1f} ms |",
                  f"| bytes per pair on disk | {l1['bytes_per_pair_mean'] / 1e6:.2f} MB | {l0['bytes_per_pair_mean'] / 1e6:.2f} MB |",
                  "",
                  f"Raw float32 flows + bool masks would be {ca['raw_float32_bytes_per_pair'] / 1e6:.2f} MB per pair. "
                  f"The sha256 key of the two frames takes {ca['key_ms_median']:.2f} ms; reading the two JPEG frames "
                  f"{ca['pair_load_ms_median']:.1f} ms. Check keep rate on these real pairs: forward mean "
                  f"{fmt(ca['real_keep_rate_fw_mean'], pct=True)} (min {fmt(ca['real_keep_rate_fw_min'], pct=True)}), "
                  f"backward mean {fmt(ca['real_keep_rate_bw_mean'], pct=True)}."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--davis-root", default=str(DEFAULT_DAVIS), help="DAVIS sample (read in place, never copied)")
    p.add_argument("--severities", type=lambda s: [int(v) for v in s.split(",")], default=[1, 3, 6])
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--pairs", type=int, default=5, help="(a) pairs per synthetic sequence, equally spaced")
    p.add_argument("--sources", type=int, default=0, help="(a) DAVIS sources used (0: all)")
    p.add_argument("--max-side", type=int, default=427, help="working resolution of the extra medium config")
    p.add_argument("--repeats", type=int, default=20, help="(b) timed calls per config")
    p.add_argument("--cache-pairs", type=int, default=35, help="(c) pairs in the cache epochs")
    p.add_argument("--parts", default="error,time,cache", help="comma-separated subset of error,time,cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="where the temporary cache is written")
    p.add_argument("--no-save", action="store_true", help="do not write the JSON result to benchmarks/out/")
    args = p.parse_args(argv)
    if not Path(args.davis_root).is_dir():
        sys.exit(f"DAVIS sample not found at {args.davis_root}; pass --davis-root")
    parts = set(args.parts.split(","))
    cfgs = configs(args.max_side)
    result = {
        "benchmark": "flow",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "stabbench": __version__,
        "machine": {**machine(), "numpy": np.__version__, "opencv": cv2.__version__},
        "settings": {"severities": args.severities, "num_frames": args.num_frames, "pairs": args.pairs,
                     "seed": args.seed, "configs": {c: v.to_dict() for c, v in cfgs.items()},
                     "cv2_threads_default": cv2.getNumThreads()},
    }
    started = time.perf_counter()
    if "time" in parts:  # first, on a quiet process
        result["time"] = measure_time(args, cfgs)
    if "error" in parts:
        result["error"] = measure_error(args, cfgs)
    if "cache" in parts:
        result["cache"] = measure_cache(args, cfgs["medium"])
    result["wall_s"] = time.perf_counter() - started
    text = markdown(result)
    print(text)
    if not args.no_save:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        path = OUT_DIR / f"flow-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=1))
        print(f"\n(result: {path.relative_to(REPO)}, {result['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
