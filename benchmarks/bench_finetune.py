"""Cost of one fine-tuning step with the Coherent Loss vs a supervised-only step.

Method. A :class:`stabbench.training.trainer.Trainer` is set up on the real DAVIS-2016
sample (read in place from ``../shared/data/davis-sample``): labelled images = the first
``--frames-per-sequence`` annotated frames of the 7 sequences, videos = the 7
``JPEGImages/480p/<seq>`` frame folders, ``--pairs-per-video`` pairs each, model
``builtin:tiny_unet`` (seed 0), at each ``--sizes`` training resolution. Setup computes the
flow of every pair into a fresh flow cache (all misses), so the cache is warm before any
step is timed. A second trainer on the same flow cache (a second run, e.g. the control run or
a resumed one) then reads every pair from it: its hit rate is reported from the cache's own
counters (``FlowCache.stats()``). Within one run the flows are read from the cache once, at
setup, and kept in memory (``PairData``), so later epochs make no cache look-ups at all.

One fixed batch (12 labelled images + 6 pairs, drawn with the trainer's own generator) is
used for every timed step. Three step kinds, each a copy of ``Trainer.step`` with clocks
between its stages (the same calls in the same order):

- ``coherent``: 24 images (12 labelled + 6 frames t + 6 frames t+1) in one forward pass,
  ``segmentation_loss`` + ``coherent_loss`` (L_bc and L_gc, both directions), backward,
  SGD step; the pair batch (frames + flows) is fetched from ``PairData`` (memory);
- ``control``: the same 24 images in one forward pass, supervised loss only (what
  ``--no-coherent`` does since the control-fairness change);
- ``supervised``: only the 12 labelled images forwarded, supervised loss (what a plain
  supervised step costs).

Stages: data (labelled batch + pair batch from memory), to-tensor, forward, seg loss,
coherent loss (one call; L_bc and L_gc are also timed separately, untimed for the step,
by calling ``boundary_coherency_loss`` / ``global_coherency_loss`` on the same logits),
backward, optimizer step. The three kinds are interleaved over ``--steps`` rounds after
``--warmup`` rounds; medians are reported. Weights change between steps (SGD, lr 1e-4), which
does not change the cost of a step.

Also: the time to fetch one pair's flow from the on-disk cache at the training resolution
(``FlowCache.get_or_compute`` on a hit) and, for reference, ``bidirectional_flow`` of one
854x480 pair on one OpenCV thread (preset medium).

Run from the repository root::

    .venv/bin/python benchmarks/bench_finetune.py                 # 128x224 and 144x256
    .venv/bin/python benchmarks/bench_finetune.py --threads 1

Writes ``benchmarks/out/finetune-<date>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAVIS = REPO.parent / "shared" / "data" / "davis-sample"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DAVIS)
    ap.add_argument("--sizes", default="128x224,144x256", help="training resolutions HxW, comma separated")
    ap.add_argument("--frames-per-sequence", type=int, default=2)
    ap.add_argument("--pairs-per-video", type=int, default=5)
    ap.add_argument("--steps", type=int, default=15, help="timed rounds (each: coherent, control, supervised)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--no-save", action="store_true")
    return ap.parse_args(argv)


def make_trainer(root: Path, size, fps: int, ppv: int, out: Path, cache: Path):
    from stabbench.training.trainer import Trainer

    videos = sorted(str(p) for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir())
    from stabbench.training.cli_support import build_train_config

    cfg = build_train_config("davis", str(root), {"frames_per_sequence": fps, "year": None, "split": None, "davis_objects": "merge"}, model="builtin:tiny_unet", out=str(out),
                             videos=tuple(videos), input_size=size, pairs_per_video=ppv, flow_cache=str(cache),
                             quiet=True)
    trainer = Trainer(cfg, overwrite=True)
    trainer.setup()
    return trainer


def timed_step(tr, kind: str, images, labels, pair_idx, flips, stages: dict) -> None:
    """``Trainer.step`` with clocks (same calls, same order), on a fixed batch."""
    import torch

    from stabbench.losses import coherent_loss, segmentation_loss
    from stabbench.training.modelio import first_tensor

    cfg = tr.config
    t0 = time.perf_counter()
    pair_batch = None
    if kind != "supervised":
        pair_batch = tr.pairs.batch(pair_idx, flips, with_flow=(kind == "coherent"))
    t1 = time.perf_counter()
    x_l = tr.to_input(images)
    y_l = torch.from_numpy(labels).to(tr.device).long()
    n = x_l.shape[0]
    if pair_batch is not None:
        m = pair_batch.frames_t.shape[0]
        x = torch.cat([x_l, tr.to_input(pair_batch.frames_t), tr.to_input(pair_batch.frames_t1)])
        flows = tr._flow_tensors(pair_batch) if kind == "coherent" else None
    else:
        x = x_l
    t2 = time.perf_counter()
    logits = first_tensor(tr.model(x))
    t3 = time.perf_counter()
    seg = segmentation_loss(logits[:n], y_l, kind=cfg.seg_loss, ignore_index=255)
    t4 = time.perf_counter()
    if kind == "coherent":
        terms = coherent_loss(seg, logits[n:n + m], logits[n + m:], *flows, width=cfg.width, beta=cfg.beta,
                              lambda_bc=cfg.lambda_bc, lambda_gc=cfg.lambda_gc)
        total = terms["total"]
    else:
        total = seg
    t5 = time.perf_counter()
    bool(torch.isfinite(total.detach()))
    tr.optimizer.zero_grad(set_to_none=True)
    total.backward()
    t6 = time.perf_counter()
    tr.optimizer.step()
    t7 = time.perf_counter()
    for name, a, b in (("data", t0, t1), ("to_tensor", t1, t2), ("forward", t2, t3), ("seg_loss", t3, t4),
                       ("coherent_loss", t4, t5), ("backward", t5, t6), ("optimizer", t6, t7), ("total", t0, t7)):
        stages.setdefault(name, []).append(b - a)


def bench_size(args, size, tmp: Path) -> dict:
    import numpy as np
    import torch

    from stabbench.losses import boundary_coherency_loss, global_coherency_loss

    cache = tmp / f"flow-cache-{size[0]}x{size[1]}"
    t = time.perf_counter()
    tr = make_trainer(args.root, size, args.frames_per_sequence, args.pairs_per_video, tmp / "run1", cache)
    setup1 = time.perf_counter() - t
    stats1 = dict(tr.flow_cache.stats())
    t = time.perf_counter()
    tr2 = make_trainer(args.root, size, args.frames_per_sequence, args.pairs_per_video, tmp / "run2", cache)
    setup2 = time.perf_counter() - t
    stats2 = dict(tr2.flow_cache.stats())
    del tr2

    # flow fetch from the on-disk cache (a hit) at the training size
    from stabbench.training.data import resize_image

    fetch = []
    for ref in tr.pairs.refs[:10]:
        a, b = ref.load()
        a, b = resize_image(a, size), resize_image(b, size)
        s = time.perf_counter()
        tr.flow_cache.get_or_compute(a, b, tr.flow_params)
        fetch.append(time.perf_counter() - s)

    rng = np.random.default_rng(0)
    indices = tr.order.labeled_indices(rng)[:12]
    images, labels = tr.labeled.batch(indices, rng, False)
    pair_idx = tr.order.pair_indices(rng)
    flips = [False] * len(pair_idx)
    stages = {k: {} for k in ("coherent", "control", "supervised")}
    terms = {"bc": [], "gc": []}
    for r in range(args.warmup + args.steps):
        for kind in ("coherent", "control", "supervised"):
            sink = stages[kind] if r >= args.warmup else {}
            timed_step(tr, kind, images, labels, pair_idx, flips, sink)
        # the two coherency terms alone, forward + backward, on fresh logits of the pair frames
        pb = tr.pairs.batch(pair_idx, flips)
        with torch.no_grad():
            x = torch.cat([tr.to_input(pb.frames_t), tr.to_input(pb.frames_t1)])
            logits = tr.model(x)
        lt, lt1 = logits[: len(pair_idx)].clone().requires_grad_(), logits[len(pair_idx):].clone().requires_grad_()
        flows = tr._flow_tensors(pb)
        for name, fn, kw in (("bc", boundary_coherency_loss, {"width": tr.config.width}),
                             ("gc", global_coherency_loss, {"beta": tr.config.beta})):
            s = time.perf_counter()
            fn(lt, lt1, *flows, **kw).backward()
            if r >= args.warmup:
                terms[name].append(time.perf_counter() - s)
    med = {k: {s: statistics.median(v) * 1e3 for s, v in st.items()} for k, st in stages.items()}
    per_round = [c / s for c, s in zip(stages["coherent"]["total"], stages["control"]["total"])]
    return {
        "size": list(size),
        "labelled_images": len(tr.labeled),
        "pairs": len(tr.pairs),
        "batch": {"labeled": 12, "pairs": len(pair_idx)},
        "setup_s": {"run1_flow_computed": round(setup1, 2), "run2_flow_cached": round(setup2, 2)},
        "flow_cache": {"run1": stats1, "run2": stats2},
        "flow_fetch_ms_median": statistics.median(fetch) * 1e3,
        "median_ms": med,
        "terms_fw_bw_ms": {k: statistics.median(v) * 1e3 for k, v in terms.items()},
        "ratio_coherent_control": med["coherent"]["total"] / med["control"]["total"],
        "ratio_coherent_supervised12": med["coherent"]["total"] / med["supervised"]["total"],
        "ratio_per_round_coherent_control": {"median": statistics.median(per_round), "min": min(per_round),
                                             "max": max(per_round)},
    }


def flow_854(root: Path, repeats: int = 10) -> float:
    import cv2

    from stabbench.flow import FlowParams
    from stabbench.flow.dis import bidirectional_flow

    cv2.setNumThreads(1)
    folder = root / "JPEGImages" / "480p" / "blackswan"
    a = cv2.cvtColor(cv2.imread(str(folder / "00000.jpg")), cv2.COLOR_BGR2RGB)
    b = cv2.cvtColor(cv2.imread(str(folder / "00001.jpg")), cv2.COLOR_BGR2RGB)
    params = FlowParams(preset="medium")
    times = []
    for i in range(repeats + 2):
        s = time.perf_counter()
        bidirectional_flow(a, b, params)
        if i >= 2:
            times.append(time.perf_counter() - s)
    cv2.setNumThreads(-1)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import cv2
    import torch

    from stabbench.training.cli_support import parse_size

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    started = dt.datetime.now(dt.timezone.utc)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp:
        results = [bench_size(args, size, Path(tmp)) for size in sizes]
    flow_ms = flow_854(args.root)
    record = {
        "date": started.isoformat(timespec="seconds"),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "opencv": cv2.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average": [load0, os.getloadavg()[0]],
        "settings": vars(args) | {"root": str(args.root)},
        "results": results,
        "flow_854x480_medium_1thread_ms": flow_ms,
    }
    print(f"torch threads {record['torch_threads']}, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print("| size | kind | total ms | data | to-tensor | forward | seg loss | coherent loss | backward | optimizer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        for kind, m in res["median_ms"].items():
            print(f"| {res['size'][0]}x{res['size'][1]} | {kind} | {m['total']:.1f} | {m['data']:.1f} | {m['to_tensor']:.1f} | "
                  f"{m['forward']:.1f} | {m['seg_loss']:.1f} | {m['coherent_loss']:.1f} | {m['backward']:.1f} | {m['optimizer']:.1f} |")
    for res in results:
        pr = res["ratio_per_round_coherent_control"]
        print(f"{res['size']}: coherent/control {res['ratio_coherent_control']:.2f}x (per round median {pr['median']:.2f}, "
              f"{pr['min']:.2f}-{pr['max']:.2f}); coherent/supervised(12 images) {res['ratio_coherent_supervised12']:.2f}x; "
              f"L_bc fw+bw {res['terms_fw_bw_ms']['bc']:.1f} ms, L_gc fw+bw {res['terms_fw_bw_ms']['gc']:.1f} ms; "
              f"flow fetch (cache hit) {res['flow_fetch_ms_median']:.2f} ms/pair; cache run1 {res['flow_cache']['run1']}, "
              f"run2 {res['flow_cache']['run2']}; setup {res['setup_s']}")
    print(f"flow 854x480 medium, 1 OpenCV thread: {flow_ms:.1f} ms/pair")
    if not args.no_save:
        out = REPO / "benchmarks" / "out" / f"finetune-{started:%Y%m%d-%H%M%S}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
