#!/usr/bin/env python
"""Compact vs materialized sets, checksum verification, and parallel evaluation.

Data: the real DAVIS-2016 sample (``../shared/data/davis-sample``, read in place): the first
annotated frame of the first ``--sources`` sequences, 854x480, paper protocol, 11 frames,
seed 0, synthesized (untimed, into the temp dir) once compact and once ``--materialize``.

Measured, in one run:

* **bytes**: the set folders, compact / materialized (same command). Target: at most 2 %.
* **eval time**, interleaved rounds, ``evaluate(builtin:constant)`` (a trivial predictor: the
  harness's own cost), one process (``workers=0``, read-ahead thread on):

  - ``materialized``: PNG read + decode, each file checked against its size and sha256;
  - ``materialized, unverified``: the same with the sha256 check switched off (the cost of
    the verification is the ratio of the two; target at most 1.10x);
  - ``compact``: rendered on demand, every frame checked against its pixel checksum
    (target: at most 0.6x the materialized time).

* **stages**: a serial evaluation's time per stage (load, predict, score), from which the best
  speed-up any split over processes can reach follows: ``--workers 0`` already overlaps the
  load with predicting and scoring (read-ahead thread), so on C cores ``--workers N`` can at
  most gain ``max(load, predict + score) / ((load + predict + score) / C)``.
* **workers**: ``evaluate(..., workers=2)`` / ``workers=0`` on the compact set, wall time of
  whole evaluations (worker start-up included). Target: at least 1.8x throughput on 2 cores.
* **workers, steady state**: sequences per second from the first to the last sequence scored
  (the workers' start-up, paid once per evaluation, left out), ``--workers 2`` / ``0``.
* **torchrun**: ``torchrun --nproc-per-node 2 -m stabbench eval`` / ``python -m stabbench eval``
  (``--workers 0``), whole commands (interpreter and torch start-up included).
* **memory**: peak RSS of a whole evaluation (one process), compact and materialized; with
  ``workers=2``, the peak of the main process (each worker holds at most two sequences).

    .venv/bin/python benchmarks/bench_sets.py
    .venv/bin/python benchmarks/bench_sets.py --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

import stabbench.synth.manifest as manifest_module
from stabbench.datasets import list_sources
from stabbench.evaluation import evaluate
from stabbench.predictors.oracles import ConstantPredictor
from stabbench.synth import open_set
from stabbench.synth.writer import SynthConfig, synthesize


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def make_sets(root: Path, tmp: Path, sources: int, frames: int, seed: int, protocol: str = "paper",
              materialized: bool = True) -> dict[str, Path]:
    listing = list_sources("davis", root, objects="merge", frames_per_sequence=1)
    listing = listing.__class__(listing.name, listing.sources[:sources], listing.classes, listing.options)
    out = {}
    for name, materialize in (("compact", False), ("materialized", True))[: 2 if materialized else 1]:
        out[name] = tmp / name
        synthesize(listing, SynthConfig("davis", str(root), listing.options, protocol, frames, seed,
                                        materialize=materialize), out[name])
    return out


def eval_once(path: str, workers: int = 0) -> None:
    evaluate(ConstantPredictor(), open_set(Path(path)), workers=workers)


def eval_shard(path: str, workers: int, parts: int) -> int:
    """Evaluate shard 0 of ``parts`` (every ``parts``-th sequence); returns how many."""
    evaluate(ConstantPredictor(), open_set(Path(path)), workers=workers, shard=(0, parts))
    return len(range(0, len(open_set(Path(path))), parts))


class Unverified:
    """``read_member`` without the sha256 (only the size): the cost of verification by difference."""

    def __enter__(self):
        self.real = manifest_module.read_member

        def read(path, size, sha256):
            with open(path, "rb") as handle:
                return handle.read(size + 1)

        manifest_module.read_member = read
        import stabbench.synth.reader as reader

        reader.read_member = read
        return self

    def __exit__(self, *exc):
        import stabbench.synth.reader as reader

        manifest_module.read_member = self.real
        reader.read_member = self.real


def steady_rate(path: str, workers: int) -> float:
    """Sequences per second between the first and the last scored sequence of one evaluation:
    the throughput once the workers run (their start-up, paid once per evaluation, left out)."""
    stamps: list[float] = []
    evaluate(ConstantPredictor(), open_set(Path(path)), workers=workers,
             progress=lambda done, total: stamps.append(time.perf_counter()))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def stage_times(path: str) -> dict:
    """Seconds per stage of a serial evaluation, summed over the set, one thread, no read-ahead:
    load (render or read, checked), predict (the trivial predictor and the output checks),
    score (the metric counts). Their sum divided by the cores is a floor on the wall time of
    any split of the work over processes; the bound on ``--workers`` speed-up follows."""
    from stabbench.evaluation.sequence import accumulate_sequence, predict_checked
    from stabbench.evaluation.state import EvalState
    from stabbench.metrics import ConfusionMeter, StabilityMeter

    dataset = open_set(Path(path))
    state = EvalState(StabilityMeter(), ConfusionMeter(num_classes=len(dataset.classes)))
    totals = {"load": 0.0, "predict": 0.0, "score": 0.0}
    predictor = ConstantPredictor()
    for i in range(len(dataset)):
        t0 = time.perf_counter()
        seq = dataset[i]
        frames, masks = seq.frames(), seq.masks()
        t1 = time.perf_counter()
        labels = predict_checked(predictor, seq, frames, state, None, None, False, len(dataset.classes))
        t2 = time.perf_counter()
        accumulate_sequence(state, seq, labels, masks)
        t3 = time.perf_counter()
        totals["load"] += t1 - t0
        totals["predict"] += t2 - t1
        totals["score"] += t3 - t2
    return totals


def unverified_eval(path: str) -> float:
    with Unverified():
        t0 = time.perf_counter()
        eval_once(path)
        return time.perf_counter() - t0


def command(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_arguments(ap, rounds=5)
    harness.add_davis_arguments(ap, sources=4)
    ap.add_argument("--frames", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.sources, args.rounds, args.warmup, args.frames = 1, 1, 0, 4
    root = harness.require_dir(args.davis, "the DAVIS sample")
    record = harness.new_record("sets", args, seeds={"synth": args.seed},
                                parameters={"sources": args.sources, "frames": args.frames})
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        sets = make_sets(root, tmp, args.sources, args.frames, args.seed)
        sizes = {name: folder_bytes(path) for name, path in sets.items()}
        record["bytes"] = {**sizes, "compact_over_materialized": sizes["compact"] / sizes["materialized"]}
        print(f"bytes: compact {sizes['compact']:,}, materialized {sizes['materialized']:,} "
              f"({100 * record['bytes']['compact_over_materialized']:.2f} %)", file=sys.stderr)

        compact, materialized = str(sets["compact"]), str(sets["materialized"])
        record["eval"] = harness.interleaved(args.rounds, {
            "materialized": lambda: eval_once(materialized),
            "materialized, unverified": lambda: unverified_eval(materialized),
            "compact": lambda: eval_once(compact),
        }, baseline="materialized", warmup=args.warmup)
        print(harness.timing_table(record["eval"]))

        stages = [stage_times(compact) for _ in range(max(1, args.rounds))]
        stage = {k: sorted(run[k] for run in stages)[len(stages) // 2] for k in stages[0]}
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        total = sum(stage.values())
        serial_floor = max(stage["load"], stage["predict"] + stage["score"])  # workers 0 overlaps the load
        record["stages"] = {"seconds_median": stage, "total": total, "cores": cores,
                            "floor_any_split": total / cores, "floor_workers_0": serial_floor,
                            "max_speedup_over_workers_0": serial_floor and serial_floor / (total / cores)}
        print("stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stage.items())
              + f"; best possible --workers speed-up over --workers 0 on {cores} cores: "
              f"{record['stages']['max_speedup_over_workers_0']:.2f}x", file=sys.stderr)

        record["workers"] = harness.interleaved(args.rounds, {
            "workers 0": lambda: eval_once(compact, 0),
            "workers 2": lambda: eval_once(compact, 2),
        }, baseline="workers 0", warmup=args.warmup)
        print(harness.timing_table(record["workers"]))
        rates = {w: [] for w in (0, 2)}
        for _ in range(max(1, args.rounds)):
            for w in rates:
                rates[w].append(steady_rate(compact, w))
        medians = {w: sorted(v)[len(v) // 2] for w, v in rates.items()}
        record["workers_steady"] = {"sequences_per_s": {f"workers {w}": v for w, v in rates.items()},
                                    "ratio_of_medians": medians[2] / medians[0]}
        print(f"steady-state throughput (first to last sequence scored): workers 0 {medians[0]:.2f}/s, "
              f"workers 2 {medians[2]:.2f}/s: {medians[2] / medians[0]:.2f}x", file=sys.stderr)

        python = sys.executable
        base = ["-m", "stabbench", "eval", "--model", "builtin:constant", "--set", compact, "--no-leaderboard",
                "--no-plot", "-q", "--workers", "0", "--overwrite"]
        record["torchrun"] = harness.interleaved(args.rounds, {
            "1 process": lambda: command([python, *base, "--out", str(tmp / "one")], tmp),
            "torchrun 2": lambda: command([python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                                           *base, "--out", str(tmp / "two")], tmp),
        }, baseline="1 process", warmup=args.warmup)
        print(harness.timing_table(record["torchrun"]))

        memory = {f"{name}, workers 0": harness.peak_memory(eval_once, str(path)) for name, path in sets.items()}
        memory["compact, workers 2 (main process)"] = harness.peak_memory(eval_once, compact, 2)
        # per worker, against the number of sequences: the first sixth of the set, then all of it
        for parts in (6, 1):
            memory[f"compact, workers 2, 1/{parts} of the sequences"] = harness.peak_memory(eval_shard, compact, 2, parts)
        record["memory"] = memory
        for name, value in memory.items():
            print(f"peak RSS {name}: {value.get('peak_rss_kib', 0) / 1024:.1f} MiB"
                  f" (largest worker <= {value.get('children_max_rss_kib', 0) / 1024:.1f} MiB)", file=sys.stderr)
    harness.write_result(record, args)


if __name__ == "__main__":
    main()
