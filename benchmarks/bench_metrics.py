#!/usr/bin/env python
"""Cost of the metrics per frame pair at 854x480 on one core: S_global, S_boundary, confusion.

What it measures, per pair ``(t, t+1)`` of real-looking data:

* ``geometry``: :func:`stabbench.metrics.pair_geometry` = ``target_indices`` (nearest
  target pixel of every pixel, from the flow) + ``boundary_band`` (15 px band of frame
  ``t``'s ground truth). Done once per pair, shared by every model evaluated on it.
* ``counts``: :func:`stabbench.metrics.pair_counts` = the per-prediction part (gather,
  compare, count for S_global and S_boundary).
* ``confusion``: :func:`stabbench.metrics.confusion_matrix` of one frame.
* ``total``: what a runner pays per pair for one model, timed end to end through the
  classes: ``StabilityMeter.update`` (geometry + counts) + one ``ConfusionMeter.update``
  (a sequence of N frames has N-1 pairs and N confusion updates, so this is within 10%).

Data: ground-truth flow and validity from ``perturbations.make_trajectory`` (rotation and
translation, severity 3, 11 frames, seeded) + ``pair_correspondence``; ground truth = a
real DAVIS-2016 mask (first frame of each sample sequence, {0,255} -> {0,1}; fallback: a
synthetic ellipse) warped by ``perturbations.warp_label``; predictions = the ground truth
(ignore -> 0) with its edge jittered by a random 3x3 erosion or dilation and 0.1% random
flips, so predictions differ between frames as a real model's would.

Method: one thread (``cv2.setNumThreads(1)``; ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``
= 1 before NumPy loads, although the element-wise NumPy code used is single-threaded
anyway); one warm-up pass over every pair, then ``--repeats`` timed passes; each timing is
one call measured with ``time.perf_counter``. Reported: the median and p90 over all
pairs x repeats, and the median over pairs of each pair's fastest repeat ("min-median",
less sensitive to other processes on a shared machine). The pass/fail check (exit code 1
if over) uses the plain median of ``total``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_metrics.py

Results go to ``benchmarks/out/metrics-<time>.json`` and stdout (markdown).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DAVIS = REPO.parent / "shared" / "data" / "davis-sample"
OUT_DIR = REPO / "benchmarks" / "out"
HEIGHT, WIDTH = 480, 854
TARGET_MS = 3.0

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import perturbations as P  # noqa: E402
from stabbench import __version__  # noqa: E402
from stabbench.metrics import ConfusionMeter, StabilityMeter, confusion_matrix, pair_counts, pair_geometry  # noqa: E402
from stabbench.metrics.functional import boundary_band, target_indices  # noqa: E402


def source_masks(davis: Path) -> tuple[list[np.ndarray], str]:
    """First DAVIS-2016 mask of each sample sequence as {0, 1}; else one synthetic ellipse."""
    root = davis / "Annotations" / "480p"
    masks = []
    for path in sorted(root.glob("*/00000.png")) if root.is_dir() else []:
        raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if raw is not None and raw.shape == (HEIGHT, WIDTH):
            masks.append((raw > 127).astype(np.uint8))
    if masks:
        return masks, f"DAVIS-2016 sample ({len(masks)} first-frame masks) at {davis}"
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(mask, (WIDTH // 2, HEIGHT // 2), (200, 130), 20, 0, 360, 1, -1)
    return [mask], "synthetic ellipse (DAVIS sample not found)"


def jitter(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction: edge moved by one pixel (erode or dilate) and rare flips."""
    pred = np.where(label == 255, 0, label).astype(np.uint8)
    op = (cv2.erode, cv2.dilate)[rng.integers(2)]
    pred = op(pred, np.ones((3, 3), np.uint8))
    pred[rng.random(pred.shape) < 0.001] ^= 1
    return pred


