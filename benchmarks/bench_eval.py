#!/usr/bin/env python
"""Evaluation harness overhead (eval with a trivial predictor vs just reading the frames) and memory.

Cases, interleaved (each one pass over the whole set):

* ``read (floor)``: ``seq.frames()`` + ``seq.masks()`` of every sequence, nothing else.
  Every evaluation must do this; the ratios are against it. Target: eval at most 1.3x.
* ``read + flow``: the same plus ``seq.pairs()`` (every pair's ground-truth flow densified).
* ``read + predict``: the same as the floor plus ``predict_sequence(builtin:constant)`` (the
  predictor call and its output checks).
* ``eval, no read-ahead``: ``evaluate(ConstantPredictor(), set, prefetch=False)``: the serial
  loop, which is what the ratio is when no second core is free.
* ``eval``: ``evaluate(ConstantPredictor(), set)`` (what ``stabbench eval`` runs; the next
  sequence is read in a background thread while the current one is scored).

The predictor (every pixel background) costs nothing, so eval / floor is the harness's own
cost. The differences between the cases give the breakdown (flow densification, predictor
call, metrics) from production calls alone; ``--profile`` adds a cProfile of one serial eval.

Memory: for each ``--memory-sequences`` count (the first N sequences of the set), child
processes evaluate them after a warm-up evaluation of sequence 1: peak RSS (VmHWM) from a
run without tracemalloc; the tracemalloc peak from a run with it (both with read-ahead);
the traced memory retained after each sequence from a run without read-ahead (so that no
half-read next sequence is counted), with its least-squares slope per sequence.

Data: a set synthesized (untimed, into the temp dir) from the real DAVIS-2016 sample in
``../shared/data/davis-sample`` (read in place): first annotated frame of the first
``--sources`` sequences, 854x480, paper protocol, 11 frames, seed 0. ``--set DIR`` reuses a set.

    .venv/bin/python benchmarks/bench_eval.py
    .venv/bin/python benchmarks/bench_eval.py --quick
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import harness
import numpy as np

from stabbench.datasets import list_sources
from stabbench.evaluation import evaluate
from stabbench.predictors import predict_sequence
from stabbench.predictors.oracles import ConstantPredictor
from stabbench.synth import open_set
from stabbench.synth.writer import SynthConfig, synthesize

TARGET = 1.3
FLOOR = "read (floor)"


class FirstSequences:
    """The first ``n`` sequences of a set, as :func:`evaluate` reads a set (classes, len, [i])."""

    def __init__(self, dataset, n: int):
        if n > len(dataset):
            raise SystemExit(f"the set has {len(dataset)} sequences, asked for {n}")
        self.dataset, self.n, self.classes = dataset, n, dataset.classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]


def make_set(args, out: Path) -> Path:
    """Synthesize the benchmark set (paper protocol) from the first ``--sources`` DAVIS sequences."""
    root = harness.require_dir(args.davis_root, "DAVIS sample", "pass --davis-root, or --set with an existing set")
    listing = list_sources("davis", str(root))
    if len(listing.sources) < args.sources:
        raise SystemExit(f"davis: only {len(listing.sources)} sources, asked for {args.sources}")
    listing = replace(listing, sources=listing.sources[: args.sources])
    synthesize(listing, SynthConfig("davis", str(root), listing.options, "paper", args.num_frames, args.seed,
                                    materialize=True), out)  # the PNG read path (bench_sets.py: compact sets)
    return out


def make_cases(ds) -> dict:
    predictor = ConstantPredictor()

    def read():
        for seq in ds:
            seq.frames()
            seq.masks()

    def read_flow():
        for seq in ds:
            seq.frames()
            seq.masks()
            for _ in seq.pairs():
                pass

    def read_predict():
        for seq in ds:
            frames = seq.frames()
            seq.masks()
            predict_sequence(predictor, frames, sequence=seq)

    return {
        FLOOR: read,
        "read + flow": read_flow,
        "read + predict": read_predict,
        "eval, no read-ahead": lambda: evaluate(ConstantPredictor(), ds, prefetch=False),
        "eval": lambda: evaluate(ConstantPredictor(), ds),
    }


# --------------------------------------------------------------------------- memory (child processes)


def memory_warmup(set_path: str, cv_threads: int | None) -> None:
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    evaluate(ConstantPredictor(), FirstSequences(open_set(set_path), 1))


def memory_eval(set_path: str, n: int, prefetch: bool, traced: bool) -> dict:
    """Evaluate the first ``n`` sequences and build the results dict; with ``traced`` (the
    harness started tracemalloc), the traced memory retained after each sequence."""
    import tracemalloc

    from stabbench.report.results import build_results, set_info, to_json

    full = open_set(set_path)
    retained: list[int] = []
    progress = (lambda done, total: retained.append(tracemalloc.get_traced_memory()[0])) if traced else None
    state = evaluate(ConstantPredictor(), FirstSequences(full, n), progress=progress, prefetch=prefetch)
    text = to_json(build_results(state, {"id": "builtin:constant"}, set_info(full), 15, (0, 1)))
    slope = float(np.polyfit(np.arange(len(retained)), retained, 1)[0]) if len(retained) > 1 else None
    return {"retained_bytes": retained, "retained_slope_bytes_per_sequence": slope, "results_json_bytes": len(text)}


def run_memory(set_path: str, counts: list[int], cv_threads: int | None) -> list[dict]:
    rows = []
    warm = functools.partial(memory_warmup, set_path, cv_threads)
    for n in counts:
        plain = harness.peak_memory(memory_eval, set_path, n, True, False, warmup=warm)
        traced = harness.peak_memory(memory_eval, set_path, n, True, True, warmup=warm, trace=True)
        serial = harness.peak_memory(memory_eval, set_path, n, False, True, warmup=warm, trace=True)
        rows.append({"sequences": n, "peak_rss_kib_untraced": plain["peak_rss_kib"],
                     "rss_before_kib_untraced": plain["rss_before_kib"], "ru_maxrss_kib_untraced": plain["ru_maxrss_kib"],
                     "tracemalloc_peak_bytes": traced["tracemalloc_peak_bytes"],
                     "tracemalloc_peak_bytes_serial": serial["tracemalloc_peak_bytes"],
                     "retained_bytes_serial": serial["value"]["retained_bytes"],
                     "retained_slope_bytes_per_sequence_serial": serial["value"]["retained_slope_bytes_per_sequence"],
                     "results_json_bytes": plain["value"]["results_json_bytes"]})
        print(f"  memory, {n} sequences: peak RSS {plain['peak_rss_kib'] / 1024:.1f} MiB, "
              f"tracemalloc peak {traced['tracemalloc_peak_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- reporting


def markdown(record: dict) -> str:
    p, timing = record["parameters"], record["timing"]
    r, rf = timing["ratios"]["eval"], record["ratio_eval_to_read_flow"]
    rs = timing["ratios"]["eval, no read-ahead"]
    lines = [harness.header(record), "",
             f"set: {p['sequences']} sequences, {p['frames']} frames, {p['pairs']} pairs, {p['height']}x{p['width']} HxW; "
             f"{timing['rounds']} interleaved rounds after {timing['warmup']} warm-up; OpenCV threads {p['cv2_threads']}",
             "", harness.timing_table(timing, per=p["pairs"], per_label="pair"), "",
             f"**eval / floor: {r['of_medians']:.2f}x** (per round {r['per_round']['min']:.2f}-{r['per_round']['max']:.2f}; "
             f"target {TARGET}x); without read-ahead {rs['of_medians']:.2f}x; eval / (read + flow) {rf['of_medians']:.2f}x."]
    if record.get("memory"):
        lines += ["", "| sequences | peak RSS (VmHWM), no tracemalloc | RSS before eval | tracemalloc peak "
                  "| tracemalloc peak, no read-ahead | retained after sequence 1 / last (no read-ahead) "
                  "| growth per sequence (fit) |", "|---|---|---|---|---|---|---|"]
        for m in record["memory"]:
            kept = m["retained_bytes_serial"]
            slope = m["retained_slope_bytes_per_sequence_serial"]
            lines.append(f"| {m['sequences']} | {m['peak_rss_kib_untraced'] / 1024:.1f} MiB "
                         f"| {m['rss_before_kib_untraced'] / 1024:.1f} MiB | {m['tracemalloc_peak_bytes'] / 2**20:.2f} MiB "
                         f"| {m['tracemalloc_peak_bytes_serial'] / 2**20:.2f} MiB "
                         f"| {kept[0] / 2**20:.3f} / {kept[-1] / 2**20:.3f} MiB "
                         f"| {'-' if slope is None else f'{slope / 1e3:+.2f} kB'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--davis-root", default=str(harness.DEFAULT_DAVIS), help="DAVIS folder (read in place, never copied)")
    p.add_argument("--set", default=None, help="use this synthetic set instead of synthesizing one")
    p.add_argument("--sources", type=int, default=4, help="DAVIS sources synthesised (6 sequences each, paper protocol)")
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-sequences", type=lambda s: [int(v) for v in s.split(",") if v], default="6,18",
                   help="sequence counts of the memory runs (the first N of the set; three child processes each); "
                        "empty to skip")
    p.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads(N) (default: OpenCV's own)")
    p.add_argument("--tmp", default=None, help="where the temporary set is written (default: the system temp dir)")
    p.add_argument("--profile", action="store_true", help="also profile one eval without read-ahead (top 25 printed)")
    harness.add_arguments(p, rounds=5)
    args = p.parse_args(argv)
    if args.quick:
        args.sources, args.num_frames, args.rounds = 1, 5, min(args.rounds, 2)
        args.memory_sequences = [2] if args.memory_sequences else []
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)

    with tempfile.TemporaryDirectory(prefix="bench_eval_", dir=args.tmp) as tmp:
        given = args.set is not None
        if not given:
            print(f"# bench_eval: synthesizing {args.sources} DAVIS sources (untimed)", file=sys.stderr)
            args.set = str(make_set(args, Path(tmp) / "set"))
        ds = open_set(args.set)
        height, width = ds[0].shape
        frames = sum(seq.num_frames for seq in ds)
        pairs = sum(seq.num_frames - 1 for seq in ds)
        record = harness.new_record("eval", args, seeds={"synthesis": args.seed}, parameters={
            "set": args.set if given else "synthesized from the DAVIS sample", "davis_root": args.davis_root,
            "sources": args.sources, "protocol": "paper", "num_frames": args.num_frames, "sequences": len(ds),
            "frames": frames, "pairs": pairs, "height": height, "width": width, "cv2_threads": cv2.getNumThreads(),
            "predictor": "builtin:constant", "memory_sequences": args.memory_sequences, "target_ratio": TARGET})
        print(f"# bench_eval: {len(ds)} sequences, {width}x{height}", file=sys.stderr)
        state = evaluate(ConstantPredictor(), ds)
        assert state.label_counts.keys() == {0} and len(state.groups) == len(ds)
        assert evaluate(ConstantPredictor(), ds, prefetch=False).state_dict() == state.state_dict()
        timing = harness.interleaved(args.rounds, make_cases(ds), baseline=FLOOR, warmup=args.warmup)
        profile = harness.profile(lambda: evaluate(ConstantPredictor(), ds, prefetch=False)) if args.profile else None
        memory = run_memory(args.set, args.memory_sequences, args.cv_threads) if args.memory_sequences else []

    record.update(timing=timing, ratio_eval_to_read_flow=harness.ratio(timing, "eval", "read + flow"),
                  memory=memory, profile=profile)
    harness.write_result(record, args)
    print(markdown(record))
    if profile:
        print("\n```\n" + profile + "```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
