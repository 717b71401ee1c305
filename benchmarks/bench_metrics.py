#!/usr/bin/env python
"""Cost of the metrics per frame pair at 854x480 on one core, against a memory-copy floor.

Cases (each one pass over every pair; time per pair = pass time / pairs):

* ``floor: copy inputs``: ``np.copyto`` of the pair's inputs (flow, validity, ground truth
  of t, two predictions) into buffers allocated once: one pass over the bytes any metric
  must read. The ratios are against this floor.
* ``target_indices`` and ``boundary_band`` (:mod:`stabbench.metrics.functional`), and
  ``pair_geometry`` (both: done once per pair, shared by every model on it);
* ``pair_counts`` (the per-prediction part: S_global and S_boundary counts);
* the same two as the eval runner calls them, with frame ``t+1``'s ground truth: the
  ground-truth agreement rule in ``pair_geometry``, and in ``pair_counts`` the two
  diagnostic counts of the band before that rule (``S_boundary_no_gt_rule``);
* ``confusion_matrix`` (one frame);
* ``total``: what a runner pays per pair for one model, through the classes:
  ``StabilityMeter.update`` (geometry + counts) + one ``ConfusionMeter.update``.

Data: ground-truth flow and validity from ``perturbations.make_trajectory`` (rotation and
translation, severity 3, 11 frames, seeded) + ``pair_correspondence``; ground truth = the
first DAVIS-2016 mask of each sample sequence ({0,255} -> {0,1}) warped by
``perturbations.warp_label`` (without the sample: one synthetic ellipse, recorded in the
result); predictions = the ground truth (ignore -> 0) with its edge jittered by a random 3x3
erosion or dilation and 0.1 % random flips. One thread (``cv2.setNumThreads(1)``,
``OPENBLAS/OMP/MKL_NUM_THREADS=1``). Target: ``total`` at most 3 ms per pair (reported,
never asserted).

    .venv/bin/python benchmarks/bench_metrics.py            # full: 7 masks x 2 perturbations = 140 pairs
    .venv/bin/python benchmarks/bench_metrics.py --quick    # smoke run
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402

import perturbations as P  # noqa: E402
from stabbench.metrics import ConfusionMeter, StabilityMeter, confusion_matrix, pair_counts, pair_geometry  # noqa: E402
from stabbench.metrics.functional import boundary_band, target_indices  # noqa: E402

HEIGHT, WIDTH = 480, 854
TARGET_MS = 3.0
FLOOR = "floor: copy inputs"


def source_masks(davis: Path, limit: int | None) -> tuple[list[np.ndarray], str]:
    """First DAVIS-2016 mask of each sample sequence as {0, 1}; else one synthetic ellipse."""
    root = davis / "Annotations" / "480p"
    masks = []
    for path in sorted(root.glob("*/00000.png")) if root.is_dir() else []:
        raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if raw is not None and raw.shape == (HEIGHT, WIDTH):
            masks.append((raw > 127).astype(np.uint8))
    masks = masks[:limit] if limit else masks
    if masks:
        return masks, f"DAVIS-2016 sample ({len(masks)} first-frame masks)"
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


def make_pairs(masks: list[np.ndarray], perturbations: list[str], seed: int, num_frames: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i, source in enumerate(masks):
        for name in perturbations:
            traj = P.make_trajectory(name, 3, rng, HEIGHT, WIDTH, num_frames)
            gts = [P.warp_label(source, a) for a in traj.affines]
            preds = [jitter(g, rng) for g in gts]
            for t in range(traj.num_frames - 1):
                flow, valid = P.pair_correspondence(traj, t)
                pairs.append({"seq": f"{i}-{name}", "t": t, "flow": flow, "valid": valid, "gt": gts[t],
                              "gt1": gts[t + 1], "p0": preds[t], "p1": preds[t + 1]})
    for p in pairs:
        p["geom"] = pair_geometry(p["flow"], p["valid"], p["gt"])
        p["geom_rule"] = pair_geometry(p["flow"], p["valid"], p["gt"], gt_t1=p["gt1"])
    return pairs


def make_cases(pairs: list[dict]) -> dict:
    keys = ("flow", "valid", "gt", "p0", "p1")
    buffers = {k: np.empty_like(pairs[0][k]) for k in keys}

    def each(fn):
        def case():
            for p in pairs:
                fn(p)
        return case

    def floor():
        for p in pairs:
            for k in keys:
                np.copyto(buffers[k], p[k])

    def total():
        stab, conf = StabilityMeter(), ConfusionMeter(2)
        for p in pairs:
            stab.update(p["seq"], p["t"], p["p0"], p["p1"], p["flow"], p["valid"], p["gt"])
            conf.update(p["seq"], p["p1"], p["gt1"])

    return {
        FLOOR: floor,
        "target_indices": each(lambda p: target_indices(p["flow"], p["valid"])),
        "boundary_band": each(lambda p: boundary_band(p["gt"])),
        "pair_geometry": each(lambda p: pair_geometry(p["flow"], p["valid"], p["gt"])),
        "pair_counts": each(lambda p: pair_counts(p["p0"], p["p1"], p["geom"])),
        "pair_geometry + GT rule": each(lambda p: pair_geometry(p["flow"], p["valid"], p["gt"], gt_t1=p["gt1"])),
        "pair_counts + GT-rule diagnostics": each(lambda p: pair_counts(p["p0"], p["p1"], p["geom_rule"])),
        "confusion_matrix": each(lambda p: confusion_matrix(p["p1"], p["gt1"], 2)),
        "total (StabilityMeter + ConfusionMeter update)": total,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis", type=Path, default=harness.DEFAULT_DAVIS, help="DAVIS sample root (fallback: ellipse)")
    parser.add_argument("--seed", type=int, default=0)
    harness.add_arguments(parser, rounds=10)
    args = parser.parse_args(argv)
    masks_limit, perts, num_frames = (None, ["rotation", "translation"], 11)
    if args.quick:
        masks_limit, perts, num_frames = 1, ["rotation"], 5
        args.rounds = min(args.rounds, 3)

    cv2.setNumThreads(1)
    masks, data = source_masks(args.davis, masks_limit)
    pairs = make_pairs(masks, perts, args.seed, num_frames)
    record = harness.new_record("metrics", args, seeds={"data": args.seed}, parameters={
        "size": [HEIGHT, WIDTH], "pairs": len(pairs), "perturbations": perts, "severity": 3, "num_frames": num_frames,
        "data": data, "davis": str(args.davis), "cv2_threads": cv2.getNumThreads(), "target_ms_per_pair": TARGET_MS})
    print(f"# bench_metrics: {len(pairs)} pairs, {data}", file=sys.stderr)
    timing = harness.interleaved(args.rounds, make_cases(pairs), baseline=FLOOR, warmup=args.warmup)
    n = len(pairs)
    per_pair = {name: {"median_ms": 1e3 * s["median"] / n, "q1_ms": 1e3 * s["q1"] / n, "q3_ms": 1e3 * s["q3"] / n}
                for name, s in timing["cases"].items()}
    total_ms = per_pair["total (StabilityMeter + ConfusionMeter update)"]["median_ms"]
    record.update(timing=timing, per_pair_ms=per_pair,
                  target={"ms_per_pair": TARGET_MS, "total_ms_per_pair": total_ms, "met": total_ms <= TARGET_MS})
    harness.write_result(record, args)

    print(harness.header(record) + "\n")
    print(harness.timing_table(timing, per=n, per_label="pair"))
    print(f"\ntotal per pair (one model): {total_ms:.2f} ms; target <= {TARGET_MS} ms: "
          f"{'met' if total_ms <= TARGET_MS else 'NOT met'} (reported, not asserted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
