#!/usr/bin/env python
"""Cost of a fine-tuning step of the imported MediaPipe selfie model: Coherent Loss (and Liu
et al.'s temporal loss) vs the control step on the same batch, time and peak memory.

Three runs are built with the production API (``build_train_config`` + ``build_run`` /
``new_state``) on the real DAVIS-2016 sample (read in place from ``../shared/data/davis-sample``):
labelled images = the first ``--frames-per-sequence`` annotated frames of the 7 sequences;
videos = the 7 ``JPEGImages/480p/<seq>`` folders, ``--pairs-per-video`` pairs each; model
``builtin:mediapipe-selfie`` (``--variant``), imported from its TFLite file, at its own input
size (256x256 general, 144x256 landscape); batch ``--batch-labeled`` images + ``--batch-pairs``
pairs in one forward pass:

- ``coherent``: supervised loss + ``coherent_loss`` (L_bc and L_gc, both directions);
- ``liu``: supervised loss + ``liu_temporal_loss`` (the peer);
- ``control``: ``temporal_loss="none"``: the same images in one forward pass, supervised loss
  only. The baseline of the ratios.

Flows are cached: the first run fills a fresh cache, the others read it (its hit counters are
recorded). Each timed call is one production ``train_step(run, state, StageTimer())``; the data
position is not advanced, so every step draws the same labelled images. Memory: one fresh
``spawn`` child per kind (``harness.peak_memory``) builds the run (warm-up, flows from the
cache) and then takes one step; the figure is the step's peak RSS increase (``VmHWM`` after the
step minus ``VmRSS`` before it), with the whole child's peak RSS beside it.

    .venv/bin/python benchmarks/bench_selfie_step.py --threads 1
    .venv/bin/python benchmarks/bench_selfie_step.py --quick
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import harness

DAVIS_OPTIONS = {"split": None, "year": None, "davis_objects": "merge", "frames_per_sequence": 1, "max_images": None,
                 "images": "images", "masks": "masks", "mask_mode": "binary", "num_images": None}
KINDS = ("coherent", "liu", "control")
_CHILD: dict = {}  # the run a memory child builds in its warm-up


def build(kind: str, root: str, out: str, cache: str, variant: str, settings: dict):
    from stabbench.cli.finetune import build_train_config
    from stabbench.training.run import build_run, new_state

    videos = tuple(sorted(str(p) for p in (Path(root) / "JPEGImages" / "480p").iterdir() if p.is_dir()))
    config = build_train_config("davis", root, {**DAVIS_OPTIONS, "frames_per_sequence": settings["frames_per_sequence"]},
                                model=f"builtin:mediapipe-selfie,variant={variant}", out=out, videos=videos,
                                temporal_loss="none" if kind == "control" else kind, flow_cache=cache,
                                pairs_per_video=settings["pairs_per_video"], batch_labeled=settings["batch_labeled"],
                                batch_pairs=settings["batch_pairs"], seed=0, quiet=True)
    run = build_run(config, Path(out))
    return run, new_state(run)


def child_build(threads: int | None, *args) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    _CHILD["run"] = build(*args)


def child_step() -> dict:
    from stabbench.training.loop import train_step

    run, state = _CHILD["run"]
    return train_step(run, state)


def memory(kind: str, args, tmp: Path, cache: Path) -> dict:
    warm = functools.partial(child_build, args.threads, kind, str(args.root), str(tmp / f"mem-{kind}"), str(cache),
                             args.variant, settings(args))
    got = harness.peak_memory(child_step, warmup=warm)
    got["step_increase_kib"] = got["peak_rss_kib"] - got["rss_before_kib"]
    return got


def settings(args) -> dict:
    return {"frames_per_sequence": args.frames_per_sequence, "pairs_per_video": args.pairs_per_video,
            "batch_labeled": args.batch_labeled, "batch_pairs": args.batch_pairs}


def bench(args, tmp: Path) -> dict:

    cache = tmp / "flow-cache"
    runs, cache_stats = {}, {}
    for kind in KINDS:  # the first fills the cache; the others read it
        runs[kind] = build(kind, str(args.root), str(tmp / f"run-{kind}"), str(cache), args.variant, settings(args))
        cache_stats[kind] = dict(runs[kind][0].flow_cache.stats())
    step_cases, stages = harness.train_step_cases({kind: runs[kind] for kind in KINDS})
    timing = harness.interleaved(args.rounds, step_cases, baseline="control",
                                 warmup=args.warmup)
    stage_summary = {kind: {name: harness.summarize([s[name] for s in got[-args.rounds:]]) for name in got[-1]}
                     for kind, got in stages.items()}
    run = runs["coherent"][0]
    mem = {kind: memory(kind, args, tmp, cache) for kind in KINDS}
    base = mem["control"]
    return {"size": list(run.input_size), "labelled_images": len(run.labeled), "pairs": len(run.pairs),
            "parameters": run.model_info["parameters"], "flow_cache": cache_stats, "timing": timing,
            "stages": stage_summary, "memory": mem,
            "memory_ratios": {kind: {"step_increase": m["step_increase_kib"] / base["step_increase_kib"],
                                     "peak_rss": m["peak_rss_kib"] / base["peak_rss_kib"]} for kind, m in mem.items()}}


def markdown(record: dict) -> str:
    res = record["results"]
    h, w = res["size"]
    p = record["parameters"]
    lines = [harness.header(record), "",
             f"### selfie ({p['variant']}) {h}x{w}: {res['parameters']} parameters, {res['labelled_images']} labelled "
             f"images, {res['pairs']} pairs, batch {p['batch_labeled']} + {p['batch_pairs']} pairs", "",
             harness.timing_table(res["timing"]), "",
             "| step | forward+loss | backward (medians, ms) | step peak RSS increase (MiB) | ratio | child peak RSS (MiB) | ratio |",
             "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        st, m, r = res["stages"][kind], res["memory"][kind], res["memory_ratios"][kind]
        lines.append(f"| {kind} | {1e3 * st['forward+loss']['median']:.0f} | {1e3 * st['backward']['median']:.0f} | "
                     f"{m['step_increase_kib'] / 1024:.0f} | {r['step_increase']:.2f}x | {m['peak_rss_kib'] / 1024:.0f} | "
                     f"{r['peak_rss']:.2f}x |")
    lines += ["", f"flow cache: {res['flow_cache']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=harness.DEFAULT_DAVIS, help="DAVIS sample (read in place)")
    ap.add_argument("--variant", choices=("general", "landscape"), default="general")
    ap.add_argument("--frames-per-sequence", type=int, default=2)
    ap.add_argument("--pairs-per-video", type=int, default=2)
    ap.add_argument("--batch-labeled", type=int, default=12)
    ap.add_argument("--batch-pairs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    harness.add_arguments(ap, rounds=10, warmup=2)
    args = ap.parse_args(argv)
    if args.quick:
        args.variant, args.rounds, args.warmup, args.batch_labeled, args.batch_pairs = "landscape", 1, 1, 2, 1
    harness.require_dir(args.root, "DAVIS sample", "pass --root")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    record = harness.new_record("selfie_step", args, seeds={"model_init": 0, "data": 0}, torch=True, parameters={
        "root": str(args.root), "variant": args.variant, "model": f"builtin:mediapipe-selfie,variant={args.variant}",
        **settings(args), "flow_preset": "medium", "torch_threads": torch.get_num_threads(),
        "target_time_ratio": 1.3, "target_memory_ratio": 1.5})
    with tempfile.TemporaryDirectory(prefix="bench-selfie-") as tmp:
        record["results"] = bench(args, Path(tmp))
    harness.write_result(record, args)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
