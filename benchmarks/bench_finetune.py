#!/usr/bin/env python
"""Cost of one fine-tuning step with the Coherent Loss vs the control step and a supervised step.

Three runs are built with the production API (``stabbench.cli.finetune.build_train_config``
+ ``stabbench.training.run.build_run`` / ``new_state``) on the real DAVIS-2016 sample (read
in place from ``../shared/data/davis-sample``): labelled images = the first
``--frames-per-sequence`` annotated frames of the 7 sequences; videos = the 7
``JPEGImages/480p/<seq>`` frame folders, ``--pairs-per-video`` pairs each; model
``arch:tiny_unet`` (seed 0); at each ``--sizes`` training resolution:

- ``coherent``: ``temporal_loss="coherent"``: 12 labelled images + 6 pairs (24 images) in one forward
  pass, supervised loss + ``coherent_loss`` (L_bc and L_gc, both directions);
- ``control``: ``temporal_loss="none"`` (``--temporal-loss none``): the same 24 images in one forward
  pass, supervised loss only. The baseline of the ratios;
- ``supervised``: no videos: only the 12 labelled images forwarded.

Each timed call is one production step, ``stabbench.training.loop.train_step(run, state,
StageTimer())``, which also gives the stage times (data, forward+loss, backward, optimizer).
The data position is not advanced between steps, so every step draws the same 12 labelled
images (a full batch; with 14 images an epoch would alternate 12 and 2) and the next 6
pairs. Two more cases time the loss terms alone, forward + backward, on fixed logits of
one pair batch (``boundary_coherency_loss``, ``global_coherency_loss``).

The coherent run is built first on a fresh flow cache (every pair a miss); the control run
then reads the same cache: its hit rate is the cache's own counter (``FlowCache.stats()``).
A last interleaved group times a flow-cache hit at the training size per pair.

    .venv/bin/python benchmarks/bench_finetune.py                  # 128x224 and 144x256 (several minutes)
    .venv/bin/python benchmarks/bench_finetune.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import harness

DAVIS_OPTIONS = {"split": None, "year": None, "davis_objects": "merge", "frames_per_sequence": 2, "max_images": None,
                 "images": "images", "masks": "masks", "mask_mode": "binary", "num_images": None}
KINDS = ("coherent", "control", "supervised")


def build(root: Path, size, kind: str, args, out: Path, cache: Path):
    from stabbench.cli.finetune import build_train_config
    from stabbench.training.run import build_run, new_state

    videos = () if kind == "supervised" else tuple(sorted(str(p) for p in (root / "JPEGImages" / "480p").iterdir()
                                                          if p.is_dir()))
    config = build_train_config("davis", str(root), {**DAVIS_OPTIONS, "frames_per_sequence": args.frames_per_sequence},
                                model="arch:tiny_unet", out=str(out), videos=videos, temporal_loss="coherent" if kind == "coherent" else "none",
                                input_size=size, pairs_per_video=args.pairs_per_video, flow_cache=str(cache),
                                batch_labeled=12, batch_pairs=6, seed=0, quiet=True)
    run = build_run(config, out)
    return run, new_state(run)


def bench_size(args, size, tmp: Path) -> dict:
    import torch

    from stabbench.losses import boundary_coherency_loss, global_coherency_loss
    from stabbench.training.data import resize_image
    from stabbench.training.loop import draw_batch, flow_tensors

    cache = tmp / f"flow-cache-{size[0]}x{size[1]}"
    runs, cache_stats = {}, {}
    for kind in KINDS:  # coherent first: it fills the cache; control then reads it
        runs[kind] = build(args.root, size, kind, args, tmp / f"run-{kind}-{size[0]}x{size[1]}", cache)
        if runs[kind][0].flow_cache is not None:
            cache_stats[kind] = dict(runs[kind][0].flow_cache.stats())
    step_cases, stages = harness.train_step_cases({kind: runs[kind] for kind in KINDS})

    # the loss terms alone, forward + backward, on fixed logits of one pair batch
    run_c, state_c = runs["coherent"]
    _, _, pair_batch = draw_batch(run_c, state_c)
    m = pair_batch.frames_t.shape[0]
    with torch.no_grad():
        logits = run_c.model(torch.cat([run_c.to_input(pair_batch.frames_t), run_c.to_input(pair_batch.frames_t1)]))
    flows = flow_tensors(run_c, pair_batch.flow)

    def term(fn, **kw):
        def case():
            lt, lt1 = logits[:m].clone().requires_grad_(), logits[m:].clone().requires_grad_()
            fn(lt, lt1, *flows, **kw).backward()
        return case

    cases = dict(step_cases)
    cases["L_bc alone, fw + bw"] = term(boundary_coherency_loss, width=run_c.config.width)
    cases["L_gc alone, fw + bw"] = term(global_coherency_loss, beta=run_c.config.beta)
    timing = harness.interleaved(args.rounds, cases, baseline="control", warmup=args.warmup)
    stage_summary = {kind: {name: harness.summarize([s[name] for s in got[-args.rounds:]]) for name in got[-1]}
                     for kind, got in stages.items()}

    frames = [tuple(resize_image(f, size) for f in ref.load()) for ref in run_c.pairs.refs[:10]]

    def fetch():
        for a, b in frames:
            run_c.flow_cache.get_or_compute(a, b, run_c.flow_params)

    fetch_timing = harness.interleaved(args.rounds, {"flow cache hit": fetch}, warmup=1, log=False)
    return {"size": list(size), "labelled_images": len(run_c.labeled), "pairs": len(run_c.pairs),
            "batch": {"labeled": 12, "pairs": m}, "flow_cache": cache_stats, "timing": timing, "stages": stage_summary,
            "ratio_coherent_supervised": harness.ratio(timing, "coherent", "supervised"),
            "flow_cache_hit": {"pairs": len(frames), "timing": fetch_timing,
                               "ms_per_pair_median": 1e3 * fetch_timing["cases"]["flow cache hit"]["median"] / len(frames)}}


def markdown(record: dict) -> str:
    lines = [harness.header(record), ""]
    for res in record["results"]:
        h, w = res["size"]
        lines += [f"### {h}x{w}: {res['labelled_images']} labelled images, {res['pairs']} pairs, batch "
                  f"{res['batch']['labeled']} + {res['batch']['pairs']} pairs", "",
                  harness.timing_table(res["timing"]), "",
                  "| step | data | forward+loss | backward | optimizer (medians, ms) |", "|---|---|---|---|---|"]
        for kind, st in res["stages"].items():
            cells = " | ".join(f"{1e3 * st[name]['median']:.1f}" if name in st else "-"
                               for name in ("data", "forward+loss", "backward", "optimizer"))
            lines.append(f"| {kind} | {cells} |")
        rs = res["ratio_coherent_supervised"]
        lines += ["", f"coherent / supervised (12 images forwarded): {rs['of_medians']:.2f}x; flow cache: "
                  f"{res['flow_cache']}; flow-cache hit at {h}x{w}: {res['flow_cache_hit']['ms_per_pair_median']:.2f} ms/pair", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=harness.DEFAULT_DAVIS, help="DAVIS sample (read in place)")
    ap.add_argument("--sizes", default="128x224,144x256", help="training resolutions HxW, comma separated")
    ap.add_argument("--frames-per-sequence", type=int, default=2)
    ap.add_argument("--pairs-per-video", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    harness.add_arguments(ap, rounds=15, warmup=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.pairs_per_video, args.rounds, args.warmup = "64x112", 1, min(args.rounds, 2), 1
    harness.require_dir(args.root, "DAVIS sample", "pass --root")
    import torch

    from stabbench.cli.finetune import parse_size

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    record = harness.new_record("finetune", args, seeds={"model_init": 0, "data": 0}, torch=True, parameters={
        "root": str(args.root), "sizes": [list(s) for s in sizes], "frames_per_sequence": args.frames_per_sequence,
        "pairs_per_video": args.pairs_per_video, "model": "arch:tiny_unet", "batch_labeled": 12, "batch_pairs": 6,
        "flow_preset": "medium", "torch_threads": torch.get_num_threads(), "target_ratio": 1.3})
    with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp:
        record["results"] = [bench_size(args, size, Path(tmp)) for size in sizes]
    harness.write_result(record, args)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
