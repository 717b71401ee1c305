"""Plot S_global and S_boundary against severity, one line per perturbation (PNG).

Both panels share one fixed y axis, from ``min(floor, lowest value)`` to 100 (so that 100
is drawn at the same height whatever the data, and the two metrics compare at a glance);
each point is annotated with the number of sequences behind it (for S_boundary: those that
counted for it); a severity a perturbation has no value at breaks its line (no segment is
drawn across it); titles carry a short model name (:func:`short_model_name`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from stabbench.fileio import atomic_write

#: The y axis starts here unless a value lies lower (then a little below that value).
Y_FLOOR = 90.0
#: Room above 100 so that points at 100 are not cut by the frame.
Y_HEADROOM = 0.5
#: The number of sequences behind each point of each panel (``results.json`` per-cell keys).
COUNT_KEYS = {"S_global": "sequences", "S_boundary": "boundary_sequences"}


def short_model_name(name: str, limit: int = 40) -> str:
    """A model name short enough for a title: the file name of a path, the module and factory
    of ``package.module:factory``, the middle of anything still longer than ``limit`` elided.

        >>> short_model_name("runs/2024/base/model.pt2")
        'model.pt2'
        >>> short_model_name("mypkg.models.unet:build")
        'unet:build'
        >>> short_model_name("builtin:flicker,rate=0.1")
        'builtin:flicker,rate=0.1'
    """
    name = str(name).strip()
    if "/" in name or "\\" in name:
        name = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or name
    elif ":" in name and not name.startswith(("builtin:", "arch:")):
        module, _, factory = name.partition(":")
        name = f"{module.rsplit('.', 1)[-1]}:{factory}"
    if len(name) > limit:
        keep = limit - 3
        name = name[: (keep + 1) // 2] + "..." + name[len(name) - keep // 2:]
    return name


def severity_series(rows: list[dict], perturbation: str, metric: str, severities: list[int]) -> tuple[list, list]:
    """``(values, counts)`` of one perturbation at each of ``severities``: NaN (and count 0)
    where it has no row or no value, so that a line drawn through them breaks there."""
    by_severity = {int(r["severity"]): r for r in rows if r["perturbation"] == perturbation}
    values, counts = [], []
    for severity in severities:
        row = by_severity.get(severity, {})
        value = row.get(metric)
        values.append(float("nan") if value is None else float(value))
        counts.append(int(row.get(COUNT_KEYS[metric]) or 0) if row else 0)
    return values, counts


def y_limits(rows: list[dict], floor: float = Y_FLOOR) -> tuple[float, float]:
    """The shared y range: ``(min(floor, lowest finite value - 1), 100 + headroom)``."""
    finite = [float(r[m]) for r in rows for m in COUNT_KEYS if r.get(m) is not None and math.isfinite(float(r[m]))]
    low = min([floor, *(v - 1.0 for v in finite)])
    return math.floor(low), 100.0 + Y_HEADROOM


def render_stability_vs_severity(rows: list[dict], title: str = "") -> bytes | None:
    """The plot as PNG bytes (deterministic: no date or software stamp); ``None`` (with a
    warning) when matplotlib is not installed.

    Args:
        rows: dicts with keys ``perturbation``, ``severity``, ``S_global``, ``S_boundary`` and
            optionally ``sequences``, ``boundary_sequences`` (the counts annotated).
        title: the model's name (shortened with :func:`short_model_name`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install 'stabbench[plot]'): no plot written", stacklevel=2)
        return None
    import io

    fig = _figure(plt, rows, title)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def _figure(plt, rows: list[dict], title: str):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    severities = sorted({int(r["severity"]) for r in rows}) or [1]
    for ax, metric in zip(axes, COUNT_KEYS):
        for name in sorted({r["perturbation"] for r in rows}):
            _draw_series(ax, severities, *severity_series(rows, name, metric, severities), label=name)
        ax.set_xlabel("severity")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{metric} (n = {COUNT_KEYS[metric].replace('_', ' ')} per point)", fontsize=9)
        ax.set_xticks(severities)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylim(*y_limits(rows))
    axes[1].tick_params(labelleft=True)  # sharey hides them: each panel reads on its own
    axes[0].axhline(100.0, color="0.6", linewidth=0.6, zorder=0)
    axes[1].axhline(100.0, color="0.6", linewidth=0.6, zorder=0)
    if rows:
        axes[0].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(short_model_name(title), fontsize=10)
    fig.tight_layout()
    return fig


def _draw_series(ax, severities: list[int], values: list[float], counts: list[int], label: str) -> None:
    """One perturbation's line (NaN gaps break it) with ``n`` beside each point."""
    (line,) = ax.plot(severities, values, marker="o", markersize=4, label=label)
    for severity, value, count in zip(severities, values, counts):
        if math.isfinite(value):
            ax.annotate(str(count), (severity, value), textcoords="offset points", xytext=(4, 3), fontsize=6,
                        color=line.get_color())


def plot_stability_vs_severity(rows: list[dict], path: Path, title: str = "") -> bool:
    """Write the plot as a PNG file (atomically); return False (with a warning) when
    matplotlib is not installed. Arguments as :func:`render_stability_vs_severity`."""
    png = render_stability_vs_severity(rows, title)
    if png is None:
        return False
    atomic_write(Path(path), lambda handle: handle.write(png))
    return True
