"""Does the Coherent Loss make MediaPipe's selfie segmenter more stable, and at what cost? (issue 11)

Arms, all from the pretrained ``builtin:mediapipe-selfie`` (256x256, imported as a trainable
module; docs/tflite.md), paper Table-2 shape plus the control and the peer:

- ``baseline``: no fine-tuning (the original model, run by LiteRT);
- ``control``: ``--temporal-loss none`` (same batches, same forward pass, supervised loss only);
- ``bc``: boundary term only (``--lambda-gc 0``); ``gc``: global term only (``--lambda-bc 0``);
- ``cl``: the Coherent Loss with the paper's DAVIS/SCHP settings (w = 15, beta = 5e-2,
  lambda_bc = 1, lambda_gc = 5e-5);
- ``liu``: Liu et al. (ECCV 2020)'s temporal loss (``--temporal-loss liu``, its defaults).

Data (read in place from ``../shared/data``; the work folder holds only symbolic links):

- held out of all training and tuning: ``--heldout`` (default scooter-black);
- labelled: every ``--label-stride``-th annotated frame (frame 0 included) of the training
  videos (``--train-videos``, default bmx-trees, dance-twirl, kite-surf) + the 2 LIP images
  (``mask > 0`` = person); unlabeled: the same training videos (``--pairs-per-video`` pairs each:
  the paper's transductive setting);
- synthetic sets (``stabbench synth``, paper protocol, seed 0): ``heldout``: ``--eval-frames``
  annotated frames of the held-out video at equal intervals; ``train``: one annotated frame
  per training video halfway between two labelled frames (not a labelled frame, but in the
  unlabeled video).

Every fine-tune: ``stabbench finetune`` with AdamW (``--lr``, constant), ``--steps`` steps of
12 labelled images + 6 pairs, ``--augment``, DIS ``medium`` flow at 256x256 (one shared cache),
seed = the run's seed (model init is the pretrained one; the seed draws batches, augmentation
and pairs, identical across arms for one seed). Measures per model:

- ``stabbench eval`` on both synthetic sets: S_global, S_boundary, mIoU(syn);
- ``stabbench video`` on the held-out video, reference = the baseline model (one call per
  seed with every arm of that seed): S_global, S_boundary on identical tracked pixels, and the
  difference to the baseline with the tool's 95 % bootstrap interval;
- mIoU on the held-out video's real annotated frames (every frame; pooled 2-class mIoU).

Aggregation (``summary.json``, ``summary.md``): mean +- standard deviation (ddof 1) over seeds
per arm; each arm's paired difference to the control (same seed = same batches) with a 95 %
percentile interval from a two-level bootstrap: seeds resampled, then the evaluation units
(synthetic sequences, real-video frame pairs, or real frames) resampled, the same units for
arm and control (``--bootstrap`` resamples, seeded).

Run from the repository root (one core: the script sets OMP/MKL threads to 1 and evaluates in
one process; results go outside the repository by default)::

    .venv/bin/python experiments/selfie_cl.py --seeds 0,1,2 --steps 100 --lr 3e-6   # the defaults
    .venv/bin/python experiments/selfie_cl.py --quick        # smoke run of every stage (meaningless numbers)

Re-running with the same settings skips every finished run, evaluation and video call; other
settings in the same ``--out`` are refused (choose another ``--out``). See ``experiments/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import SHARED_DATA, git_state, machine, versions  # noqa: E402
from stabbench.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from stabbench.metrics.functional import mean_iou  # noqa: E402
from stabbench.training.outputs import CONFIG_FILE, MODEL_FILE, TRAIN_LOG  # noqa: E402

STABBENCH = [sys.executable, "-m", "stabbench"]
BASELINE_MODEL = "builtin:mediapipe-selfie"
#: arm -> its finetune options (on top of the common ones); the Table-2 order
ARMS = {
    "control": ["--temporal-loss", "none"],
    "bc": ["--temporal-loss", "coherent", "--lambda-gc", "0"],
    "gc": ["--temporal-loss", "coherent", "--lambda-bc", "0"],
    "cl": ["--temporal-loss", "coherent"],
    "liu": ["--temporal-loss", "liu"],
}
ARM_LABELS = {"baseline": "baseline (pretrained, no fine-tuning)", "control": "control (supervised loss only)",
              "bc": "+bc (boundary term only)", "gc": "+gc (global term only)", "cl": "+CL", "liu": "Liu et al. loss"}
CL_SETTINGS = ["--width", "15", "--beta", "5e-2", "--lambda-bc", "1", "--lambda-gc", "5e-5"]
SYN_METRICS = ("S_global", "S_boundary", "mIoU_syn")
VIDEO_METRICS = ("S_global", "S_boundary")
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "STABBENCH_WORKERS": "0"}
#: --quick: every stage once with tiny settings (a smoke run, not a result)
QUICK = {"seeds": "0", "steps": 2, "pairs_per_video": 2, "eval_frames": 1, "train_eval_frames": 1, "synth_frames": 3,
         "synth_severities": "1", "video_frames": 6, "bootstrap": 200}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--davis", type=Path, default=SHARED_DATA / "davis-full", help="DAVIS root, every frame annotated")
    ap.add_argument("--lip", type=Path, default=SHARED_DATA / "lip-sample", help="LIP sample (added to the labelled set)")
    ap.add_argument("--heldout", default="scooter-black", help="video held out of all training and tuning")
    ap.add_argument("--train-videos", default="bmx-trees,dance-twirl,kite-surf")
    ap.add_argument("--label-stride", type=int, default=10, help="labelled frames: every N-th annotated frame")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"fine-tuned arms (of {', '.join(ARMS)})")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-6,
                    help="AdamW learning rate (constant; chosen on the training videos, see experiments/README.md)")
    ap.add_argument("--pairs-per-video", type=int, default=30)
    ap.add_argument("--eval-frames", type=int, default=6, help="held-out synthetic set: source frames of the held-out video")
    ap.add_argument("--train-eval-frames", type=int, default=2,
                    help="training synthetic set: unlabelled annotated frames per training video")
    ap.add_argument("--synth-frames", type=int, default=11)
    ap.add_argument("--synth-severities", default=None, help="subset of severities of the sets (default: all six)")
    ap.add_argument("--video-frames", type=int, default=None, help="real video: first N frames only (default: all)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None,
                    help="work folder (default: <temp dir>/stabbench-selfie-cl, --quick: ...-quick; outside the repository)")
    ap.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / ("stabbench-selfie-cl-quick" if args.quick else "stabbench-selfie-cl")
    args.seed_list = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arm_list if a not in ARMS]
    if unknown or "control" not in args.arm_list:
        ap.error(f"--arms: unknown {unknown} or no control (choose from {', '.join(ARMS)}; control is required)")
    return args


# ----------------------------------------------------------------------------- running commands


class Runner:
    """Runs ``stabbench`` commands on one core, logs each to ``commands.txt`` and times it."""

    def __init__(self, out: Path):
        self.out = out
        self.times: dict[str, float] = {}
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, args: list) -> None:
        cmd = [str(a) for a in args]
        shown = shlex.join(["stabbench", *cmd[len(STABBENCH):]])
        print(f"$ {shown}", flush=True)
        with open(self.out / "commands.txt", "a") as fh:
            fh.write(f"# {name}\n{shown}\n")
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, **ONE_CORE, "PYTHONPATH": str(REPO)})
        self.times[name] = round(time.perf_counter() - start, 1)
        (self.out / "logs" / f"{name}.log").write_text(res.stdout)
        if res.returncode != 0:
            print(res.stdout[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {res.returncode}); log: {self.out / 'logs' / (name + '.log')}")
        print(f"  {name}: {self.times[name]:.1f} s", flush=True)


def check_settings(out: Path, settings: dict) -> None:
    """Record the settings in ``out/settings.json``; refuse a folder made with other settings."""
    path = out / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            raise SystemExit(f"{out}: made with other settings ({', '.join(changed)}); choose another --out")
    else:
        atomic_write_json(path, settings)


# ----------------------------------------------------------------------------- data (links only)


def link(target: Path, name: Path) -> None:
    name.parent.mkdir(parents=True, exist_ok=True)
    if name.is_symlink() or name.exists():
        if name.is_symlink() and Path(os.readlink(name)) == target:
            return
        name.unlink()
    name.symlink_to(target)


def frames_of(davis: Path, video: str) -> list[Path]:
    frames = sorted((davis / "JPEGImages" / "480p" / video).glob("*.jpg"))
    if len(frames) < 2:
        raise SystemExit(f"{davis / 'JPEGImages' / '480p' / video}: not a DAVIS video folder (pass --davis)")
    return frames


def annotation(davis: Path, video: str, frame: Path) -> Path:
    return davis / "Annotations" / "480p" / video / (frame.stem + ".png")


def label_indices(n_frames: int, stride: int) -> list[int]:
    """Labelled frames of a training video: ``0, stride, 2 stride, ...``."""
    return list(range(0, n_frames, stride))


def train_eval_indices(n_frames: int, stride: int, k: int) -> list[int]:
    """``k`` annotated frames of a training video that are not labelled: the midpoints of ``k`` gaps
    between consecutive labelled frames, the gaps centred at equal spacing."""
    gaps = len(label_indices(n_frames, stride)) - 1
    chosen = {int(np.floor((i + 0.5) * gaps / k)) for i in range(k)} if gaps >= 1 and stride >= 2 else set()
    return sorted(g * stride + stride // 2 for g in chosen)


def equal_intervals(n_frames: int, k: int) -> list[int]:
    return sorted({int(i) for i in np.rint(np.linspace(0, n_frames - 1, k))}) if k > 1 else [0]


def build_data(args: argparse.Namespace, data: Path) -> dict:
    """Folder datasets of links: ``labeled``, ``src-heldout``, ``src-train``; the held-out video's frames."""
    davis, lip = args.davis.resolve(), args.lip.resolve()
    train_videos = [v.strip() for v in args.train_videos.split(",") if v.strip()]
    if args.heldout in train_videos:
        raise SystemExit(f"--heldout {args.heldout} is also a training video")
    picked: dict[str, list[str]] = {"labeled": [], "src-train": [], "src-heldout": []}
    for video in train_videos:
        frames = frames_of(davis, video)
        for i in label_indices(len(frames), args.label_stride):
            add_pair(data / "labeled", f"{video}-{frames[i].stem}", frames[i], annotation(davis, video, frames[i]))
            picked["labeled"].append(f"{video}/{frames[i].stem}")
        for j in train_eval_indices(len(frames), args.label_stride, args.train_eval_frames):
            add_pair(data / "src-train", f"{video}-{frames[j].stem}", frames[j], annotation(davis, video, frames[j]))
            picked["src-train"].append(f"{video}/{frames[j].stem}")
    for split in ("train", "val"):
        for image in sorted((lip / f"{split}_images").glob("*.jpg")):
            add_pair(data / "labeled", f"lip-{image.stem}", image, lip / f"{split}_segmentations" / f"{image.stem}.png")
            picked["labeled"].append(f"lip/{image.stem}")
    held = frames_of(davis, args.heldout)
    for i in equal_intervals(len(held), args.eval_frames):
        add_pair(data / "src-heldout", f"{args.heldout}-{held[i].stem}", held[i], annotation(davis, args.heldout, held[i]))
        picked["src-heldout"].append(f"{args.heldout}/{held[i].stem}")
    used = held[: args.video_frames] if args.video_frames else held
    for frame in used:
        link(frame, data / "video" / args.heldout / frame.name)
    return {"train_videos": train_videos, "videos": [str(davis / "JPEGImages" / "480p" / v) for v in train_videos],
            "heldout_video": data / "video" / args.heldout,
            "heldout_annotations": [annotation(davis, args.heldout, f) for f in used], "picked": picked}


