#!/usr/bin/env python
"""Fine-tuning under ``torchrun`` with 2 ranks vs one process: step time and weight difference.

Both runs are the production command (``python -m stabbench finetune`` and ``python -m
torch.distributed.run --standalone --nproc-per-node 2 -m stabbench finetune``) with the same
arguments, so the same global batch: the real DAVIS-2016 sample read in place
(``../shared/data/davis-sample``; labelled images = the first ``--frames-per-sequence``
annotated frames of the 7 sequences, videos = the 7 frame folders, ``--pairs-per-video`` pairs
each), ``arch:tiny_unet`` (seed 0), Coherent Loss with the paper's settings (SGD lr 1e-4,
momentum 0.9), a global batch of ``--batch-labeled`` images + ``--batch-pairs`` pairs, ``--steps``
steps, one torch thread per process (``OMP_NUM_THREADS=1``: 2 ranks use 2 cores, one process 1).
One flow cache serves every run (filled in the warm-up round), so no run computes flow.

Per round, each command runs once (interleaved, rotated); its sample is the median of the
``step_time_s`` column its ``train_log.csv`` records (steps 2.., the first step holds one-off
costs), which excludes start-up, data loading and export. The whole-command wall time is
recorded too. After the rounds: the largest absolute difference between the two runs' final
``state_dict.pt`` (parameters; every floating-point tensor, BatchNorm running statistics
included; and relative to each tensor's largest value) and, for scale, the largest change of a
parameter from its initial value.

    .venv/bin/python benchmarks/bench_finetune_ddp.py                 # 128x224, 2 rounds
    .venv/bin/python benchmarks/bench_finetune_ddp.py --quick
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def finetune_args(args, out: Path, cache: Path) -> list[str]:
    videos = sorted(str(p) for p in (args.root / "JPEGImages" / "480p").iterdir() if p.is_dir())
    return ["-m", "stabbench", "finetune", "--model", "arch:tiny_unet", "--dataset", "davis", "--root", str(args.root),
            "--frames-per-sequence", str(args.frames_per_sequence), "--input-size", args.size,
            "--batch-labeled", str(args.batch_labeled), "--batch-pairs", str(args.batch_pairs),
            "--pairs-per-video", str(args.pairs_per_video), "--max-steps", str(args.steps), "--flow-cache", str(cache),
            "--out", str(out), "--overwrite", "-q", *[a for v in videos for a in ("--videos", v)]]


def run_command(prefix: list[str], args, out: Path, cache: Path, walls: list[float]) -> float:
    """Run one finetune command; returns the median step time (steps 2..) from its train_log.csv."""
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *prefix, *finetune_args(args, out, cache)], env=env, capture_output=True,
                          text=True)
    walls.append(time.perf_counter() - t0)
    if done.returncode != 0:
        raise SystemExit(f"finetune failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(out / "train_log.csv", newline="") as fh:
        steps = [float(row["step_time_s"]) for row in csv.DictReader(fh)]
    return statistics.median(steps[1:] or steps)


def weight_difference(one: Path, two: Path) -> dict:
    import torch

    from stabbench.predictors import load_trainable

    a = torch.load(one / "state_dict.pt", weights_only=True)
    b = torch.load(two / "state_dict.pt", weights_only=True)
    init = load_trainable("arch:tiny_unet", len(a["head.bias"]), seed=0).module.state_dict()
    floats = [k for k in a if a[k].is_floating_point()]
    params = [k for k in floats if not k.endswith(("running_mean", "running_var"))]

    def largest(keys, of) -> tuple[float, str]:
        return max((float(of(k)), k) for k in keys)

    diff = largest(floats, lambda k: (a[k].double() - b[k].double()).abs().max())
    diff_params = largest(params, lambda k: (a[k].double() - b[k].double()).abs().max())
    relative = largest(floats, lambda k: (a[k].double() - b[k].double()).abs().max() / a[k].double().abs().max())
    moved = largest(params, lambda k: (a[k].double() - init[k].double()).abs().max())
    return {"max_abs_diff": diff[0], "tensor": diff[1], "max_abs_diff_parameters": diff_params[0],
            "parameter": diff_params[1], "max_relative_diff": relative[0], "relative_tensor": relative[1],
            "max_parameter_change_from_init": moved[0], "tensors_compared": len(floats)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=harness.DEFAULT_DAVIS, help="DAVIS sample (read in place)")
    ap.add_argument("--size", default="128x224", help="training resolution HxW")
    ap.add_argument("--frames-per-sequence", type=int, default=2)
    ap.add_argument("--pairs-per-video", type=int, default=2)
    ap.add_argument("--batch-labeled", type=int, default=4)
    ap.add_argument("--batch-pairs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    harness.add_arguments(ap, rounds=2, warmup=1)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.rounds = "64x112", 3, 1
    harness.require_dir(args.root, "DAVIS sample", "pass --root")
    record = harness.new_record("finetune_ddp", args, seeds={"model_init": 0, "data": 0}, torch=True, parameters={
        "root": str(args.root), "size": args.size, "frames_per_sequence": args.frames_per_sequence,
        "pairs_per_video": args.pairs_per_video, "batch_labeled": args.batch_labeled, "batch_pairs": args.batch_pairs,
        "steps": args.steps, "model": "arch:tiny_unet", "ranks": 2, "threads_per_process": 1, "backend": "gloo"})
    walls: dict[str, list[float]] = {"1 process": [], "torchrun 2": []}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp_text:
        tmp = Path(tmp_text)
        cache, one, two = tmp / "flow-cache", tmp / "one", tmp / "two"
        timing = harness.interleaved(args.rounds, {
            "1 process": lambda: run_command([], args, one, cache, walls["1 process"]),
            "torchrun 2": lambda: run_command(TORCHRUN, args, two, cache, walls["torchrun 2"]),
        }, baseline="1 process", warmup=args.warmup)
        record["step_time"] = timing
        record["command_wall_s"] = {name: harness.summarize(values[args.warmup:]) for name, values in walls.items()}
        record["weights"] = weight_difference(one, two)
    harness.write_result(record, args)
    ratio, weights = timing["ratios"]["torchrun 2"], record["weights"]
    print(harness.header(record))
    print(harness.timing_table(timing))
    print(f"step time torchrun 2 / 1 process: {ratio['of_medians']:.2f}x; max |w_2 - w_1|: parameters "
          f"{weights['max_abs_diff_parameters']:.3g} ({weights['parameter']}), all tensors {weights['max_abs_diff']:.3g} "
          f"({weights['tensor']}), relative {weights['max_relative_diff']:.3g} ({weights['relative_tensor']}); largest "
          f"parameter change from init {weights['max_parameter_change_from_init']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