def make_pairs(masks: list[np.ndarray], perturbations: list[str], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i, source in enumerate(masks):
        for name in perturbations:
            traj = P.make_trajectory(name, 3, rng, HEIGHT, WIDTH, 11)
            gts = [P.warp_label(source, a) for a in traj.affines]
            preds = [jitter(g, rng) for g in gts]
            for t in range(traj.num_frames - 1):
                flow, valid = P.pair_correspondence(traj, t)
                pairs.append(
                    {
                        "seq": f"{i}-{name}",
                        "t": t,
                        "flow": flow,
                        "valid": valid,
                        "gt": gts[t],
                        "gt1": gts[t + 1],
                        "p0": preds[t],
                        "p1": preds[t + 1],
                    }
                )
    return pairs


def timed(fn, *args) -> float:
    """Milliseconds of one call ``fn(*args)``."""
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e3


def runner_step(stab: StabilityMeter, conf: ConfusionMeter, p: dict) -> None:
    """What a runner does per pair for one model: one stability and one confusion update."""
    stab.update(p["seq"], p["t"], p["p0"], p["p1"], p["flow"], p["valid"], p["gt"])
    conf.update(p["seq"], p["p1"], p["gt1"])


def run(pairs: list[dict], repeats: int) -> dict[str, np.ndarray]:
    """``{part: (repeats, pairs) ms}``."""
    cases = {
        "target_indices": lambda p: target_indices(p["flow"], p["valid"]),
        "boundary_band": lambda p: boundary_band(p["gt"]),
        "geometry": lambda p: pair_geometry(p["flow"], p["valid"], p["gt"]),
        "counts": lambda p: pair_counts(p["p0"], p["p1"], p["geom"]),
        "confusion": lambda p: confusion_matrix(p["p1"], p["gt1"], 2),
    }
    for p in pairs:
        p["geom"] = pair_geometry(p["flow"], p["valid"], p["gt"])
    times: dict[str, list[float]] = {name: [] for name in [*cases, "total"]}
    for rep in range(repeats + 1):  # pass 0 is the warm-up
        stab, conf = StabilityMeter(), ConfusionMeter(2)
        gc.collect()
        gc.disable()
        try:
            for p in pairs:
                for name, fn in cases.items():
                    ms = timed(fn, p)
                    if rep:
                        times[name].append(ms)
                ms = timed(runner_step, stab, conf, p)
                if rep:
                    times["total"].append(ms)
        finally:
            gc.enable()
    result = stab.compute()
    print(
        f"(sanity: S_global {result['S_global']:.2f}, S_boundary {result['S_boundary']:.2f}, mIoU {conf.compute()['mIoU']:.2f})",
        file=sys.stderr,
    )
    return {name: np.array(v).reshape(repeats, len(pairs)) for name, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--davis", type=Path, default=DEFAULT_DAVIS, help="DAVIS sample root (fallback: ellipse)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over all pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)
    masks, data = source_masks(args.davis)
    pairs = make_pairs(masks, ["rotation", "translation"], args.seed)
    times = run(pairs, args.repeats)
    stats = {
        name: {
            "median_ms": float(np.median(v)),
            "p90_ms": float(np.percentile(v, 90)),
            "min_median_ms": float(np.median(v.min(axis=0))),
            "n": int(v.size),
        }
        for name, v in times.items()
    }
    meta = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "stabbench": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "cv2_threads": cv2.getNumThreads(),
        "load_average": list(os.getloadavg()),
        "size": f"{WIDTH}x{HEIGHT}",
        "pairs": len(pairs),
        "repeats": args.repeats,
        "data": data,
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"metrics-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"meta": meta, "stats": stats}, indent=2) + "\n")

    print(f"Metric cost per pair, {WIDTH}x{HEIGHT}, 1 thread, {len(pairs)} pairs x {args.repeats} repeats ({data})\n")
    print("| part | median ms | p90 ms | min-median ms |")
    print("|---|---|---|---|")
    for name, s in stats.items():
        print(f"| {name} | {s['median_ms']:.3f} | {s['p90_ms']:.3f} | {s['min_median_ms']:.3f} |")
    total = stats["total"]["median_ms"]
    print(
        f"\ntotal per pair (one model): {total:.2f} ms, target <= {TARGET_MS} ms: {'OK' if total <= TARGET_MS else 'OVER'}"
    )
    print(f"results: {path}", file=sys.stderr)
    return 0 if total <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
