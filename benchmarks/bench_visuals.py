#!/usr/bin/env python
"""`stabbench show` rendering of one sequence vs evaluating it (trivial predictor).

Cases, interleaved (each one call on the same 11-frame 854x480 sequence):

* ``eval (builtin:constant)`` (baseline): ``evaluate(ConstantPredictor(), [the sequence])``
  without read-ahead: reading (rendering) its frames and masks, the ground-truth flow of its
  pairs, predicting and scoring. Target: rendering its visuals at most 1.0x this.
* ``eval (builtin:flicker)``: the same with the flicker predictor whose saved predictions are
  rendered (for reference: a predictor that produces flicker).
* ``show: gif+mp4+heatmap``: ``stabbench.visuals.show.render_sequence`` (what ``stabbench
  show`` runs per sequence): read the frames, masks and flow, load and check the saved
  predictions, the metric's inconsistent pixels, the overlay clip as GIF and MP4 (the MP4
  encoded by ffmpeg in its own process while the GIF is written), the source-space heatmap PNG.
* ``show: gif+heatmap``, ``show: mp4+heatmap``: one clip format only (``--format``).

Every ``show`` case renders into a fresh folder and times itself (creating and removing the
folder untimed). Data: a compact set synthesized (untimed, into the temp dir) from the first
source of the real DAVIS-2016 sample (``../shared/data/davis-sample``, read in place), paper
protocol, seed 0; ``--sequence`` picks the sequence; the predictions are those of
``stabbench eval --model builtin:flicker,rate=0.1 --save-predictions`` (untimed).

    .venv/bin/python benchmarks/bench_visuals.py
    .venv/bin/python benchmarks/bench_visuals.py --quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import harness

from stabbench.datasets import list_sources
from stabbench.evaluation import evaluate
from stabbench.predictors import load_predictor
from stabbench.predictors.oracles import ConstantPredictor
from stabbench.synth import open_set
from stabbench.synth.writer import SynthConfig, synthesize
from stabbench.training.loop import StageTimer
from stabbench.visuals.show import open_result, render_sequence

TARGET = 1.0
BASELINE = "eval (builtin:constant)"
FLICKER = "builtin:flicker,rate=0.1"
FORMATS = (("gif", "mp4"), ("gif",), ("mp4",))


class OneSequence:
    """Sequence ``i`` of a set, as :func:`evaluate` reads a set (classes, len, [i])."""

    def __init__(self, dataset, i: int):
        self.dataset, self.i, self.classes = dataset, i, dataset.classes

    def __len__(self) -> int:
        return 1

    def __getitem__(self, k: int):
        if k != 0:
            raise IndexError(k)
        return self.dataset[self.i]


def make_set(args, out: Path) -> Path:
    root = harness.require_dir(args.davis_root, "DAVIS sample", "pass --davis-root")
    listing = list_sources("davis", str(root))
    listing = replace(listing, sources=listing.sources[:1])
    synthesize(listing, SynthConfig("davis", str(root), listing.options, "paper", args.num_frames, args.seed), out)
    return out


def save_predictions(set_dir: Path, out: Path) -> Path:
    """``stabbench eval --save-predictions`` of the flicker predictor (untimed setup)."""
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "STABBENCH_WORKERS": "0"}
    subprocess.run([sys.executable, "-m", "stabbench", "eval", "-q", "--model", FLICKER, "--set", str(set_dir),
                    "--out", str(out), "--no-leaderboard", "--no-plot", "--save-predictions"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return out


def make_cases(dataset, index: int, result, work: Path, stages: dict) -> dict:
    one = OneSequence(dataset, index)
    flicker = load_predictor(FLICKER, num_classes=len(dataset.classes))
    row = next(r for r in result.results["per_sequence"] if r["sequence"] == dataset[index].id)
    counter = iter(range(10**9))

    def show(formats):
        def case() -> float:
            folder = work / f"render-{next(counter)}"
            folder.parent.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            render_sequence(folder, dataset[index], row, result, None, formats, stage=stages[formats].stage)
            elapsed = time.perf_counter() - t0
            shutil.rmtree(folder)
            return elapsed
        return case

    return {
        BASELINE: lambda: evaluate(ConstantPredictor(), one, prefetch=False),
        "eval (builtin:flicker)": lambda: evaluate(flicker.predictor, one, spec=flicker.spec, prefetch=False),
        "show: gif+mp4+heatmap": show(FORMATS[0]),
        "show: gif+heatmap": show(FORMATS[1]),
        "show: mp4+heatmap": show(FORMATS[2]),
    }


def markdown(record: dict) -> str:
    p, timing = record["parameters"], record["timing"]
    lines = [harness.header(record), "",
             f"sequence {p['sequence']} ({p['perturbation']}, severity {p['severity']}): {p['frames']} frames, "
             f"{p['height']}x{p['width']} HxW; {timing['rounds']} interleaved rounds after {timing['warmup']} warm-up",
             "", harness.timing_table(timing), ""]
    for case in ("show: gif+mp4+heatmap", "show: gif+heatmap", "show: mp4+heatmap"):
        r = timing["ratios"][case]
        lines.append(f"**{case} / eval: {r['of_medians']:.2f}x** (per round {r['per_round']['min']:.2f}-"
                     f"{r['per_round']['max']:.2f}; target {TARGET}x)")
    names = sorted({name for stages in record["stage_seconds_mean"].values() for name in stages})
    lines += ["", "stages of `render_sequence`, mean ms per call (warm-up included; `clips`: GIF written, MP4 "
              "submitted; `mp4 wait`: waiting for the encoder at the end)", "",
              "| formats | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for formats, stages in record["stage_seconds_mean"].items():
        lines.append(f"| {formats} | " + " | ".join(f"{1000 * stages.get(n, 0):.0f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--davis-root", default=str(harness.DEFAULT_DAVIS), help="DAVIS folder (read in place, never copied)")
    p.add_argument("--sequence", type=int, default=0, help="index of the sequence in the set (paper protocol: 0..5)")
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="where the temporary set and outputs go (default: the system temp dir)")
    harness.add_arguments(p, rounds=7)
    args = p.parse_args(argv)
    if args.quick:
        args.num_frames, args.rounds = 5, min(args.rounds, 2)

    with tempfile.TemporaryDirectory(prefix="bench_visuals_", dir=args.tmp) as tmp:
        print("# bench_visuals: synthesizing 1 DAVIS source, eval --save-predictions (untimed)", file=sys.stderr)
        set_dir = make_set(args, Path(tmp) / "set")
        result = open_result(save_predictions(set_dir, Path(tmp) / "eval"))
        dataset = open_set(set_dir)
        seq = dataset[args.sequence]
        height, width = seq.shape
        record = harness.new_record("visuals", args, seeds={"synthesis": args.seed}, parameters={
            "davis_root": args.davis_root, "sources": 1, "protocol": "paper", "num_frames": args.num_frames,
            "sequence": seq.id, "perturbation": seq.perturbation, "severity": seq.severity, "frames": seq.num_frames,
            "height": height, "width": width, "predictions": FLICKER, "target_ratio": TARGET})
        stages = {formats: StageTimer() for formats in FORMATS}
        timing = harness.interleaved(args.rounds, make_cases(dataset, args.sequence, result, Path(tmp) / "renders", stages),
                                     baseline=BASELINE, warmup=args.warmup)
    calls = args.rounds + args.warmup
    record.update(timing=timing, stage_seconds_mean={"+".join(f): {k: v / calls for k, v in sorted(t.seconds.items())}
                                                     for f, t in stages.items()})
    harness.write_result(record, args)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
