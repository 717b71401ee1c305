"""Helpers shared by the benchmark scripts: paths, machine description, git state, memory."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DAVIS = REPO.parent / "shared" / "data" / "davis-sample"
OUT_DIR = REPO / "benchmarks" / "out"


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
    try:
        mem_kib = int(next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")))
    except (OSError, StopIteration, ValueError):
        mem_kib = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": round(mem_kib / 2**20, 1) if mem_kib else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1_5_15": load,
        "load_avg_1min": load[0] if load else None,
    }


def git_state() -> dict:
    """HEAD commit and the number of files with uncommitted changes."""

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": None if status is None else len(status.splitlines())}


def proc_status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB (``VmHWM``: this process image's peak RSS).

    ``getrusage``'s ``ru_maxrss`` is not used: Linux carries the parent's high-water mark over
    fork + exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")
