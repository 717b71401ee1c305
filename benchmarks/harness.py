"""The one harness every benchmark script uses: interleaved timing, memory in a child
process, run metadata and the result writer. The method is described once, in
``benchmarks/README.md``; this module is its implementation.

- :func:`interleaved`: warm-up round(s), then ``rounds`` rounds in which every case runs
  once, in an order rotated by one case per round; per case the raw samples, median and
  IQR; per case the ratio to a baseline (or floor) case: ratio of the medians and the
  per-round ratios (each case against the baseline of the same round).
- :func:`peak_memory`: runs a function in a fresh ``spawn`` child process and returns its
  peak RSS (``VmHWM``; ``ru_maxrss`` as a fallback and for reference), its RSS before the
  function ran and, on request, the tracemalloc peak.
- :func:`write_result`: ``benchmarks/results/<stabbench version>/<name>.json`` (``--quick``:
  ``benchmarks/out/<version>/<name>.json``, git-ignored), sorted keys, written atomically,
  with the command line, date, machine, git commit, versions, seeds and parameters.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the scripts run as ``python benchmarks/bench_x.py`` from anywhere
    sys.path.insert(0, str(REPO))

SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_DAVIS = SHARED_DATA / "davis-sample"
RESULTS_DIR = REPO / "benchmarks" / "results"
OUT_DIR = REPO / "benchmarks" / "out"


# --------------------------------------------------------------------------- metadata


def machine() -> dict:
    """CPU model and count, memory, platform, Python and the load average now."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except (OSError, ValueError):
        pass
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": round(mem_kib / 2**20, 1) if mem_kib else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1_5_15": loadavg(),
    }


def loadavg() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def git_state() -> dict:
    """HEAD commit and the files with uncommitted changes (tracked or not) at the time of the run."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    dirty = [] if status is None else [line[3:] for line in status.splitlines() if line.strip()]
    return {"commit": commit.strip() if commit else None, "dirty_files": len(dirty), "dirty": dirty[:50]}


def versions(*, torch: bool = False) -> dict:
    """stabbench, Python, NumPy, OpenCV (and torch, with its thread count, on request)."""
    from stabbench.fileio import versions as stamp

    return stamp(torch=torch)


def stabbench_version() -> str:
    from stabbench import __version__

    return __version__


# --------------------------------------------------------------------------- statistics


def summarize(samples: list[float]) -> dict:
    """Median, quartiles (inclusive method), IQR, min, max and the raw samples."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("no samples")
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {"samples": values, "n": len(values), "median": statistics.median(values), "q1": q1, "q3": q3,
            "iqr": q3 - q1, "min": min(values), "max": max(values)}


def ratio(result: dict, case: str, baseline: str) -> dict:
    """``case`` against ``baseline`` in an :func:`interleaved` result: the ratio of the medians
    and the summary of the per-round ratios (same round, so the same machine load)."""
    cases = result["cases"]
    num, den = cases[case]["samples"], cases[baseline]["samples"]
    per_round = [a / b for a, b in zip(num, den)]
    return {"case": case, "baseline": baseline, "of_medians": cases[case]["median"] / cases[baseline]["median"],
            "per_round": summarize(per_round)}


# --------------------------------------------------------------------------- timing


