#!/usr/bin/env python
"""Synthesis throughput against its floor (encode + write the same frames), set size, memory.

1. ``synthesize`` on N sources (paper protocol: 6 sequences per source) into a fresh
   folder, against the **floor**: exactly the frames and masks synthesis produced, read
   back into memory (untimed), then only encoded with the same encoder and parameters
   (``encode_png``, PNG compression 1) and written the same way
   (``fileio.atomic_write_bytes(..., durable=False)``, as ``write_sequence`` does) into a
   fresh folder. Ratio = synthesis / floor (target at most 1.5x).
2. Set size: bytes per frame (frame PNG + mask PNG) and the share of the set's bytes taken
   by the JSON files (correspondence data, upper bound; target at most 5 %).
3. Memory: peak RSS and tracemalloc peak of ``synthesize`` for each ``--memory-sources``
   count, each in a child process of its own, and the traced memory retained after each
   sequence (its least-squares slope: growth with the number of sequences).

Each timed call flushes dirty pages first (``os.sync()``, untimed) and writes into a fresh
folder, removed (untimed) after it. The reference synthesis that produces the floor's
frames, and the floor's first run (checked byte-identical to the set), are the warm-up.

    .venv/bin/python benchmarks/bench_synth.py                      # real DAVIS sample (needs ../shared/data)
    .venv/bin/python benchmarks/bench_synth.py --dataset shapes     # generated images, no files needed
    .venv/bin/python benchmarks/bench_synth.py --quick
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import harness
import numpy as np

from stabbench import fileio
from stabbench.datasets import list_sources
from stabbench.synth.writer import MANIFEST_FILE, PNG_PARAMS, SynthConfig, encode_png, synthesize


def parse_size(text: str) -> tuple[int, int]:
    """``"854x480"`` (W x H) -> ``(height, width)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 854x480, got {text!r}") from None
    return h, w