def add_pair(folder: Path, stem: str, image: Path, mask: Path) -> None:
    link(image, folder / "images" / f"{stem}{image.suffix}")
    link(mask, folder / "masks" / f"{stem}.png")


# ----------------------------------------------------------------------------- stages


def synth_sets(args, run: Runner, data: Path, out: Path) -> dict[str, Path]:
    opts = ["--protocol", "paper", "--seed", "0", "--frames", args.synth_frames, "-q"]
    opts += ["--severities", args.synth_severities] if args.synth_severities else []
    sets = {}
    for name in ("heldout", "train"):
        dest = out / "sets" / name
        if not (dest / "manifest.json").is_file():
            run(f"synth-{name}", [*STABBENCH, "synth", "--dataset", "folder", "--root", data / f"src-{name}",
                                  "--mask-mode", "binary", "--out", dest, "--overwrite", *opts])
        sets[name] = dest
    return sets


def finetune(args, run: Runner, data: dict, labeled: Path, out: Path, arm: str, seed: int) -> Path:
    dest = out / "runs" / f"{arm}-s{seed}"
    if (dest / MODEL_FILE).is_file():
        return dest
    n_labeled = len(list((labeled / "images").iterdir()))
    epochs = -(-args.steps * 12 // n_labeled) + 1  # enough passes for --max-steps
    videos = [x for v in data["videos"] for x in ("--videos", v)]
    run(f"finetune-{arm}-s{seed}", [
        *STABBENCH, "finetune", "--model", BASELINE_MODEL, "--dataset", "folder", "--root", labeled,
        "--mask-mode", "binary", *videos, "--pairs-per-video", args.pairs_per_video, "--flow-cache", out / "flow-cache-train",
        "--optimizer", "adamw", "--lr", args.lr, "--lr-schedule", "constant", "--weight-decay", "5e-4",
        "--batch-labeled", "12", "--batch-pairs", "6", "--epochs", epochs, "--max-steps", args.steps,
        "--augment", "--seed", seed, *CL_SETTINGS, *ARMS[arm], "--checkpoint-every", "0", "--out", dest, "--overwrite", "-q"])
    return dest


def evaluate(run: Runner, model: str, name: str, set_name: str, set_path: Path, out: Path) -> dict:
    dest = out / "eval" / f"{name}--{set_name}"
    if not (dest / "results.json").is_file():
        run(f"eval-{name}-{set_name}", [*STABBENCH, "eval", "--model", model, "--set", set_path, "--out", dest,
                                         "--overwrite", "--no-leaderboard", "--no-plot", "--workers", "0", "-q"])
    return json.loads((dest / "results.json").read_text())


def real_video(run: Runner, models: dict[str, str], video: Path, seed: int, args, out: Path) -> dict:
    """One ``stabbench video`` call: these models against the baseline on the held-out video."""
    dest = out / "video" / f"s{seed}"
    if not (dest / "results.json").is_file():
        cmd = [*STABBENCH, "video", "--videos", video, "--reference", BASELINE_MODEL, "--flow-cache", out / "flow-cache-video",
               "--bootstrap", args.bootstrap, "--seed", "0", "--no-leaderboard", "--out", dest, "--overwrite", "-q"]
        for model in models.values():
            cmd += ["--model", model]
        run(f"video-s{seed}", cmd)
    return json.loads((dest / "results.json").read_text())


def frame_confusion(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(2, 2)`` int64 confusion (rows: ground truth, columns: prediction) of binary label maps."""
    return np.bincount(2 * (gt > 0).astype(np.int64).ravel() + (pred > 0).ravel(), minlength=4).reshape(2, 2)


def real_confusions(model: str, name: str, frames: list[Path], masks: list[Path], out: Path) -> np.ndarray:
    """``(N, 2, 2)`` per-frame confusions of ``model`` on real frames vs their annotations (cached)."""
    dest = out / "real-miou" / f"{name}.json"
    if dest.is_file():
        return np.asarray(json.loads(dest.read_text())["confusion"], np.int64)
    from stabbench.datasets.base import read_index_png, read_rgb
    from stabbench.predictors import load_predictor, predict_sequence

    loaded = load_predictor(model)
    video = np.stack([read_rgb(f) for f in frames])
    labels, non_finite = predict_sequence(loaded.predictor, video, spec=loaded.spec)
    if non_finite:
        raise SystemExit(f"{name}: non-finite outputs on the held-out video")
    cms = np.stack([frame_confusion(labels[k], read_index_png(m)) for k, m in enumerate(masks)])
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(dest, {"model": model, "frames": [f.name for f in frames], "confusion": cms.tolist()})
    return cms


# ----------------------------------------------------------------------------- statistics


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else float("nan"),
            "n": len(values), "values": values}


def paired_bootstrap(arm: np.ndarray, ref: np.ndarray, stat, rng: np.random.Generator, resamples: int) -> dict:
    """Difference ``stat(arm) - stat(ref)``, mean over seeds, with a 95 % two-level bootstrap interval.

    ``arm``, ``ref``: ``(seeds, units, ...)`` paired by seed (same batches) and by unit (same
    sequence / frame pair / frame); ``stat`` maps ``(units, ...)`` to a number. Each resample
    draws seeds with replacement, then units with replacement (the same units for both).
    """
    n_seeds, n_units = arm.shape[:2]
    point = float(np.mean([stat(arm[s]) - stat(ref[s]) for s in range(n_seeds)]))
    draws = np.empty(resamples)
    for b in range(resamples):
        seeds = rng.integers(0, n_seeds, n_seeds)
        units = rng.integers(0, n_units, n_units)
        draws[b] = np.mean([stat(arm[s][units]) - stat(ref[s][units]) for s in seeds])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"diff": point, "ci95": [float(lo), float(hi)]}


def nanmean_stat(values: np.ndarray) -> float:
    return float(np.nanmean(values))


def pooled_miou_stat(confusions: np.ndarray) -> float:
    return mean_iou(confusions.sum(axis=0))


def pair_rates(results: dict, model: str, metric: str) -> np.ndarray:
    """Per-pair rates (percent, pairs in order; NaN for nothing tracked) of one model in a video results.json."""
    rows = sorted(results["state"][model]["pairs"], key=lambda r: (r[0], r[1]))
    c, n = (2, 3) if metric == "S_global" else (4, 5)
    return np.array([100.0 * r[c] / r[n] if r[n] else np.nan for r in rows])


def syn_units(results: dict) -> dict[str, np.ndarray]:
    """Per-sequence S_global, S_boundary (NaN where absent) and ``(seqs, C, C)`` confusions of an eval results.json."""
    per = sorted(results["per_sequence"], key=lambda r: r["sequence"])
    conf = results["state"]["confusion"]["sequences"]
    return {"S_global": np.array([r["S_global"] if r["S_global"] is not None else np.nan for r in per], float),
            "S_boundary": np.array([r["S_boundary"] if r["S_boundary"] is not None else np.nan for r in per], float),
            "mIoU_syn": np.stack([np.asarray(conf[r["sequence"]]["confusion"], np.int64) for r in per])}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    if REPO in out.parents or out == REPO:
        raise SystemExit(f"--out {out} is inside the repository; choose a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("out", "quick", "seed_list", "arm_list", "bootstrap")}
    check_settings(out, settings)
    run = Runner(out)
    started, t0 = datetime.now(UTC), time.perf_counter()
    data = build_data(args, out / "data")
    sets = synth_sets(args, run, out / "data", out)

    models = {"baseline": {None: BASELINE_MODEL}}
    for seed in args.seed_list:  # seed-major: every arm of a seed before the next seed
        for arm in args.arm_list:
            dest = finetune(args, run, data, out / "data" / "labeled", out, arm, seed)
            models.setdefault(arm, {})[seed] = str(dest / MODEL_FILE)

    evals = {arm: {seed: {s: evaluate(run, m, f"{arm}-s{seed}" if seed is not None else arm, s, p, out)
                          for s, p in sets.items()} for seed, m in by_seed.items()} for arm, by_seed in models.items()}
    videos = {seed: real_video(run, {a: models[a][seed] for a in args.arm_list}, data["heldout_video"], seed, args, out)
              for seed in args.seed_list}
    held_frames = sorted(Path(data["heldout_video"]).glob("*.jpg"))
    t_real = time.perf_counter()
    confusions = {arm: {seed: real_confusions(m, f"{arm}-s{seed}" if seed is not None else arm, held_frames,
                                              data["heldout_annotations"], out)
                        for seed, m in by_seed.items()} for arm, by_seed in models.items()}
    run.times["real-miou"] = round(time.perf_counter() - t_real, 1)

    summary = aggregate(args, models, evals, videos, confusions, sets)
    summary.update({"date": started.isoformat(timespec="seconds"), "command": shlex.join(sys.argv),
                    "total_s_this_invocation": round(time.perf_counter() - t0, 1), "stage_s": run.times,
                    "settings": settings, "data": data["picked"], "training": training_info(models),
                    "machine": machine(), "git": git_state(), "versions": versions(torch=True)})
    atomic_write_json(out / "summary.json", summary)
    text = render(summary, args)
    atomic_write_text(out / "summary.md", text)
    print(text)
    return 0


def aggregate(args, models, evals, videos, confusions, sets) -> dict:
    """Per-arm mean +- std over seeds and paired differences to the control (see the module docstring)."""
    rng = np.random.default_rng(0)
    seeds, arms = args.seed_list, args.arm_list
    per_arm: dict[str, dict] = {}
    diffs: dict[str, dict] = {}
    for arm in ["baseline", *arms]:
        row: dict[str, dict] = {}
        for set_name in sets:
            for metric in SYN_METRICS:
                row[f"{set_name}/{metric}"] = mean_std([evals[arm][s][set_name]["metrics"][metric] for s in models[arm]])
        for s in models[arm]:
            cms = confusions[arm][s]
            row.setdefault("real/mIoU", {"values": []})["values"].append(pooled_miou_stat(cms))
        row["real/mIoU"] = mean_std(row["real/mIoU"]["values"])
        if arm != "baseline":
            for metric in VIDEO_METRICS:
                row[f"video/{metric}"] = mean_std([video_metric(videos[s], models[arm][s], metric) for s in seeds])
                row[f"video/d{metric}_vs_baseline"] = vs_baseline(videos, models[arm], metric, seeds, rng, args.bootstrap)
        per_arm[arm] = row
    for arm in arms:
        if arm == "control":
            continue
        d: dict[str, dict] = {}
        for set_name in sets:
            units = {s: syn_units(evals[arm][s][set_name]) for s in seeds}
            ref = {s: syn_units(evals["control"][s][set_name]) for s in seeds}
            for metric in SYN_METRICS:
                stat = pooled_miou_stat if metric == "mIoU_syn" else nanmean_stat
                d[f"{set_name}/{metric}"] = paired_bootstrap(np.stack([units[s][metric] for s in seeds]),
                                                             np.stack([ref[s][metric] for s in seeds]), stat, rng,
                                                             args.bootstrap)
        for metric in VIDEO_METRICS:
            a = np.stack([pair_rates(videos[s], video_name(videos[s], models[arm][s]), metric) for s in seeds])
            c = np.stack([pair_rates(videos[s], video_name(videos[s], models["control"][s]), metric) for s in seeds])
            keep = ~np.isnan(a).any(axis=0) & ~np.isnan(c).any(axis=0)
            d[f"video/{metric}"] = paired_bootstrap(a[:, keep], c[:, keep], nanmean_stat, rng, args.bootstrap)
        d["real/mIoU"] = paired_bootstrap(np.stack([confusions[arm][s] for s in seeds]),
                                          np.stack([confusions["control"][s] for s in seeds]), pooled_miou_stat, rng,
                                          args.bootstrap)
        diffs[arm] = d
    return {"per_arm": per_arm, "diff_vs_control": diffs,
            "interval": "95 % percentile interval, two-level bootstrap: seeds resampled, then evaluation units "
                        "(synthetic sequences / real frame pairs / real frames) resampled, paired by seed and unit"}


def video_name(results: dict, model_path: str) -> str:
    """The name ``stabbench video`` gave the model at ``model_path``."""
    for name, info in results["model"].items():
        if info.get("path") and Path(info["path"]).resolve() == Path(model_path).resolve():
            return name
    raise SystemExit(f"{model_path}: not among the models of the video results")


def video_metric(results: dict, model_path: str, metric: str) -> float:
    return results["metrics"][video_name(results, model_path)][metric]


def vs_baseline(videos, by_seed, metric, seeds, rng, resamples) -> dict:
    """Real video: difference to the baseline (the reference), mean over seeds, two-level bootstrap,
    and the tool's own per-seed differences and intervals."""
    a, c, tool = [], [], {}
    for s in seeds:
        name = video_name(videos[s], by_seed[s])
        ref = videos[s]["reference"]["name"]
        a.append(pair_rates(videos[s], name, metric))
        c.append(pair_rates(videos[s], ref, metric))
        row = videos[s]["metrics"][name]
        tool[s] = {k: row[k] for k in (f"d{metric}", f"d{metric}_lo", f"d{metric}_hi", f"{metric}_verdict")}
    a_, c_ = np.stack(a), np.stack(c)
    keep = ~np.isnan(a_).any(axis=0) & ~np.isnan(c_).any(axis=0)
    return {**paired_bootstrap(a_[:, keep], c_[:, keep], nanmean_stat, rng, resamples), "tool_per_seed": tool}


def training_info(models) -> dict:
    info = {}
    for arm, by_seed in models.items():
        for seed, path in by_seed.items():
            if seed is None:
                continue
            run_dir = Path(path).parent
            cfg = json.loads((run_dir / CONFIG_FILE).read_text())
            rows = (run_dir / TRAIN_LOG).read_text().splitlines()
            header = rows[0].split(",")
            last = dict(zip(header, rows[-1].split(",")))
            seg = [float(dict(zip(header, r.split(",")))["seg"]) for r in rows[1:]]
            k = max(1, len(seg) // 5)
            info[f"{arm}-s{seed}"] = {"elapsed_s": cfg["result"]["elapsed_s"], "steps": len(seg),
                                      "seg_first_20pct": statistics.mean(seg[:k]), "seg_last_20pct": statistics.mean(seg[-k:]),
                                      "last": {key: float(last[key]) for key in ("total", "seg", "bc", "gc", "liu")}}
    return info


def fmt(cell: dict) -> str:
    return f"{cell['mean']:.2f}" if cell["n"] == 1 or np.isnan(cell["std"]) else f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def fmt_diff(cell: dict) -> str:
    lo, hi = cell["ci95"]
    return f"{cell['diff']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def render(summary: dict, args) -> str:
    per, diffs = summary["per_arm"], summary["diff_vs_control"]
    cols = [("heldout/S_global", "S_g held-out syn"), ("heldout/S_boundary", "S_b held-out syn"),
            ("heldout/mIoU_syn", "mIoU(syn) held-out"), ("train/S_global", "S_g train syn"),
            ("train/S_boundary", "S_b train syn"), ("train/mIoU_syn", "mIoU(syn) train"),
            ("real/mIoU", "mIoU real held-out")]
    lines = [f"Arms x seeds {', '.join(map(str, args.seed_list))}: mean ± std over seeds (percent).", "",
             "| model | " + " | ".join(c[1] for c in cols) + " | real ΔS_g vs baseline | real ΔS_b vs baseline |",
             "|---" * (len(cols) + 3) + "|"]
    order = ["baseline", *[a for a in ("bc", "gc", "cl", "control", "liu") if a in per]]
    for arm in order:
        row = per[arm]
        real = ([fmt_diff(row[f"video/d{m}_vs_baseline"]) for m in VIDEO_METRICS] if arm != "baseline" else ["0", "0"])
        lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(fmt(row[c]) for c, _ in cols) + " | " + " | ".join(real) + " |")
    lines += ["", "Paired difference to the control (points, mean over seeds) [95 % interval, "
                  "two-level bootstrap over seeds and sequences / frame pairs / frames]:", "",
              "| arm | " + " | ".join(c[1] for c in cols) + " | real S_g | real S_b |", "|---" * (len(cols) + 3) + "|"]
    for arm in order:
        if arm in diffs:
            d = diffs[arm]
            lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(fmt_diff(d[c]) for c, _ in cols) + " | "
                         + " | ".join(fmt_diff(d[f"video/{m}"]) for m in VIDEO_METRICS) + " |")
    lines += ["", "Real video, `stabbench video`'s own comparison with the baseline per seed: dS_boundary "
                  "[95 % interval, frame pairs resampled], verdict:", "", "| arm | " + " | ".join(
                      f"seed {s}" for s in args.seed_list) + " |", "|---" * (len(args.seed_list) + 1) + "|"]
    for arm in order[1:]:
        tool = per[arm]["video/dS_boundary_vs_baseline"]["tool_per_seed"]
        lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(
            f"{t['dS_boundary']:+.2f} [{t['dS_boundary_lo']:+.2f}, {t['dS_boundary_hi']:+.2f}] {t['S_boundary_verdict']}"
            for t in (tool[s] for s in args.seed_list)) + " |")
    lines += ["", "| run | seg CE first / last 20 % of steps | last bc | last gc | last liu | train s |", "|---" * 6 + "|"]
    for name, t in summary["training"].items():
        lines.append(f"| {name} | {t['seg_first_20pct']:.3f} / {t['seg_last_20pct']:.3f} | {t['last']['bc']:.3f} | "
                     f"{t['last']['gc']:.3f} | {t['last']['liu']:.4f} | {t['elapsed_s']:.0f} |")
    lines.append(f"\nTotal time of this invocation: {summary['total_s_this_invocation'] / 60:.1f} min")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