def interleaved(
    rounds: int,
    cases: Mapping[str, Callable[[], Any]],
    *,
    baseline: str | None = None,
    warmup: int = 1,
    prepare: Callable[[], Any] | None = gc.collect,
    rotate: bool = True,
    log: bool = True,
) -> dict:
    """Time every case of ``cases`` ``rounds`` times, interleaved.

    ``warmup`` untimed rounds first (each case once per round, in the given order: imports,
    caches, page cache). Then ``rounds`` timed rounds; in round ``r`` the cases run in the
    given order rotated by ``r`` (with ``rotate``), so no case always runs first or after
    the same neighbour. Before each call ``prepare()`` runs untimed (default
    ``gc.collect``). A call is timed with ``time.perf_counter``; a case that must do
    untimed work inside its call (make a fresh folder, flush the page cache) times itself
    and returns its seconds as a ``float``, which is then the sample.

    Returns ``{"rounds", "warmup", "order", "cases": {name: summarize(seconds)},
    "baseline", "ratios": {name: ratio(..., name, baseline)}}``.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    if baseline is not None and baseline not in cases:
        raise ValueError(f"baseline {baseline!r} is not one of the cases {list(cases)}")
    names = list(cases)

    def call(name: str) -> float:
        if prepare is not None:
            prepare()
        t0 = time.perf_counter()
        got = cases[name]()
        elapsed = time.perf_counter() - t0
        return float(got) if isinstance(got, (int, float)) and not isinstance(got, bool) else elapsed

    for _ in range(warmup):
        for name in names:
            call(name)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)] if rotate else names
        for name in order:
            samples[name].append(call(name))
        if log:
            text = ", ".join(f"{n} {samples[n][-1]:.4g} s" for n in names)
            print(f"  round {r + 1}/{rounds}: {text}", file=sys.stderr, flush=True)
    result: dict = {"rounds": rounds, "warmup": warmup, "order": "rotated" if rotate else "fixed",
                    "cases": {name: summarize(samples[name]) for name in names}, "baseline": baseline, "ratios": {}}
    if baseline is not None:
        result["ratios"] = {name: ratio(result, name, baseline) for name in names if name != baseline}
    return result


def timing_table(result: dict, *, per: int | None = None, unit: str = "ms", per_label: str = "") -> str:
    """Markdown table of an :func:`interleaved` result: median (IQR) per case, and the ratio
    to the baseline (of the medians; per-round median and range). ``per``: divide the
    times by this count (e.g. frames or pairs) and label the column ``per_label``."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    div = per or 1
    head = f"time per {per_label}, median (IQR)" if per else "time per call, median (IQR)"
    base = result.get("baseline")
    lines = [f"| case | {head} | ratio to `{base}` (of medians; per round: median, min-max) |" if base
             else f"| case | {head} |", "|---|---|---|" if base else "|---|---|"]
    for name, s in result["cases"].items():
        cell = f"{s['median'] * scale / div:.4g} {unit} ({s['q1'] * scale / div:.4g}-{s['q3'] * scale / div:.4g})"
        if not base:
            lines.append(f"| {name} | {cell} |")
            continue
        if name == base:
            lines.append(f"| {name} | {cell} | 1 (baseline) |")
            continue
        r = result["ratios"][name]
        pr = r["per_round"]
        lines.append(f"| {name} | {cell} | **{r['of_medians']:.3g}x** ({pr['median']:.3g}, {pr['min']:.3g}-{pr['max']:.3g}) |")
    return "\n".join(lines)


def profile(fn: Callable[[], Any], top: int = 25, sort: str = "tottime") -> str:
    """cProfile of one call of ``fn`` (the calling thread only); the ``top`` rows as text."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(top)
    return buf.getvalue()


def train_step_cases(runs: Mapping[str, tuple]) -> tuple[dict[str, Callable[[], None]], dict[str, list[dict]]]:
    """Timed cases of one fine-tuning step per run (``runs``: name -> ``(TrainRun, TrainState)``)
    and the stage times each call records (``StageTimer`` seconds, appended per call).

    The data position is not advanced by ``train_step``: every call trains on the same
    labelled images (and the next pairs), so the cases are comparable round after round.
    """
    from stabbench.training.loop import StageTimer, train_step

    stages: dict[str, list[dict]] = {name: [] for name in runs}

    def case_of(name: str) -> Callable[[], None]:
        run, state = runs[name]

        def case() -> None:
            timer = StageTimer()
            train_step(run, state, timer)
            stages[name].append(dict(timer.seconds))
        return case

    return {name: case_of(name) for name in runs}, stages


# --------------------------------------------------------------------------- memory


def proc_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in KiB (``VmHWM``: peak RSS of this process
    image; ``VmRSS``: now); ``None`` where /proc is not available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _memory_child(fn: Callable, args: tuple, kwargs: dict, warmup: Callable | None, trace: bool) -> dict:
    import resource
    import tracemalloc

    if warmup is not None:
        warmup()
    gc.collect()
    rss_before = proc_status_kib("VmRSS")
    if trace:
        tracemalloc.start()
    value = fn(*args, **kwargs)
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    hwm = proc_status_kib("VmHWM")
    # the largest of fn's own child processes (workers) that ended: an upper bound of each
    # one's peak (ru_maxrss can carry the parent's RSS over fork + exec); 0 if none
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"children_max_rss_kib": children, "peak_rss_kib": hwm if hwm is not None else maxrss, "peak_rss_source": "VmHWM" if hwm is not None else "ru_maxrss",
            "ru_maxrss_kib": maxrss, "rss_before_kib": rss_before, "tracemalloc_peak_bytes": traced_peak,
            "value": value}


def peak_memory(fn: Callable, *args: Any, warmup: Callable | None = None, trace: bool = False, **kwargs: Any) -> dict:
    """Run ``fn(*args, **kwargs)`` in a fresh child process (multiprocessing, ``spawn``) and
    return its memory: ``peak_rss_kib`` (``VmHWM`` of ``/proc/self/status``: the child's
    peak RSS; ``ru_maxrss`` where /proc is missing: on Linux it can carry a high-water mark
    over fork + exec, so it is reported as ``ru_maxrss_kib`` but not preferred),
    ``rss_before_kib`` (after imports and ``warmup()``, just before ``fn``),
    ``tracemalloc_peak_bytes`` (with ``trace``: tracemalloc runs around ``fn`` only; the
    RSS peak then includes its bookkeeping) and ``value``, what ``fn`` returned.

    ``fn``, ``warmup`` and the arguments must be picklable: module-level functions. The
    child imports the calling script again (as ``__mp_main__``), so a script's top-level code
    must be under ``if __name__ == "__main__"``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_memory_child, fn, args, kwargs, warmup, trace).result()


