"""Plot S_global and S_boundary against severity, one line per perturbation (PNG)."""

from __future__ import annotations

import warnings
from pathlib import Path

from stabbench.fileio import atomic_write


def plot_stability_vs_severity(rows: list[dict], path: Path, title: str = "") -> bool:
    """Write the plot; return False (with a warning) when matplotlib is not installed.

    Args:
        rows: dicts with keys ``perturbation``, ``severity``, ``S_global``, ``S_boundary``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install 'stabbench[plot]'): no plot written", stacklevel=2)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    perturbations = sorted({r["perturbation"] for r in rows})
    for ax, metric in zip(axes, ("S_global", "S_boundary")):
        for name in perturbations:
            pts = sorted((int(r["severity"]), float(r[metric])) for r in rows if r["perturbation"] == name)
            pts = [(s, v) for s, v in pts if v == v]  # drop NaN
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xlabel("severity")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(Path(path), lambda handle: fig.savefig(handle, format="png", dpi=100, metadata={"Software": None}))
    finally:
        plt.close(fig)
    return True