def make_listing(settings: dict, num_sources: int):
    """The first ``num_sources`` sources of the chosen dataset, and its SynthConfig."""
    if settings["dataset"] == "davis":
        root = harness.require_dir(settings["davis_root"], "DAVIS sample", "pass --davis-root, or use --dataset shapes")
        # Paper protocol: first annotated frame of each sequence. Asking for more sources than
        # sequences takes several annotated frames per sequence (same layout, same size).
        n_seq = len([p for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()])
        listing = list_sources("davis", str(root), frames_per_sequence=max(1, -(-num_sources // n_seq)))
        root_str = str(root)
    else:
        height, width = settings["size"]
        listing = list_sources("shapes", None, num_images=num_sources, height=height, width=width, seed=settings["seed"])
        root_str = None
    if len(listing.sources) < num_sources:
        raise SystemExit(f"{settings['dataset']}: only {len(listing.sources)} sources, asked for {num_sources}")
    listing = replace(listing, sources=listing.sources[:num_sources])
    config = SynthConfig(settings["dataset"], root_str, listing.options, "paper", settings["num_frames"], settings["seed"],
                         materialize=True)  # PNG writing (a compact set writes the sources only)
    return listing, config


def quiesce() -> None:
    """Flush dirty pages of earlier runs and collect garbage (never timed)."""
    gc.collect()
    os.sync()


def load_set(out: Path) -> tuple[list[tuple[str, str, np.ndarray]], dict]:
    """Every (folder, file name, array) of a set, decoded back to what synthesis encoded."""
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    items = []
    for record in manifest["sequences"]:
        for frame in record["frames"]:
            for key in ("frame", "mask"):
                path = out / record["id"] / frame[key]
                array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if array is None:
                    raise RuntimeError(f"cannot read back {path}")
                if array.ndim == 3:
                    array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
                items.append((record["id"], frame[key], np.ascontiguousarray(array)))
    return items, manifest


def floor_write(items, out: Path) -> None:
    for folder, name, array in items:
        fileio.atomic_write_bytes(out / folder / name, encode_png(array), durable=False)


def check_floor_output(floor_out: Path, manifest: dict) -> None:
    """The floor wrote exactly the bytes synthesis wrote (sizes and sha256)."""
    for record in manifest["sequences"]:
        for frame in record["frames"]:
            for key in ("frame", "mask"):
                data = (floor_out / record["id"] / frame[key]).read_bytes()
                if len(data) != frame[key + "_bytes"] or fileio.sha256_bytes(data) != frame[key + "_sha256"]:
                    raise RuntimeError(f"floor output {record['id']}/{frame[key]} differs from synthesis")


def set_sizes(out: Path, manifest: dict) -> dict:
    seqs = manifest["sequences"]
    frames = sum(len(r["frames"]) for r in seqs)
    frame_png = sum(f["frame_bytes"] for r in seqs for f in r["frames"])
    mask_png = sum(f["mask_bytes"] for r in seqs for f in r["frames"])
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    json_bytes = sum(p.stat().st_size for p in out.rglob("*.json"))
    manifest_bytes = (out / MANIFEST_FILE).stat().st_size
    return {"sequences": len(seqs), "frames": frames, "frame_png_bytes_per_frame": frame_png / frames,
            "mask_png_bytes_per_frame": mask_png / frames, "png_bytes_per_frame": (frame_png + mask_png) / frames,
            "total_bytes": total, "json_bytes": json_bytes, "manifest_bytes": manifest_bytes,
            "json_fraction": json_bytes / total, "manifest_fraction": manifest_bytes / total,
            "json_bytes_per_sequence": json_bytes / len(seqs)}


def make_cases(listing, config, items, tmp: Path) -> dict:
    counter = iter(range(10**9))

    def synthesis() -> float:
        out = tmp / f"synth_{next(counter)}"
        quiesce()
        t0 = time.perf_counter()
        synthesize(listing, config, out)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(out)
        return elapsed

    def floor() -> float:
        out = tmp / f"floor_{next(counter)}"
        for folder in {f for f, _, _ in items}:
            (out / folder).mkdir(parents=True, exist_ok=True)
        quiesce()
        t0 = time.perf_counter()
        floor_write(items, out)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(out)
        return elapsed

    return {"synthesis": synthesis, "floor (encode + write)": floor}


# --------------------------------------------------------------------------- memory (child process)


def memory_warmup(num_frames: int, seed: int, tmp: str | None, cv_threads: int | None) -> None:
    """A tiny grid-protocol synthesis on a 32x32 image: fills the bounded caches (noise tables)."""
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    warm = list_sources("shapes", None, num_images=1, height=32, width=32)
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        synthesize(warm, SynthConfig("shapes", None, warm.options, "grid", num_frames, seed, materialize=True),
                   Path(folder) / "warm")


def memory_run(settings: dict, num_sources: int) -> dict:
    """Synthesize ``num_sources`` sources (tracemalloc on, started by the harness); the traced
    memory still allocated after each sequence."""
    import tracemalloc

    listing, config = make_listing(settings, num_sources)
    retained: list[int] = []
    with tempfile.TemporaryDirectory(dir=settings["tmp"]) as folder:
        report = synthesize(listing, config, Path(folder) / "set",
                            progress=lambda done, total: retained.append(tracemalloc.get_traced_memory()[0]))
    slope = float(np.polyfit(np.arange(len(retained)), retained, 1)[0]) if len(retained) > 1 else 0.0
    return {"sources": num_sources, "sequences": report.num_sequences, "retained_bytes": retained,
            "retained_slope_bytes_per_sequence": slope}


def run_memory(settings: dict, counts: list[int], cv_threads: int | None) -> list[dict]:
    rows = []
    warm = functools.partial(memory_warmup, settings["num_frames"], settings["seed"], settings["tmp"], cv_threads)
    for k in counts:
        got = harness.peak_memory(memory_run, settings, k, warmup=warm, trace=True)
        rows.append({**got.pop("value"), **got})
        print(f"  memory, {k} sources: peak RSS {rows[-1]['peak_rss_kib'] / 1024:.1f} MiB", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- reporting


def markdown(record: dict) -> str:
    z, timing, p = record["sizes"], record["timing"], record["parameters"]
    n = z["frames"]
    lines = [harness.header(record), "",
             f"{n} frames ({z['sequences']} sequences x {p['num_frames']} frames, {p['sources']} sources, "
             f"{p['height']}x{p['width']} HxW), {timing['rounds']} interleaved rounds; OpenCV threads {p['cv2_threads']}",
             "", harness.timing_table(timing, per=n, per_label="frame"), "",
             "| set size | value |", "|---|---|",
             f"| bytes/frame (frame PNG + mask PNG) | {z['png_bytes_per_frame'] / 1e3:.1f} kB "
             f"({z['frame_png_bytes_per_frame'] / 1e3:.1f} + {z['mask_png_bytes_per_frame'] / 1e3:.1f}) |",
             f"| set bytes (all files) | {z['total_bytes'] / 1e6:.2f} MB |",
             f"| correspondence data: all JSON | {z['json_bytes'] / 1e3:.1f} kB = **{100 * z['json_fraction']:.3f} %** "
             f"({z['json_bytes_per_sequence'] / 1e3:.1f} kB/sequence) |",
             f"| of which manifest.json | {z['manifest_bytes'] / 1e3:.1f} kB = {100 * z['manifest_fraction']:.3f} % |"]
    if record.get("memory"):
        lines += ["", "| sources | sequences | peak RSS (VmHWM) | RSS before | tracemalloc peak "
                  "| retained after sequence 1 / last | growth per sequence (fit) |", "|---|---|---|---|---|---|---|"]
        for row in record["memory"]:
            kept = row["retained_bytes"]
            lines.append(f"| {row['sources']} | {row['sequences']} | {row['peak_rss_kib'] / 1024:.1f} MiB "
                         f"| {row['rss_before_kib'] / 1024:.1f} MiB | {row['tracemalloc_peak_bytes'] / 2**20:.2f} MiB "
                         f"| {kept[0] / 2**20:.2f} / {kept[-1] / 2**20:.2f} MiB "
                         f"| {row['retained_slope_bytes_per_sequence'] / 1e3:+.2f} kB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=("davis", "shapes"), default="davis",
                   help="davis: the real DAVIS sample (854x480 JPEG + masks); shapes: built-in generated images")
    p.add_argument("--davis-root", default=str(harness.DEFAULT_DAVIS), help="DAVIS folder (read in place, never copied)")
    p.add_argument("--size", type=parse_size, default="854x480", help="shapes: image size WxH")
    p.add_argument("--sources", type=int, default=4, help="sources synthesised (6 sequences each, paper protocol)")
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-sources", type=lambda s: [int(v) for v in s.split(",") if v], default="1,3",
                   help="source counts of the memory runs (one child process each); empty to skip")
    p.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads(N) (default: OpenCV's own)")
    p.add_argument("--tmp", default=None, help="where the temporary sets are written (default: the system temp dir)")
    p.add_argument("--profile", action="store_true", help="also profile one synthesis with cProfile (top 20 printed)")
    harness.add_arguments(p, rounds=5, warmup=0)
    args = p.parse_args(argv)
    if args.quick:
        args.sources, args.num_frames, args.rounds = 1, 5, min(args.rounds, 2)
        args.memory_sources = [1] if args.memory_sources else []
    if args.rounds < 1 or args.sources < 1:
        p.error("--rounds and --sources must be >= 1")
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)

    settings = {"dataset": args.dataset, "davis_root": args.davis_root, "size": args.size, "seed": args.seed,
                "num_frames": args.num_frames, "tmp": args.tmp}
    listing, config = make_listing(settings, args.sources)
    height, width = listing.sources[0].load().label.shape
    record = harness.new_record("synth", args, seeds={"synthesis": args.seed}, parameters={
        "dataset": args.dataset, "davis_root": args.davis_root if args.dataset == "davis" else None,
        "sources": args.sources, "source_names": [s.name for s in listing.sources], "protocol": "paper",
        "num_frames": args.num_frames, "height": height, "width": width, "png_params": list(PNG_PARAMS),
        "cv2_threads": cv2.getNumThreads(), "memory_sources": args.memory_sources,
        "tmp": str(args.tmp or tempfile.gettempdir()), "target_ratio": 1.5, "target_json_fraction": 0.05})
    print(f"# bench_synth: {args.dataset}, {args.sources} sources, {width}x{height}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench_synth_", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        ref = tmp / "reference"
        synthesize(listing, config, ref)  # warm-up; its output feeds the floor
        items, manifest = load_set(ref)
        sizes = set_sizes(ref, manifest)
        cases = make_cases(listing, config, items, tmp)
        check_dir = tmp / "floor_check"
        for folder in {f for f, _, _ in items}:
            (check_dir / folder).mkdir(parents=True, exist_ok=True)
        floor_write(items, check_dir)  # the floor's warm-up, checked byte-identical to the set
        check_floor_output(check_dir, manifest)
        shutil.rmtree(check_dir)
        timing = harness.interleaved(args.rounds, cases, baseline="floor (encode + write)", warmup=args.warmup)
        profile = harness.profile(lambda: synthesize(listing, config, tmp / "profiled"), top=20) if args.profile else None
        del items

    record.update(timing=timing, sizes=sizes, profile=profile,
                  memory=run_memory(settings, args.memory_sources, args.cv_threads) if args.memory_sources else [])
    harness.write_result(record, args)
    print(markdown(record))
    if profile:
        print("\n```\n" + profile + "```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
