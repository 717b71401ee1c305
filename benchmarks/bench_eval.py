#!/usr/bin/env python
"""Evaluation harness overhead (eval with a trivial predictor vs just reading the frames) and memory.

What it measures:

1. **Overhead.** ``stabbench.evaluation.evaluate(ConstantPredictor(), set)`` (the loop
   ``stabbench eval`` runs: read frames and masks, feed the predictor through
   ``predict_sequence`` and its output checks, densify every pair's ground-truth flow
   with ``seq.flow(t)``, update S_global / S_boundary and the confusion matrices, count
   labels), against the **floor**: ``seq.frames()`` + ``seq.masks()`` for every sequence
   and nothing else. The predictor (``builtin:constant``: every pixel background) costs
   nothing, so the ratio eval / floor is the harness's own cost on top of the reading any
   evaluation must do. A second floor, reading + ``seq.flow(t)`` of every pair, shows how
   much of the overhead is flow densification. Target: ratio at most 1.3x. ``evaluate``
   reads the next sequence in a background thread while it scores the current one
   (``prefetch=True``, its default); a fourth run, ``prefetch=False``, gives the serial
   overhead, which is what the ratio is when no second core is free.
2. **Breakdown.** Passes (3, or ``--repeats`` if fewer) mirroring the runner stage by stage (read frames, read masks,
   predictor + output checks, confusion updates, flow densification, pair geometry
   = target pixels + band, pair counts, label counts), each timed with ``perf_counter``:
   median over the passes of each stage's time, in ms per sequence and per pair, and each
   stage's share.
3. **Memory.** Subprocesses per entry of ``--memory-sequences`` (default the first 6
   and 18 sequences of the set, i.e. the sequences of 1 and 3 sources) that evaluate them:
   peak RSS (VmHWM) from a run without tracemalloc, the tracemalloc peak from a second
   run, both with read-ahead (the default), and, from a third run without read-ahead (so
   that no half-read next sequence is counted), the traced memory retained after each
   sequence, with its least-squares slope per sequence.

Data: by default a set synthesized (untimed) from the real DAVIS-2016 sample in
``../shared/data/davis-sample`` (read in place): first annotated frame of the first
``--sources`` (4) sequences in sorted order, 854x480, paper protocol, 11 frames, seed 0
(24 sequences, 240 pairs). ``--set DIR`` reuses an existing set instead.

Timing protocol: one untimed warm-up of each of the three (page cache, imports, caches),
then ``--repeats`` (5) rounds of floor, floor + flow, eval, eval without read-ahead,
interleaved so that drifts of the machine's load hit all four alike; ``gc.collect()``
before each. Reported: medians, the ratio of the medians and the median and range of the
per-round ratios.

Run from the repository root::

    .venv/bin/python benchmarks/bench_eval.py
    .venv/bin/python benchmarks/bench_eval.py --profile          # + cProfile of one eval (no read-ahead)

Results go to ``benchmarks/out/`` (JSON) and stdout (markdown).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks._common import REPO, DEFAULT_DAVIS, OUT_DIR, machine, git_state, proc_status_kib  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from stabbench.datasets import list_sources  # noqa: E402
from stabbench.evaluation import evaluate  # noqa: E402
from stabbench.evaluation.runner import EvalState, check_label_range, count_labels  # noqa: E402
from stabbench.metrics import ConfusionMeter, StabilityMeter  # noqa: E402
from stabbench.metrics import functional as F  # noqa: E402
from stabbench.predictors import predict_sequence  # noqa: E402
from stabbench.predictors.oracles import ConstantPredictor  # noqa: E402
from stabbench.synth import open_set  # noqa: E402
from stabbench.synth.writer import SynthConfig, synthesize, versions  # noqa: E402

TARGET = 1.3


# --------------------------------------------------------------------------- data


def make_set(args, out: Path) -> Path:
    """Synthesize the benchmark set (paper protocol) from the first ``--sources`` DAVIS sequences."""
    root = Path(args.davis_root)
    if not root.is_dir():
        sys.exit(f"DAVIS sample not found at {root}; pass --davis-root or --set")
    listing = list_sources("davis", str(root))
    if len(listing.sources) < args.sources:
        sys.exit(f"davis: only {len(listing.sources)} sources, asked for {args.sources}")
    listing = replace(listing, sources=listing.sources[: args.sources])
    synthesize(listing, SynthConfig("davis", str(root), listing.options, "paper", args.num_frames, args.seed), out)
    return out


class FirstSequences:
    """The first ``n`` sequences of a set, as :func:`evaluate` reads a set (classes, len, [i])."""

    def __init__(self, dataset, n: int):
        if n > len(dataset):
            raise SystemExit(f"the set has {len(dataset)} sequences, asked for {n}")
        self.dataset, self.n = dataset, n
        self.classes = dataset.classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]


# --------------------------------------------------------------------------- timed runs


def run_floor(ds) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for seq in ds:
        seq.frames()
        seq.masks()
    return time.perf_counter() - t0


def run_floor_flow(ds) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for seq in ds:
        seq.frames()
        seq.masks()
        for t in range(seq.num_frames - 1):
            seq.flow(t)
    return time.perf_counter() - t0


def run_eval(ds, prefetch: bool = True) -> tuple[float, EvalState]:
    gc.collect()
    t0 = time.perf_counter()
    state = evaluate(ConstantPredictor(), ds, prefetch=prefetch)
    return time.perf_counter() - t0, state


def breakdown(ds) -> dict[str, float]:
    """Seconds per stage of one pass that does exactly what ``evaluate`` does, stage by stage
    (serially: no read-ahead)."""
    stages = dict.fromkeys(
        ("read frames", "read masks", "predictor + output checks", "confusion update", "flow densification (seq.flow)",
         "pair geometry (targets + band)", "pair counts", "label range + counts"), 0.0)
    stab, conf = StabilityMeter(), ConfusionMeter(num_classes=len(ds.classes))
    predictor = ConstantPredictor()
    clock = time.perf_counter
    gc.collect()
    for seq in ds:
        t0 = clock()
        frames = seq.frames()
        t1 = clock()
        masks = seq.masks()
        t2 = clock()
        labels, _ = predict_sequence(predictor, frames, sequence=seq)
        t3 = clock()
        for k in range(seq.num_frames):
            conf.update(seq.id, labels[k], masks[k])
        t4 = clock()
        stages["read frames"] += t1 - t0
        stages["read masks"] += t2 - t1
        stages["predictor + output checks"] += t3 - t2
        stages["confusion update"] += t4 - t3
        for t in range(seq.num_frames - 1):
            t5 = clock()
            flow, valid = seq.flow(t)
            t6 = clock()
            geometry = stab.prepare(flow, valid, masks[t], masks[t + 1])
            t7 = clock()
            stab.update_prepared(seq.id, t, labels[t], labels[t + 1], geometry)
            t8 = clock()
            stages["flow densification (seq.flow)"] += t6 - t5
            stages["pair geometry (targets + band)"] += t7 - t6
            stages["pair counts"] += t8 - t7
        t9 = clock()
        check_label_range(labels, len(ds.classes), seq.id)
        count_labels(labels)
        stages["label range + counts"] += clock() - t9
    return stages


def profile_eval(ds, top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    evaluate(ConstantPredictor(), ds, prefetch=False)  # cProfile sees the main thread only: read there too
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


# --------------------------------------------------------------------------- memory


def memory_child(args) -> None:
    """Subprocess body: evaluate the first ``args.memory_child`` sequences; print memory as JSON.

    A warm-up evaluation of the first sequence (its own meters, discarded) fills the bounded
    caches and imports first. Without ``--trace``: peak RSS only (no tracemalloc
    bookkeeping in it). With ``--trace``: the tracemalloc peak and the traced memory
    retained after each sequence (read in the progress callback), the results dict built
    (``build_results``) inside the trace.
    """
    import tracemalloc

    from stabbench.report.results import build_results, set_info, to_json

    full = open_set(args.set)
    ds = FirstSequences(full, args.memory_child)
    evaluate(ConstantPredictor(), FirstSequences(full, 1))  # warm-up
    gc.collect()
    rss_before = proc_status_kib("VmRSS")
    retained: list[int] = []
    if args.trace:
        tracemalloc.start()
        progress = lambda done, total: retained.append(tracemalloc.get_traced_memory()[0])  # noqa: E731
    else:
        progress = None
    state = evaluate(ConstantPredictor(), ds, progress=progress, prefetch=not args.no_prefetch)
    text = to_json(build_results(state, {"id": "builtin:constant"}, set_info(full), 15, (0, 1)))
    peak = tracemalloc.get_traced_memory()[1] if args.trace else None
    tracemalloc.stop()
    slope = float(np.polyfit(np.arange(len(retained)), retained, 1)[0]) if len(retained) > 1 else None
    height, width = full[0].shape
    print(json.dumps({"sequences": len(ds), "trace": bool(args.trace), "prefetch": not args.no_prefetch,
                      "height": height, "width": width,
                      "rss_before_kib": rss_before, "peak_rss_kib": proc_status_kib("VmHWM"),
                      "tracemalloc_peak_bytes": peak, "retained_bytes": retained,
                      "retained_slope_bytes_per_sequence": slope, "results_json_bytes": len(text)}))


def run_memory(args) -> list[dict]:
    rows = []
    for n in args.memory_sequences:
        row = {}
        for trace, prefetch in ((False, True), (True, True), (True, False)):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--set", str(args.set), "--memory-child", str(n)]
            cmd += ["--trace"] if trace else []
            cmd += [] if prefetch else ["--no-prefetch"]
            cmd += ["--cv-threads", str(args.cv_threads)] if args.cv_threads is not None else []
            result = subprocess.run(cmd, check=True, capture_output=True, text=True)
            got = json.loads(result.stdout.strip().splitlines()[-1])
            if not trace:
                row.update({"sequences": n, "peak_rss_kib_untraced": got["peak_rss_kib"],
                            "rss_before_kib_untraced": got["rss_before_kib"]})
            elif prefetch:
                row.update(got)
            else:  # the retained series without read-ahead
                row.update({"retained_bytes": got["retained_bytes"], "tracemalloc_peak_bytes_serial":
                            got["tracemalloc_peak_bytes"], "retained_slope_bytes_per_sequence":
                            got["retained_slope_bytes_per_sequence"], "retained_prefetch": False})
        rows.append(row)
        print(f"  memory, {n} sequences: peak RSS {row['peak_rss_kib_untraced'] / 1024:.1f} MiB, "
              f"tracemalloc peak {row['tracemalloc_peak_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- reporting


def summary(times: list[float]) -> dict:
    return {"times_s": times, "median_s": statistics.median(times)}


def markdown(result: dict) -> str:
    s = result["settings"]
    fl, ff, ev, es = result["floor"], result["floor_flow"], result["eval"], result["eval_serial"]
    n_seq, n_pairs = s["sequences"], s["pairs"]
    r, rf, rs = result["ratio"], result["ratio_floor_flow"], result["ratio_serial"]

    def row(name, part):
        t = part["times_s"]
        return (f"| {name} | {part['median_s']:.2f} s ({min(t):.2f}-{max(t):.2f}) | {1000 * part['median_s'] / n_seq:.1f} "
                f"| {1000 * part['median_s'] / n_pairs:.2f} |")

    lines = [
        f"set: {n_seq} sequences, {s['frames']} frames, {n_pairs} pairs, {s['height']}x{s['width']} HxW; "
        f"median of {s['repeats']} interleaved rounds after 1 warm-up; OpenCV threads {s['cv2_threads']}; "
        f"load average at start / end {result['machine']['loadavg_1_5_15'][0]:.1f} / {result['loadavg_at_end'][0]:.1f}",
        "",
        "| run | time, median (min-max) | ms/sequence | ms/pair |",
        "|---|---|---|---|",
        row("floor: `seq.frames()` + `seq.masks()`", fl),
        row("floor + `seq.flow(t)` of every pair", ff),
        row("`evaluate(builtin:constant)`", ev),
        row("`evaluate(builtin:constant, prefetch=False)`", es),
        "",
        f"**ratio eval / floor: {r['of_medians']:.2f}x** (per-round ratios: median {r['median_of_rounds']:.2f}, "
        f"{min(r['rounds']):.2f}-{max(r['rounds']):.2f}; target {TARGET}x); "
        f"eval / (floor + flow): {rf['of_medians']:.2f}x (per round {min(rf['rounds']):.2f}-{max(rf['rounds']):.2f}); "
        f"without read-ahead, eval / floor: {rs['of_medians']:.2f}x (per round {min(rs['rounds']):.2f}-"
        f"{max(rs['rounds']):.2f}).",
        "",
        "| stage (median of passes, stage by stage) | ms/sequence | ms/pair | share |",
        "|---|---|---|---|",
    ]
    stages = result["breakdown_s"]
    total = sum(stages.values())
    for name, sec in stages.items():
        lines.append(f"| {name} | {1000 * sec / n_seq:.1f} | {1000 * sec / n_pairs:.2f} | {100 * sec / total:.1f} % |")
    lines.append(f"| total | {1000 * total / n_seq:.1f} | {1000 * total / n_pairs:.2f} | 100 % |")
    if result.get("memory"):
        lines += [
            "",
            "| sequences | peak RSS (VmHWM), no tracemalloc | RSS before eval | tracemalloc peak "
            "| tracemalloc peak, no read-ahead | retained after sequence 1 / last (no read-ahead) "
            "| growth per sequence (fit) |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in result["memory"]:
            kept = m["retained_bytes"]
            lines.append(
                f"| {m['sequences']} | {m['peak_rss_kib_untraced'] / 1024:.1f} MiB | {m['rss_before_kib_untraced'] / 1024:.1f} MiB "
                f"| {m['tracemalloc_peak_bytes'] / 2**20:.2f} MiB | {m['tracemalloc_peak_bytes_serial'] / 2**20:.2f} MiB "
                f"| {kept[0] / 2**20:.3f} / {kept[-1] / 2**20:.3f} MiB "
                f"| {m['retained_slope_bytes_per_sequence'] / 1e3:+.2f} kB |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--davis-root", default=str(DEFAULT_DAVIS), help="DAVIS folder (read only, never copied)")
    p.add_argument("--set", default=None, help="use this synthetic set instead of synthesizing one")
    p.add_argument("--sources", type=int, default=4, help="DAVIS sources synthesised (6 sequences each, paper protocol)")
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5,
                   help="timed rounds of floor, floor + flow, eval and eval without read-ahead (interleaved)")
    p.add_argument("--memory-sequences", type=lambda s: [int(v) for v in s.split(",") if v], default="6,18",
                   help="sequence counts of the memory runs (the first N of the set; three subprocesses each); empty to skip")
    p.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads(N) (default: OpenCV's own)")
    p.add_argument("--tmp", default=None, help="where the temporary set is written (default: the system temp dir)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one eval (without read-ahead) with cProfile (top 25 printed)")
    p.add_argument("--no-save", action="store_true", help="do not write the JSON result to benchmarks/out/")
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-prefetch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    if args.memory_child is not None:
        memory_child(args)
        return 0

    started = time.perf_counter()
    machine_at_start = machine()
    with tempfile.TemporaryDirectory(prefix="bench_eval_", dir=args.tmp) as tmp:
        if args.set is None:
            print(f"# bench_eval: synthesizing {args.sources} DAVIS sources (untimed)", file=sys.stderr)
            args.set = str(make_set(args, Path(tmp) / "set"))
        ds = open_set(args.set)
        height, width = ds[0].shape
        frames = sum(seq.num_frames for seq in ds)
        pairs = sum(seq.num_frames - 1 for seq in ds)
        print(f"# bench_eval: {len(ds)} sequences, {width}x{height}, cv2 threads {cv2.getNumThreads()}", file=sys.stderr)

        run_floor(ds), run_floor_flow(ds)  # warm-ups
        warm_eval, state = run_eval(ds)
        assert state.label_counts.keys() == {0} and len(state.groups) == len(ds)
        assert run_eval(ds, prefetch=False)[1].state_dict() == state.state_dict()
        floor, floor_flow, ev, ev_serial = [], [], [], []
        for i in range(args.repeats):
            floor.append(run_floor(ds))
            floor_flow.append(run_floor_flow(ds))
            ev.append(run_eval(ds)[0])
            ev_serial.append(run_eval(ds, prefetch=False)[0])
            print(f"  round {i + 1}/{args.repeats}: floor {floor[-1]:.2f} s, floor + flow {floor_flow[-1]:.2f} s, "
                  f"eval {ev[-1]:.2f} s ({ev[-1] / floor[-1]:.2f}x), without read-ahead {ev_serial[-1]:.2f} s "
                  f"({ev_serial[-1] / floor[-1]:.2f}x)", file=sys.stderr)
        passes = [breakdown(ds) for _ in range(min(3, args.repeats))]
        stages = {k: statistics.median(p[k] for p in passes) for k in passes[0]}
        profile = profile_eval(ds) if args.profile else None
        memory = run_memory(args) if args.memory_sequences else []

    rounds = [e / f for e, f in zip(ev, floor)]
    rounds_flow = [e / f for e, f in zip(ev, floor_flow)]
    rounds_serial = [e / f for e, f in zip(ev_serial, floor)]
    result = {
        "benchmark": "evaluation",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "set": args.set if args.set and not args.set.startswith(tempfile.gettempdir()) else "synthesized",
            "davis_root": args.davis_root, "sources": args.sources, "protocol": "paper", "num_frames": args.num_frames,
            "seed": args.seed, "sequences": len(ds), "frames": frames, "pairs": pairs, "height": height, "width": width,
            "repeats": args.repeats, "cv2_threads": cv2.getNumThreads(), "predictor": "builtin:constant",
        },
        "machine": machine_at_start,
        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": dict(versions(), python=platform.python_version()),
        "git": git_state(),
        "floor": summary(floor),
        "floor_flow": summary(floor_flow),
        "eval": dict(summary(ev), warmup_s=warm_eval),
        "eval_serial": summary(ev_serial),
        "ratio": {"of_medians": statistics.median(ev) / statistics.median(floor), "rounds": rounds,
                  "median_of_rounds": statistics.median(rounds), "target": TARGET},
        "ratio_floor_flow": {"of_medians": statistics.median(ev) / statistics.median(floor_flow), "rounds": rounds_flow},
        "ratio_serial": {"of_medians": statistics.median(ev_serial) / statistics.median(floor), "rounds": rounds_serial,
                         "median_of_rounds": statistics.median(rounds_serial)},
        "breakdown_s": stages,
        "memory": memory,
        "profile": profile,
        "wall_s": time.perf_counter() - started,
    }
    if not args.no_save:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        path = OUT_DIR / f"eval-{_dt.datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"# wrote {path.relative_to(REPO)}", file=sys.stderr)
    print(markdown(result))
    if profile:
        print("\n```\n" + profile + "```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
