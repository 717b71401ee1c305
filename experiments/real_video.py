"""Validate ``stabbench video``, the paired real-video comparison, on the DAVIS-2016 sample.

Questions (issue 10) and the runs that answer them, every one a ``stabbench video`` CLI call
(logged in ``commands.txt``), all with the DAVIS-2016 annotations as the reference, DIS
``medium`` flow (cached in ``experiments/out/real-video/flow-cache``), band 15, 2000 bootstrap
resamples, seed 0:

1. ``main``: the 7 sequences; models: the real OSVOS predictions (``predictions:...,map=
   foreground``: DAVIS-2017 object ids -> foreground) and the annotations degraded by the
   built-in flicker (``builtin:flicker,rate=q,seed=0``: each pixel of the 15 px band around
   the annotation's edges flipped with probability q, per frame) at q = 0.02, 0.05, 0.1.
   Expected: annotations more stable than OSVOS on >= 6 of 7 sequences (intervals excluding 0);
   flicker ranks q = 0.02 > 0.05 > 0.1 on every sequence.
2. ``selfie``: the 4 human sequences (dance-twirl, bmx-trees, scooter-black, kite-surf);
   model: ``builtin:mediapipe-selfie`` (MediaPipe's selfie segmenter, 256x256 TFLite).
3. ``no-mb``: run 1 without the motion-boundary criterion (``--no-motion-boundary``): what
   the criterion changes in coverage and in the annotations' own S.

Outputs: ``experiments/out/real-video/{main,selfie,no-mb}/`` (results.json, CSVs),
``summary.md`` (the tables quoted in ``experiments/README.md``), ``commands.txt``.
Usage (from the repository root): ``.venv/bin/python experiments/real_video.py [--quick]``
(``--quick``: 2 sequences, 200 resamples, ``ultrafast`` flow; a smoke run).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAVIS = REPO.parent / "shared" / "data" / "davis-sample"
SEQUENCES = ("blackswan", "bmx-trees", "camel", "dance-twirl", "horsejump-high", "kite-surf", "scooter-black")
HUMANS = ("bmx-trees", "dance-twirl", "kite-surf", "scooter-black")
RATES = (0.02, 0.05, 0.1)
OSVOS = f"predictions:{DAVIS / 'Predictions/osvos-davis2017/480p'},map=foreground"


def flicker(q: float) -> str:
    return f"builtin:flicker,rate={q},seed=0"


def run_video(name: str, out: Path, models: list[str], sequences, extra: list[str], log) -> dict:
    """One ``stabbench video`` call (skipped when its results exist); its results.json."""
    target = out / name
    if (target / "results.json").is_file():
        return json.loads((target / "results.json").read_text())
    cmd = [sys.executable, "-m", "stabbench", "video", "-q", "--annotations", str(DAVIS / "Annotations/480p"),
           "--flow-cache", str(out / "flow-cache"), "--no-leaderboard", "--out", str(target), *extra]
    for model in models:
        cmd += ["--model", model]
    for seq in sequences:
        cmd += ["--videos", str(DAVIS / "JPEGImages/480p" / seq)]
    log.write(shlex.join(cmd) + "\n")
    log.flush()
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"{name}: exit {done.returncode} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout}")
    return json.loads((target / "results.json").read_text())


def model_name(results: dict, prefix: str) -> str:
    (name,) = [m for m in results["metrics"] if m.startswith(prefix)]
    return name


def rows_of(results: dict, model: str) -> dict[str, dict]:
    return {r["video"]: r for r in results["per_video"] if r["model"] == model}


def fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def interval(row: dict, metric: str = "S_boundary") -> str:
    return f"{fmt(row['d' + metric])} [{fmt(row['d' + metric + '_lo'])}, {fmt(row['d' + metric + '_hi'])}]"


def osvos_table(res: dict) -> list[str]:
    osvos = model_name(res, "predictions:")
    ann, mod = rows_of(res, "annotations"), rows_of(res, osvos)
    lines = ["| sequence | coverage % | S_b annotations | S_b OSVOS | dS_b OSVOS - ann [95 % CI] | verdict | pairs ann > OSVOS % |",
             "|---|---|---|---|---|---|---|"]
    for seq in sorted(ann):
        m = mod[seq]
        lines.append(f"| {seq} | {fmt(m['coverage_pct'], 1)} | {fmt(ann[seq]['S_boundary'])} | {fmt(m['S_boundary'])} | "
                     f"{interval(m)} | {m['S_boundary_verdict']} | {fmt(m['S_boundary_reference_higher_pct'], 0)} |")
    o = res["metrics"][osvos]
    lines.append(f"| **overall** | {fmt(o['coverage_pct'], 1)} | {fmt(res['metrics']['annotations']['S_boundary'])} | "
                 f"{fmt(o['S_boundary'])} | {interval(o)} | {o['S_boundary_verdict']} | "
                 f"{fmt(o['S_boundary_reference_higher_pct'], 0)} |")
    more = sum(mod[s]["S_boundary_verdict"] == "less stable" for s in mod)
    lines.append(f"\nAnnotations more stable than OSVOS (interval excludes 0) on {more} of {len(mod)} sequences "
                 f"(S_global: {sum(mod[s]['S_global_verdict'] == 'less stable' for s in mod)} of {len(mod)}).")
    return lines


def flicker_table(res: dict) -> list[str]:
    names = [model_name(res, f"builtin:flicker,band=15,rate={q},") for q in RATES]
    per = [rows_of(res, n) for n in names]
    lines = ["| sequence | " + " | ".join(f"S_b q={q} (dS_b [95 % CI])" for q in RATES) + " | ordered |",
             "|---" * (len(RATES) + 2) + "|"]
    ordered = 0
    for seq in sorted(per[0]):
        s = [p[seq]["S_boundary"] for p in per]
        ok = all(a > b for a, b in zip(s, s[1:]))
        ordered += ok
        lines.append(f"| {seq} | " + " | ".join(f"{fmt(p[seq]['S_boundary'])} ({interval(p[seq])})" for p in per)
                     + f" | {'yes' if ok else 'NO'} |")
    lines.append(f"\nq = {' > '.join(map(str, RATES))} ranks in that order (S_boundary) on {ordered} of {len(per[0])} sequences.")
    return lines


def selfie_table(res: dict) -> list[str]:
    name = model_name(res, "builtin:mediapipe")
    ann, mod = rows_of(res, "annotations"), rows_of(res, name)
    lines = ["| sequence | S_g ann | S_g selfie | dS_g [95 % CI] | S_b ann | S_b selfie | dS_b [95 % CI] | verdict (b) |",
             "|---|---|---|---|---|---|---|---|"]
    for seq in sorted(mod):
        m = mod[seq]
        lines.append(f"| {seq} | {fmt(ann[seq]['S_global'])} | {fmt(m['S_global'])} | {interval(m, 'S_global')} | "
                     f"{fmt(ann[seq]['S_boundary'])} | {fmt(m['S_boundary'])} | {interval(m)} | {m['S_boundary_verdict']} |")
    o = res["metrics"][name]
    lines.append(f"| **overall** | {fmt(res['metrics']['annotations']['S_global'])} | {fmt(o['S_global'])} | "
                 f"{interval(o, 'S_global')} | {fmt(res['metrics']['annotations']['S_boundary'])} | {fmt(o['S_boundary'])} | "
                 f"{interval(o)} | {o['S_boundary_verdict']} |")
    return lines


def criterion_table(with_mb: dict, without: dict) -> list[str]:
    a, b = rows_of(with_mb, "annotations"), rows_of(without, "annotations")
    osvos = model_name(with_mb, "predictions:")
    oa, ob = rows_of(with_mb, osvos), rows_of(without, osvos)
    lines = ["| sequence | coverage % (fb only -> + MB) | band coverage % | S_b annotations (fb only -> + MB) | "
             "S_g annotations | dS_b OSVOS (fb only -> + MB) |", "|---|---|---|---|---|---|"]
    for seq in sorted(a):
        lines.append(f"| {seq} | {fmt(b[seq]['coverage_pct'], 1)} -> {fmt(a[seq]['coverage_pct'], 1)} | "
                     f"{fmt(b[seq]['band_coverage_pct'], 1)} -> {fmt(a[seq]['band_coverage_pct'], 1)} | "
                     f"{fmt(b[seq]['S_boundary'])} -> {fmt(a[seq]['S_boundary'])} | "
                     f"{fmt(b[seq]['S_global'])} -> {fmt(a[seq]['S_global'])} | "
                     f"{fmt(ob[seq]['dS_boundary'])} -> {fmt(oa[seq]['dS_boundary'])} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 sequences, 200 resamples, ultrafast flow (smoke run)")
    args = parser.parse_args(argv)
    if not DAVIS.is_dir():
        print(f"the DAVIS sample is not at {DAVIS}", file=sys.stderr)
        return 2
    out = REPO / "experiments" / "out" / ("real-video-quick" if args.quick else "real-video")
    out.mkdir(parents=True, exist_ok=True)
    seqs, humans = (("camel", "bmx-trees"), ("bmx-trees",)) if args.quick else (SEQUENCES, HUMANS)
    extra = ["--bootstrap", "200", "--flow-preset", "ultrafast"] if args.quick else ["--bootstrap", "2000"]
    start = time.monotonic()
    with open(out / "commands.txt", "a") as log:
        main_res = run_video("main", out, [OSVOS, *map(flicker, RATES)], seqs, extra, log)
        no_mb = run_video("no-mb", out, [OSVOS], seqs, [*extra, "--no-motion-boundary"], log)
        selfie = run_video("selfie", out, ["builtin:mediapipe-selfie"], humans, extra, log)
    summary = ["# Real-video comparison on the DAVIS-2016 sample", "",
               f"stabbench {main_res['stabbench_version']}, versions {json.dumps(main_res['versions'])}; "
               f"flow {json.dumps(main_res['settings']['flow'])}; motion boundary "
               f"{json.dumps(main_res['settings']['motion_boundary'])}; bootstrap {json.dumps(main_res['settings']['bootstrap'])}",
               "", "## Annotations vs OSVOS (S_boundary, percent)", "", *osvos_table(main_res),
               "", "## Flicker-degraded annotations (S_boundary, percent; d = against the annotations)", "",
               *flicker_table(main_res), "", "## MediaPipe selfie vs the annotations, human sequences", "",
               *selfie_table(selfie), "", "## What the motion-boundary criterion changes", "",
               *criterion_table(main_res, no_mb), "", f"Wall time of this invocation: {time.monotonic() - start:.0f} s."]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