# --------------------------------------------------------------------------- arguments, data, results


def add_arguments(parser: argparse.ArgumentParser, *, rounds: int, warmup: int = 1) -> None:
    """The options every benchmark has: ``--rounds``, ``--warmup``, ``--quick``, ``--no-save``."""
    parser.add_argument("--rounds", type=int, default=rounds, help="timed interleaved rounds")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed warm-up rounds before them")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small sizes, few rounds; the JSON goes to benchmarks/out/ (git-ignored), "
                             "not benchmarks/results/")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON result")


def add_davis_arguments(parser: argparse.ArgumentParser, *, sources: int) -> None:
    """``--davis`` (the DAVIS-2016 sample root) and ``--sources`` (how many of its videos, 6 sequences each)."""
    parser.add_argument("--davis", default=str(DEFAULT_DAVIS), help="DAVIS-2016 sample root")
    parser.add_argument("--sources", type=int, default=sources, help="source images (6 sequences each)")


def require_dir(path: str | Path, what: str, hint: str = "") -> Path:
    """``path`` as a Path if it is a folder; otherwise exit with status 2 and a message."""
    path = Path(path)
    if not path.is_dir():
        extra = f"; {hint}" if hint else ""
        print(f"error: {what} not found at {path} (it is read in place from ../shared/data, never copied "
              f"into the repository){extra}", file=sys.stderr)
        raise SystemExit(2)
    return path


def result_path(name: str, *, quick: bool) -> Path:
    """``benchmarks/results/<version>/<name>.json``; with ``quick``, under ``benchmarks/out/``."""
    return (OUT_DIR if quick else RESULTS_DIR) / stabbench_version() / f"{name}.json"


def command_line() -> str:
    """The command that reproduces the run, from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPO))
    except ValueError:
        script_text = str(script)
    return " ".join([".venv/bin/python", shlex.quote(script_text), *(shlex.quote(a) for a in sys.argv[1:])])


def new_record(name: str, args: argparse.Namespace, *, seeds: dict, parameters: dict, torch: bool = False) -> dict:
    """The metadata part of a result, taken at the start of a run."""
    return {
        "benchmark": name,
        "command": command_line(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "machine": machine(),
        "git": git_state(),
        "versions": versions(torch=torch),
        "seeds": seeds,
        "parameters": {"rounds": args.rounds, "warmup": args.warmup, **parameters},
        "_started": time.perf_counter(),
    }


def portable(value: Any) -> Any:
    """``value`` with every absolute path inside the work area (the checkout's parent folder)
    written relative to the checkout (``../shared/data/davis-sample``): a committed result
    never names a path of the machine it ran on."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        try:
            return os.path.relpath(value, REPO) if Path(value).is_relative_to(REPO.parent) else value
        except ValueError:
            return value
    return value


def write_result(record: dict, args: argparse.Namespace) -> Path | None:
    """Complete ``record`` (wall time, load average at the end) and write it atomically to
    :func:`result_path` as sorted JSON; ``None`` with ``--no-save``."""
    from stabbench.fileio import atomic_write_json

    record = portable(dict(record))
    started = record.pop("_started", None)
    if started is not None:
        record["wall_s"] = round(time.perf_counter() - started, 1)
    record["loadavg_at_end"] = loadavg()
    if args.no_save:
        return None
    path = result_path(record["benchmark"], quick=args.quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    print(f"# wrote {path.relative_to(REPO)}", file=sys.stderr)
    return path


def header(record: dict) -> str:
    """One line for the top of a script's markdown output."""
    m, v = record["machine"], record["versions"]
    load = m["loadavg_1_5_15"][0] if m.get("loadavg_1_5_15") else float("nan")
    commit = (record["git"]["commit"] or "?")[:7]
    return (f"{record['benchmark']}: stabbench {v['stabbench']}, commit {commit} (+{record['git']['dirty_files']} "
            f"uncommitted), {m['cpu']} x {m['cpus_usable']}, load {load:.1f}; command: `{record['command']}`")


__all__ = [
    "DEFAULT_DAVIS",
    "OUT_DIR",
    "REPO",
    "RESULTS_DIR",
    "SHARED_DATA",
    "add_arguments",
    "add_davis_arguments",
    "git_state",
    "header",
    "interleaved",
    "machine",
    "new_record",
    "peak_memory",
    "proc_status_kib",
    "profile",
    "ratio",
    "require_dir",
    "result_path",
    "summarize",
    "timing_table",
    "versions",
    "write_result",
]
