#!/usr/bin/env python
"""Synthesis throughput against its floor (encode + write the same frames), set size, memory.

What it measures (see benchmarks/README.md for the method):

1. ``synthesize`` on N sources (paper protocol, 11 frames: 6 sequences x 11 frames per
   source) into a fresh directory: frames/s, ms/frame, bytes per frame (frame PNG + mask
   PNG) and the share of the set's bytes taken by correspondence data (the JSON files).
2. The floor, in the same run: exactly the frames and masks synthesis produced, read back
   into memory (untimed), then only encoded with the same encoder and parameters
   (``encode_png``, PNG compression 1) and written the same way (``write_bytes_atomic``)
   into a fresh directory. Ratio = synthesis time / floor time.
3. Memory: peak RSS and tracemalloc peak of ``synthesize`` for k, 2k, ... sources, each in
   a subprocess of its own.

Run from the repository root::

    .venv/bin/python benchmarks/bench_synth.py                       # real DAVIS sample
    .venv/bin/python benchmarks/bench_synth.py --dataset shapes       # no files needed

Results go to ``benchmarks/out/`` (JSON) and stdout (markdown).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shutil
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
from stabbench.synth.writer import (  # noqa: E402
    MANIFEST_FILE,
    PNG_PARAMS,
    SynthConfig,
    encode_png,
    synthesize,
    versions,
    write_bytes_atomic,
)


# --------------------------------------------------------------------------- inputs


def parse_size(text: str) -> tuple[int, int]:
    """``"854x480"`` (W x H) -> ``(height, width)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 854x480, got {text!r}") from None
    return h, w


def make_listing(args, num_sources: int):
    """The first ``num_sources`` sources of the chosen dataset, and its SynthConfig."""
    if args.dataset == "davis":
        root = Path(args.davis_root)
        if not root.is_dir():
            sys.exit(f"DAVIS sample not found at {root}; pass --davis-root or use --dataset shapes")
        # Paper protocol: first annotated frame of each sequence. Asking for more sources than
        # sequences takes several annotated frames per sequence (same layout, same size).
        n_seq = len([p for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()])
        per_seq = max(1, -(-num_sources // n_seq))
        listing = list_sources("davis", str(root), frames_per_sequence=per_seq)
        root_str = str(root)
    else:
        height, width = args.size
        listing = list_sources("shapes", None, num_images=num_sources, height=height, width=width, seed=args.seed)
        root_str = None
    if len(listing.sources) < num_sources:
        sys.exit(f"{args.dataset}: only {len(listing.sources)} sources, asked for {num_sources}")
    listing = replace(listing, sources=listing.sources[:num_sources])
    config = SynthConfig(args.dataset, root_str, listing.options, "paper", args.num_frames, args.seed)
    return listing, config


# --------------------------------------------------------------------------- measurements


def quiesce() -> None:
    """Flush dirty pages of earlier runs to disk and collect garbage (never timed)."""
    gc.collect()
    os.sync()


def time_synthesis(listing, config, out: Path) -> float:
    quiesce()
    t0 = time.perf_counter()
    synthesize(listing, config, out)
    return time.perf_counter() - t0


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


def time_floor(items, out: Path) -> float:
    """Encode (same encoder, same parameters) and write (same way) every item; nothing else.

    The sequence folders are created before the clock starts."""
    for folder in {f for f, _, _ in items}:
        (out / folder).mkdir(parents=True, exist_ok=True)
    quiesce()
    t0 = time.perf_counter()
    for folder, name, array in items:
        write_bytes_atomic(out / folder / name, encode_png(array))
    return time.perf_counter() - t0


def check_floor_output(floor_out: Path, manifest: dict) -> None:
    """The floor wrote exactly the bytes synthesis wrote (sizes and sha256)."""
    import hashlib

    for record in manifest["sequences"]:
        for frame in record["frames"]:
            for key in ("frame", "mask"):
                data = (floor_out / record["id"] / frame[key]).read_bytes()
                if len(data) != frame[key + "_bytes"] or hashlib.sha256(data).hexdigest() != frame[key + "_sha256"]:
                    raise RuntimeError(f"floor output {record['id']}/{frame[key]} differs from synthesis")


def set_sizes(out: Path, manifest: dict) -> dict:
    frames = sum(len(r["frames"]) for r in manifest["sequences"])
    frame_png = sum(f["frame_bytes"] for r in manifest["sequences"] for f in r["frames"])
    mask_png = sum(f["mask_bytes"] for r in manifest["sequences"] for f in r["frames"])
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    json_bytes = sum(p.stat().st_size for p in out.rglob("*.json"))
    manifest_bytes = (out / MANIFEST_FILE).stat().st_size
    return {
        "sequences": len(manifest["sequences"]),
        "frames": frames,
        "frame_png_bytes_per_frame": frame_png / frames,
        "mask_png_bytes_per_frame": mask_png / frames,
        "png_bytes_per_frame": (frame_png + mask_png) / frames,
        "total_bytes": total,
        "json_bytes": json_bytes,
        "manifest_bytes": manifest_bytes,
        "json_fraction": json_bytes / total,
        "manifest_fraction": manifest_bytes / total,
        "json_bytes_per_sequence": json_bytes / len(manifest["sequences"]),
    }


def memory_child(args) -> None:
    """Subprocess body: one synthesis of ``args.memory_child`` sources; print its memory as JSON.

    A tiny grid-protocol warm-up on a 32x32 image first fills the bounded caches (noise
    tables, one per noise std), so what is traced afterwards is the synthesis itself.
    Reports the peak RSS (VmHWM, tracemalloc's bookkeeping included), the tracemalloc peak
    (Python objects and numpy buffers) and the traced memory retained after each sequence.
    """
    import tracemalloc

    listing, config = make_listing(args, args.memory_child)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        warm = list_sources("shapes", None, num_images=1, height=32, width=32)
        synthesize(warm, SynthConfig("shapes", None, warm.options, "grid", args.num_frames, args.seed), Path(tmp) / "warm")
        gc.collect()
        rss_before = proc_status_kib("VmRSS")
        retained: list[int] = []
        tracemalloc.start()
        report = synthesize(listing, config, Path(tmp) / "set",
                            progress=lambda done, total: retained.append(tracemalloc.get_traced_memory()[0]))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    slope = float(np.polyfit(np.arange(len(retained)), retained, 1)[0]) if len(retained) > 1 else 0.0
    print(json.dumps({"sources": args.memory_child, "sequences": report.num_sequences,
                      "rss_before_kib": rss_before, "peak_rss_kib": proc_status_kib("VmHWM"),
                      "tracemalloc_peak_bytes": peak, "retained_bytes": retained,
                      "retained_slope_bytes_per_sequence": slope}))


def run_memory(args) -> list[dict]:
    rows = []
    for k in args.memory_sources:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(k), *child_args(args)]
        result = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"  memory, {k} sources: peak RSS {rows[-1]['peak_rss_kib'] / 1024:.1f} MiB", file=sys.stderr)
    return rows


