#!/usr/bin/env python
"""Rendering a compact sequence vs reading the materialized one (issue: exact renderer).

Data: the real DAVIS-2016 sample (``../shared/data/davis-sample``, read in place), first
annotated frame of the first ``--sources`` videos, 854x480, paper protocol, 11 frames, seed
0, synthesized (untimed) once compact and once ``--materialize``.

Measured, interleaved rounds, every sequence of the set, one thread:

* ``materialized``: ``seq.frames(); seq.masks()`` of the materialized set: every PNG read,
  checked against its size and sha256, decoded (the baseline);
* ``compact``: the same calls on the compact set: every frame and mask rendered by the exact
  fixed-point renderer and checked against its pixel checksum (source PNGs decoded once per
  source, as in an evaluation).

Target: compact / materialized at most 1.0x; compact bytes at most 2 % of materialized.
Also per perturbation type (median over rounds of the summed per-sequence times).

    .venv/bin/python benchmarks/bench_render.py
    .venv/bin/python benchmarks/bench_render.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import harness
from bench_sets import folder_bytes, make_sets

from stabbench.synth import open_set


def read_all(path: str, per_type: dict | None = None) -> None:
    dataset = open_set(Path(path))
    for seq in dataset:
        t0 = time.perf_counter()
        seq.frames()
        seq.masks()
        if per_type is not None:
            per_type[seq.perturbation] = per_type.get(seq.perturbation, 0.0) + time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_arguments(ap, rounds=7)
    harness.add_davis_arguments(ap, sources=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.sources, args.rounds, args.warmup = 1, 1, 0
    root = harness.require_dir(args.davis, "the DAVIS sample")
    record = harness.new_record("render", args, seeds={"synth": args.seed}, parameters={"sources": args.sources})
    with tempfile.TemporaryDirectory() as tmp_text:
        sets = make_sets(root, Path(tmp_text), args.sources, 11, args.seed)
        sizes = {name: folder_bytes(path) for name, path in sets.items()}
        record["bytes"] = {**sizes, "compact_over_materialized": sizes["compact"] / sizes["materialized"]}
        compact, materialized = str(sets["compact"]), str(sets["materialized"])
        per_type: dict[str, dict[str, list[float]]] = {"compact": {}, "materialized": {}}

        def case(name: str, path: str):
            def run() -> None:
                times: dict[str, float] = {}
                read_all(path, times)
                for key, value in times.items():
                    per_type[name].setdefault(key, []).append(value)
            return run

        record["read"] = harness.interleaved(args.rounds, {
            "materialized": case("materialized", materialized),
            "compact": case("compact", compact),
        }, baseline="materialized", warmup=args.warmup)
        counts: dict[str, int] = {}
        for seq in open_set(Path(compact)):
            counts[seq.perturbation] = counts.get(seq.perturbation, 0) + 1
        record["per_type"] = {
            kind: {"sequences": counts[kind],
                   **{name: sorted(per_type[name][kind])[len(per_type[name][kind]) // 2] for name in per_type},
                   "ratio": sorted(per_type["compact"][kind])[len(per_type["compact"][kind]) // 2]
                   / sorted(per_type["materialized"][kind])[len(per_type["materialized"][kind]) // 2]}
            for kind in sorted(counts)}
    print(harness.header(record))
    print(harness.timing_table(record["read"]))
    print(f"bytes: compact / materialized = {100 * record['bytes']['compact_over_materialized']:.2f} %")
    for kind, row in record["per_type"].items():
        print(f"  {kind:15s} {row['sequences']:2d} seqs: compact {row['compact']:.3f} s, "
              f"materialized {row['materialized']:.3f} s, ratio {row['ratio']:.2f}x", file=sys.stderr)
    harness.write_result(record, args)


if __name__ == "__main__":
    main()
