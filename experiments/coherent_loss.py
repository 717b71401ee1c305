"""Does Coherent-Loss fine-tuning raise temporal stability on DAVIS? (small-scale CPU run)

Everything goes through the ``stabbench`` CLI (each command is printed and logged in
``commands.txt``), seeded, into ``experiments/out/coherent-loss/`` (git-ignored). The
DAVIS-2016 sample in ``../shared/data/davis-sample`` (relative to the repository root) is
read in place; the held-out source folder holds only symbolic links to its files.

1. Evaluation sets (``stabbench synth``, seed 0, 11 frames, paper protocol):
   - ``paper``: ``--dataset davis --frames-per-sequence 1``: 42 sequences from the first
     annotated frame of each of the 7 sequences. Caveat: these first frames are also
     labelled training images (``pick_frames`` always includes frame 0);
   - ``heldout``: ``--dataset folder`` on links to one annotated frame per video that is
     *not* a training frame (frame 2 of the 15-frame clips, 6 of blackswan, 11 of
     dance-twirl); 42 sequences. Caveat: DAVIS frames 2-11 frames apart are near-duplicates
     of training frames, and the unlabeled videos contain every frame.
2. Baseline: ``arch:tiny_unet`` from scratch (seed 0), supervised on the
   ``--frames-per-sequence K`` annotated frames of the 7 sequences (default K = 5: 35
   images) at ``--input-size`` (default 128x224), AdamW + cosine schedule, ``--augment``,
   ``--baseline-epochs`` epochs (the train loss is checked for a plateau: mean of the last
   10 % of steps vs the 10 % before).
3. Fine-tunes from the baseline's weights (``--weights baseline/state_dict.pt``), for each
   learning rate in ``--lrs`` (1e-4 is the paper's): (a) ``--no-coherent`` (control: same
   batches, same forward pass, supervised loss only) and (b) the Coherent Loss; SGD,
   momentum 0.9, wd 5e-4, constant lr, 10 epochs, batch 12 labelled + 6 pairs,
   lambda_bc = 1, lambda_gc = 5e-5 (DAVIS, SCHP), w = 15, beta = 5e-2, seed 0, ``--augment``,
   videos = the 7 ``JPEGImages/480p/<seq>`` folders with ``--pairs-per-video`` pairs each (a
   shared flow cache: each pair's flow is computed once).
4. ``stabbench eval`` of every exported model (``model.pt2``) on both sets; table of
   S_global, S_boundary, mIoU(syn) and the per-perturbation S_boundary, written to
   ``summary.json`` / ``summary.md`` (with the machine, git commit and versions).

Run from the repository root::

    .venv/bin/python experiments/coherent_loss.py            # about 30-40 min on 2 vCPUs
    .venv/bin/python experiments/coherent_loss.py --quick    # smoke run of every stage (tiny settings)

Re-running skips finished stages (a stage is finished when its output exists); ``--fresh``
starts over. See ``experiments/README.md`` for the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import DEFAULT_DAVIS, git_state, machine, require_dir, versions  # noqa: E402
from stabbench.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from stabbench.training.outputs import CONFIG_FILE, MODEL_FILE, STATE_FILE, TRAIN_LOG  # noqa: E402

STABBENCH = [sys.executable, "-m", "stabbench"]
MODEL = "arch:tiny_unet"
HELDOUT_FRAME = {15: 2, 50: 6, 90: 11}  # frame index per video length: not in pick_frames(n, 5)
#: --quick: every stage once, with tiny settings (a smoke run, not a result)
QUICK = {"input_size": "64x112", "frames_per_sequence": 2, "baseline_epochs": 2, "ft_epochs": 1, "lrs": "1e-2",
         "pairs_per_video": 2, "synth_frames": 3, "synth_severities": "1"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_DAVIS)
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default experiments/out/coherent-loss, --quick: .../coherent-loss-quick)")
    ap.add_argument("--input-size", default="128x224")
    ap.add_argument("--frames-per-sequence", type=int, default=5)
    ap.add_argument("--baseline-epochs", type=int, default=100)
    ap.add_argument("--baseline-lr", type=float, default=3e-3)
    ap.add_argument("--ft-epochs", type=int, default=10)
    ap.add_argument("--lrs", default="1e-4,1e-3,1e-2", help="fine-tune SGD learning rates, comma separated")
    ap.add_argument("--lambda-bc", type=float, default=1.0)
    ap.add_argument("--lambda-gc", type=float, default=5e-5)
    ap.add_argument("--pairs-per-video", type=int, default=30)
    ap.add_argument("--synth-frames", type=int, default=11, help="frames per synthetic sequence")
    ap.add_argument("--synth-severities", default=None, help="subset of severities of the sets (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    ap.add_argument("--fresh", action="store_true", help="delete --out first")
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.out is None:
        args.out = REPO / "experiments" / "out" / ("coherent-loss-quick" if args.quick else "coherent-loss")
    return args


class Runner:
    def __init__(self, out: Path):
        self.out = out
        self.log = out / "commands.txt"
        self.times: dict[str, float] = {}

    def __call__(self, name: str, args: list) -> None:
        cmd = [str(a) for a in args]
        text = " ".join(shlex.quote(c) for c in ["stabbench", *cmd[len(STABBENCH):]]).replace(str(REPO) + "/", "")
        print(f"$ {text}", flush=True)
        with open(self.log, "a") as fh:
            fh.write(f"# {name}\n{text}\n")
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.times[name] = time.perf_counter() - t0
        (self.out / "logs").mkdir(exist_ok=True)
        (self.out / "logs" / f"{name}.log").write_text(res.stdout)
        if res.returncode != 0:
            print(res.stdout[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {res.returncode})")
        print(f"  {name}: {self.times[name]:.1f} s", flush=True)


def heldout_links(root: Path, dest: Path) -> list[str]:
    """``dest/images/<seq>.jpg`` and ``dest/masks/<seq>.png``: symbolic links to one non-training frame per video."""
    picked = []
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for seq_dir in sorted(p for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()):
        frames = sorted(seq_dir.glob("*.jpg"))
        jpg = frames[HELDOUT_FRAME.get(len(frames), len(frames) // 2)]
        png = root / "Annotations" / "480p" / seq_dir.name / (jpg.stem + ".png")
        for link, target in ((dest / "images" / f"{seq_dir.name}.jpg", jpg), (dest / "masks" / f"{seq_dir.name}.png", png)):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target.resolve())
        picked.append(f"{seq_dir.name}/{jpg.stem}")
    return picked


def read_train_log(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def plateau(rows: list[dict]) -> dict:
    seg = [float(r["seg"]) for r in rows]
    k = max(1, len(seg) // 10)
    last = statistics.mean(seg[-k:])
    before = statistics.mean(seg[-2 * k : -k]) if len(seg) >= 2 * k else float("nan")
    return {"steps": len(seg), "first_10pct": statistics.mean(seg[:k]), "prev_10pct": before, "last_10pct": last,
            "relative_change_last_vs_prev": (last - before) / before if before else None}


def summarize_eval(path: Path) -> dict:
    res = json.loads((path / "results.json").read_text())
    m = res["metrics"]
    per: dict[str, list[float]] = {}
    for row in res["per_perturbation_severity"]:
        per.setdefault(row["perturbation"], []).append(row["S_boundary"])
    return {"S_global": m["S_global"], "S_boundary": m["S_boundary"], "mIoU_syn": m["mIoU_syn"],
            "sequences": m["sequences"],
            "S_boundary_per_perturbation": {k: statistics.mean(v) for k, v in sorted(per.items())}}


def main(argv=None) -> int:
    args = parse_args(argv)
    root = require_dir(args.root, "DAVIS sample", "pass --root").resolve()
    out = args.out
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(out)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    videos = [str(p) for p in sorted((root / "JPEGImages" / "480p").iterdir()) if p.is_dir()]
    size = args.input_size
    lrs = [s.strip() for s in str(args.lrs).split(",") if s.strip()]
    synth_opts = ["--seed", args.seed, "--frames", args.synth_frames, "--overwrite", "-q"]
    synth_opts += ["--severities", args.synth_severities] if args.synth_severities else []

    # 1. evaluation sets
    sets = {"paper": out / "sets" / "paper", "heldout": out / "sets" / "heldout"}
    if not (sets["paper"] / "manifest.json").is_file():
        run("synth-paper", [*STABBENCH, "synth", "--dataset", "davis", "--root", root, "--out", sets["paper"], *synth_opts])
    heldout_src = out / "heldout-src"
    picked = heldout_links(root, heldout_src)
    if not (sets["heldout"] / "manifest.json").is_file():
        run("synth-heldout", [*STABBENCH, "synth", "--dataset", "folder", "--root", heldout_src, "--mask-mode", "binary",
                              "--out", sets["heldout"], *synth_opts])

    common = ["--dataset", "davis", "--root", root, "--frames-per-sequence", args.frames_per_sequence,
              "--input-size", size, "--seed", args.seed, "--augment", "-q"]
    # 2. baseline
    base = out / "baseline"
    if not (base / MODEL_FILE).is_file():
        run("baseline", [*STABBENCH, "finetune", "--model", MODEL, *common, "--optimizer", "adamw",
                         "--lr", args.baseline_lr, "--weight-decay", "1e-4", "--lr-schedule", "cosine",
                         "--epochs", args.baseline_epochs, "--checkpoint-every", "0", "--out", base, "--overwrite"])
    models = {"baseline": base}

    # 3. fine-tunes
    flow_cache = out / "flow-cache"
    flow_cache.mkdir(exist_ok=True)
    video_args = [x for v in videos for x in ("--videos", v)]
    for lr in lrs:
        for mode in ("control", "coherent"):
            name = f"ft-lr{lr}-{mode}"
            dest = out / name
            if not (dest / MODEL_FILE).is_file():
                run(name, [*STABBENCH, "finetune", "--model", MODEL, "--weights", base / STATE_FILE,
                           *common, *video_args, "--pairs-per-video", args.pairs_per_video, "--flow-cache", flow_cache,
                           "--optimizer", "sgd", "--lr", lr, "--momentum", "0.9", "--weight-decay", "5e-4",
                           "--epochs", args.ft_epochs, "--lambda-bc", args.lambda_bc, "--lambda-gc", args.lambda_gc,
                           "--width", "15", "--beta", "5e-2", "--checkpoint-every", "0", "--out", dest, "--overwrite",
                           *(["--no-coherent"] if mode == "control" else [])])
            models[name] = dest

    # 4. evaluation
    table: dict = {}
    for name, dest in models.items():
        for set_name, set_path in sets.items():
            ev = out / "eval" / f"{name}--{set_name}"
            if not (ev / "results.json").is_file():
                run(f"eval-{name}-{set_name}", [*STABBENCH, "eval", "--model", dest / MODEL_FILE, "--set", set_path,
                                                "--out", ev, "--overwrite", "--no-leaderboard", "--no-plot", "-q"])
            table.setdefault(name, {})[set_name] = summarize_eval(ev)
    train = {}
    for name, dest in models.items():
        rows = read_train_log(dest / TRAIN_LOG)
        cfg = json.loads((dest / CONFIG_FILE).read_text())
        train[name] = {"plateau": plateau(rows), "elapsed_s": cfg["result"]["elapsed_s"],
                       "flow_cache": cfg["result"].get("flow_cache"),
                       "last": {k: float(rows[-1][k]) for k in ("total", "seg", "bc", "gc")},
                       "mean_bc_gc": {k: statistics.mean(float(r[k]) for r in rows) for k in ("bc", "gc")}}
    total_s = time.perf_counter() - t_start
    summary = {"date": started.isoformat(timespec="seconds"), "command": " ".join(sys.argv), "quick": args.quick,
               "total_s_this_invocation": round(total_s, 1), "stage_s": {k: round(v, 1) for k, v in run.times.items()},
               "settings": {k: str(v) for k, v in vars(args).items()}, "heldout_frames": picked,
               "machine": machine(), "git": git_state(), "versions": versions(torch=True),
               "results": table, "training": train}
    atomic_write_json(out / "summary.json", summary)
    lines = []
    for set_name in sets:
        perts = list(table["baseline"][set_name]["S_boundary_per_perturbation"])
        lines += [f"\n{set_name} set", "", "| model | S_global | S_boundary | mIoU(syn) | "
                  + " | ".join(f"S_b {p}" for p in perts) + " |", "|---" * (4 + len(perts)) + "|"]
        for name in models:
            r = table[name][set_name]
            lines.append(f"| {name} | {r['S_global']:.2f} | {r['S_boundary']:.2f} | {r['mIoU_syn']:.2f} | "
                         + " | ".join(f"{r['S_boundary_per_perturbation'].get(p, float('nan')):.2f}" for p in perts) + " |")
    lines += ["", "| run | train seg loss first/prev/last 10 % | mean bc | mean gc | train time s |", "|---|---|---|---|---|"]
    for name, t in train.items():
        p = t["plateau"]
        lines.append(f"| {name} | {p['first_10pct']:.4f} / {p['prev_10pct']:.4f} / {p['last_10pct']:.4f} | "
                     f"{t['mean_bc_gc']['bc']:.4f} | {t['mean_bc_gc']['gc']:.4g} | {t['elapsed_s']:.0f} |")
    lines.append(f"\ntotal time of this invocation: {total_s / 60:.1f} min")
    text = "\n".join(lines)
    atomic_write_text(out / "summary.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
