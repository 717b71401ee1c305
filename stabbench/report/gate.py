"""``stabbench gate``: compare a result with thresholds and/or a baseline row.

A result is either a ``results.json`` written by ``stabbench eval`` or a row of a
leaderboard CSV (selected by model identifier). Thresholds are ``METRIC=VALUE`` (the result
must be at least VALUE); a baseline row allows the result to fall at most ``tolerance``
points below it. The outcome lists every check with its margin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stabbench.errors import EXIT_CHECK_FAILED, EXIT_OK, DataError, UsageError
from stabbench.report.leaderboard import METRICS, read_rows


@dataclass(frozen=True)
class Check:
    metric: str
    value: float
    required: float
    source: str  # "threshold" or "baseline <model>"

    @property
    def margin(self) -> float:
        return self.value - self.required

    @property
    def passed(self) -> bool:
        return self.value >= self.required


def parse_threshold(text: str) -> tuple[str, float]:
    """``"S_boundary=94.0"`` -> ``("S_boundary", 94.0)``; ValueError on anything else."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in METRICS:
        raise ValueError(f"threshold {text!r} must be METRIC=VALUE with METRIC one of {', '.join(METRICS)}")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"threshold {text!r}: {value!r} is not a number") from None


def load_metrics(path: Path, model: str | None = None) -> dict[str, float]:
    """Headline metrics from a ``results.json`` (or an eval output folder) or a leaderboard row."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise DataError(path, "result file not found")
    if path.suffix == ".json":
        try:
            metrics = json.loads(path.read_text())["metrics"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(path, f"not a stabbench results.json ({exc.__class__.__name__}: {exc})") from None
    else:
        metrics = select_row(path, model)
    try:
        return {m: float(metrics[m]) for m in METRICS}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"missing or non-numeric metric ({exc})") from None


def select_row(path: Path, model: str | None) -> dict:
    """The (last) leaderboard row of ``model``; the only row when ``model`` is None."""
    rows = read_rows(path)
    if model is not None:
        rows = [r for r in rows if r["model"] == model]
    if not rows:
        raise DataError(path, f"no row for model {model!r}" if model else "leaderboard is empty")
    if model is None and len({r["model"] for r in rows}) > 1:
        raise DataError(path, "several models in this leaderboard; name one with --model / --baseline-model")
    return rows[-1]


@dataclass(frozen=True)
class GateReport:
    """The outcome of ``stabbench gate``: every check, the lines to print, the exit code."""

    checks: tuple[Check, ...]

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when every check passed, 1 when one fell short."""
        return EXIT_CHECK_FAILED if self.failed else EXIT_OK

    def lines(self) -> list[str]:
        out = [
            f"{'ok  ' if c.passed else 'FAIL'} {c.metric:<11} {c.value:8.3f}  required >= {c.required:8.3f} "
            f"({c.source})  margin {c.margin:+.3f}"
            for c in self.checks
        ]
        n = len(self.checks)
        out.append(f"gate: {self.failed} of {n} checks fell short" if self.failed else f"gate: all {n} checks passed")
        return out


def gate(result_path: Path, model: str | None, thresholds: tuple[str, ...], baseline: Path | None,
         baseline_model: str | None, tolerance: float) -> GateReport:
    """Load the result (and baseline) and run every check; UsageError for bad thresholds or nothing to check."""
    try:
        parsed = [parse_threshold(t) for t in thresholds]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not parsed and baseline is None:
        raise UsageError("nothing to check: give --min METRIC=VALUE and/or --baseline")
    result = load_metrics(result_path, model)
    base = load_metrics(baseline, baseline_model) if baseline is not None else None
    return GateReport(tuple(run_checks(result, parsed, base, f"baseline {baseline_model or baseline}", tolerance)))


def run_checks(
    result: dict[str, float],
    thresholds: list[tuple[str, float]],
    baseline: dict[str, float] | None = None,
    baseline_name: str = "baseline",
    tolerance: float = 0.0,
    metrics: tuple[str, ...] = METRICS,
) -> list[Check]:
    """Every check: each threshold, then each of ``metrics`` against the baseline - tolerance."""
    checks = [Check(m, result[m], v, "threshold") for m, v in thresholds]
    if baseline is not None:
        checks += [Check(m, result[m], baseline[m] - tolerance, baseline_name) for m in metrics]
    return checks