def child_args(args) -> list[str]:
    out = ["--dataset", args.dataset, "--davis-root", str(args.davis_root), "--num-frames", str(args.num_frames),
           "--seed", str(args.seed), "--size", f"{args.size[1]}x{args.size[0]}"]
    if args.tmp:
        out += ["--tmp", args.tmp]
    if args.cv_threads is not None:
        out += ["--cv-threads", str(args.cv_threads)]
    return out


# --------------------------------------------------------------------------- reporting


def markdown(result: dict) -> str:
    s, f, z = result["synthesis"], result["floor"], result["sizes"]
    n = z["frames"]
    lines = [
        f"frames: {n} ({z['sequences']} sequences x {result['settings']['num_frames']} frames, "
        f"{result['settings']['sources']} sources, {result['settings']['height']}x{result['settings']['width']} HxW), "
        f"median of {len(s['times_s'])} runs after 1 warm-up; OpenCV threads {result['settings']['cv2_threads']}; "
        f"load average at start / end {result['machine']['loadavg_1_5_15'][0]:.1f} / {result['loadavg_at_end'][0]:.1f}",
        "",
        "| measure | synthesis | floor (encode + write) |",
        "|---|---|---|",
        f"| time per run, median (min-max) | {s['median_s']:.2f} s ({min(s['times_s']):.2f}-{max(s['times_s']):.2f}) "
        f"| {f['median_s']:.2f} s ({min(f['times_s']):.2f}-{max(f['times_s']):.2f}) |",
        f"| frames/s | {n / s['median_s']:.1f} | {n / f['median_s']:.1f} |",
        f"| ms/frame | {1000 * s['median_s'] / n:.1f} | {1000 * f['median_s'] / n:.1f} |",
        f"| **ratio synthesis / floor** | **{result['ratio']['of_medians']:.2f}x** (per-run ratios: "
        f"median {result['ratio']['median_of_pairs']:.2f}, {min(result['ratio']['pairs']):.2f}-{max(result['ratio']['pairs']):.2f}) | 1 |",
        "",
        "| set size | value |",
        "|---|---|",
        f"| bytes/frame (frame PNG + mask PNG) | {z['png_bytes_per_frame'] / 1e3:.1f} kB "
        f"({z['frame_png_bytes_per_frame'] / 1e3:.1f} + {z['mask_png_bytes_per_frame'] / 1e3:.1f}) |",
        f"| set bytes (all files) | {z['total_bytes'] / 1e6:.2f} MB |",
        f"| correspondence data: all JSON (sequence.json + manifest.json + run.json) | "
        f"{z['json_bytes'] / 1e3:.1f} kB = **{100 * z['json_fraction']:.3f} %** ({z['json_bytes_per_sequence'] / 1e3:.1f} kB/sequence) |",
        f"| of which manifest.json | {z['manifest_bytes'] / 1e3:.1f} kB = {100 * z['manifest_fraction']:.3f} % |",
    ]
    if result.get("memory"):
        lines += [
            "",
            "| sources | sequences | peak RSS (VmHWM) | RSS before synthesis | tracemalloc peak | traced memory retained after sequence 1 / last | growth per sequence (fit) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in result["memory"]:
            kept = row["retained_bytes"]
            lines.append(
                f"| {row['sources']} | {row['sequences']} | {row['peak_rss_kib'] / 1024:.1f} MiB | {row['rss_before_kib'] / 1024:.1f} MiB "
                f"| {row['tracemalloc_peak_bytes'] / 2**20:.2f} MiB | {kept[0] / 2**20:.2f} / {kept[-1] / 2**20:.2f} MiB "
                f"| {row['retained_slope_bytes_per_sequence'] / 1e3:+.2f} kB |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=("davis", "shapes"), default="davis",
                   help="davis: the real DAVIS sample (854x480 JPEG + masks); shapes: built-in generated images")
    p.add_argument("--davis-root", default=str(DEFAULT_DAVIS), help="DAVIS folder (read only, never copied)")
    p.add_argument("--size", type=parse_size, default="854x480", help="shapes: image size WxH")
    p.add_argument("--sources", type=int, default=4, help="sources synthesised (6 sequences each, paper protocol)")
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5, help="timed runs of synthesis and of the floor (interleaved)")
    p.add_argument("--memory-sources", type=lambda s: [int(v) for v in s.split(",") if v], default="1,3",
                   help="source counts of the memory runs (one subprocess each); empty to skip")
    p.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads(N) (default: OpenCV's own)")
    p.add_argument("--tmp", default=None, help="where the temporary sets are written (default: the system temp dir)")
    p.add_argument("--profile", action="store_true", help="also profile one synthesis run with cProfile (top 20 printed)")
    p.add_argument("--no-save", action="store_true", help="do not write the JSON result to benchmarks/out/")
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1 or args.sources < 1:
        p.error("--repeats and --sources must be >= 1")

    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    if args.memory_child is not None:
        memory_child(args)
        return 0

    started = time.perf_counter()
    machine_at_start = machine()
    listing, config = make_listing(args, args.sources)
    height, width = listing.sources[0].load().label.shape
    print(f"# bench_synth: {args.dataset}, {args.sources} sources, {width}x{height}, cv2 threads {cv2.getNumThreads()}",
          file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench_synth_", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        ref = tmp / "reference"
        warm_synth = time_synthesis(listing, config, ref)  # warm-up; its output feeds the floor
        items, manifest = load_set(ref)
        sizes = set_sizes(ref, manifest)
        warm_floor = time_floor(items, tmp / "floor_warmup")
        check_floor_output(tmp / "floor_warmup", manifest)
        shutil.rmtree(tmp / "floor_warmup")

        synth_times, floor_times = [], []
        for i in range(args.repeats):
            out = tmp / f"synth_{i}"
            synth_times.append(time_synthesis(listing, config, out))
            shutil.rmtree(out)
            out = tmp / f"floor_{i}"
            floor_times.append(time_floor(items, out))
            shutil.rmtree(out)
            print(f"  run {i + 1}/{args.repeats}: synthesis {synth_times[-1]:.2f} s, floor {floor_times[-1]:.2f} s",
                  file=sys.stderr)

        profile = None
        if args.profile:
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            quiesce()
            prof.enable()
            synthesize(listing, config, tmp / "profiled")
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
            profile = buf.getvalue()
        del items

    memory = run_memory(args) if args.memory_sources else []

    pairs = [s / f for s, f in zip(synth_times, floor_times)]
    result = {
        "benchmark": "synthesis",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "dataset": args.dataset, "davis_root": args.davis_root if args.dataset == "davis" else None,
            "sources": args.sources, "source_names": [s.name for s in listing.sources],
            "protocol": "paper", "num_frames": args.num_frames, "seed": args.seed, "height": height, "width": width,
            "repeats": args.repeats, "png_params": list(PNG_PARAMS), "cv2_threads": cv2.getNumThreads(),
            "tmp": str(args.tmp or tempfile.gettempdir()),
        },
        "machine": machine_at_start,
        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": dict(versions(), python=platform.python_version()),
        "git": git_state(),
        "synthesis": {"warmup_s": warm_synth, "times_s": synth_times, "median_s": statistics.median(synth_times)},
        "floor": {"warmup_s": warm_floor, "times_s": floor_times, "median_s": statistics.median(floor_times)},
        "ratio": {"of_medians": statistics.median(synth_times) / statistics.median(floor_times),
                  "pairs": pairs, "median_of_pairs": statistics.median(pairs), "target": 1.5},
        "sizes": sizes,
        "memory": memory,
        "wall_s": time.perf_counter() - started,
    }
    if not args.no_save:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = OUT_DIR / f"synth-{stamp}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"# results: {path.relative_to(REPO)}", file=sys.stderr)
    if profile:
        print(profile, file=sys.stderr)
    print(markdown(result))
    print(f"\n(wall time of the benchmark: {result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
