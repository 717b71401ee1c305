"""``stabbench gate``: compare a result with thresholds and/or a comparable baseline.

A result is a ``results.json`` written by ``stabbench eval`` (or its folder) or a row of a
leaderboard CSV (selected by its name, ``--model``). Thresholds are ``METRIC=VALUE`` (the
result must be at least VALUE); a baseline allows the result to fall at most ``tolerance``
points below it.

Only comparable results are compared: a baseline must share the result's set (manifest
sha256), protocol version, boundary width and metric definitions, else the gate refuses
(:class:`DataError`, exit 3) listing what differs, unless ``allow_different_set``. From a
leaderboard with several rows for the baseline's name, the row of the result's set is taken.
A result whose model produced NaN/Inf outputs fails the gate. Values are compared at the
precision they are stored with (a leaderboard written by an older stabbench rounded to 4
decimals: the result is rounded alike).

What is read is range-checked before anything is compared: a metric the gate checks is a
percentage in [0, 100] and a count (``non_finite``) a non-negative integer. Anything else (S =
150, NaN, inf, null, a negative count), in the result or in the baseline, is an invalid result
(:class:`DataError`, exit 3, naming the file and the field), never a pass or a fail.

A real-video result (``stabbench video``: ``kind`` real-video) is never compared with a
synthetic one, not even with ``allow_different_set`` (:class:`DataError`, exit 3): its S
is measured on estimated correspondences and means something else. Its metrics are
S_global and S_boundary (no mIoU_syn); from a real-video ``results.json`` holding several
models, ``model`` names the one checked.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from stabbench.errors import EXIT_CHECK_FAILED, EXIT_OK, DataError, UsageError
from stabbench.report.leaderboard import METRICS, read_rows
from stabbench.report.results import REAL_VIDEO, SYNTHETIC

#: What makes two results comparable (leaderboard column names).
IDENTITY = ("set_sha256", "protocol_version", "boundary_width", "definitions")
#: The headline metrics (stability rates, mIoU) are percentages: what the gate reads must lie here.
PERCENT_RANGE = (0.0, 100.0)


def metrics_of(kind: str) -> tuple[str, ...]:
    """The metrics a result of this kind defines (real video has no mIoU_syn)."""
    return tuple(m for m in METRICS if m != "mIoU_syn") if kind == REAL_VIDEO else METRICS


def percentage(path: Path, where: str, value) -> float:
    """``value`` (a number read from JSON) as a percentage in :data:`PERCENT_RANGE`; an invalid
    result otherwise (NaN, inf, out of range, null, not a number): :class:`DataError` naming
    ``path`` and the field ``where``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"invalid result: {where} is {value!r}, "
                              f"{'null (not measured)' if value is None else 'non-numeric'}")
    if not math.isfinite(value):
        raise DataError(path, f"invalid result: {where} is {value!r}, not a finite number")
    low, high = PERCENT_RANGE
    if not low <= value <= high:
        raise DataError(path, f"invalid result: {where} is {value!r}, outside [{low:g}, {high:g}] (a percentage)")
    return float(value)


def cell_percentage(path: Path, where: str, cell: str) -> float:
    """A CSV cell as a percentage (see :func:`percentage`)."""
    try:
        return percentage(path, where, float(cell))
    except ValueError:
        raise DataError(path, f"invalid result: {where} is {cell!r}, non-numeric") from None


def count(path: Path, where: str, value) -> int:
    """``value`` (an integer read from JSON) as a count, a non-negative integer; an invalid result
    otherwise: :class:`DataError` naming ``path`` and the field ``where``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DataError(path, f"invalid result: {where} is {value!r}, not a non-negative integer (a count)")


def cell_count(path: Path, where: str, cell: str) -> int:
    """A CSV cell as a count (see :func:`count`): digits only."""
    return count(path, where, int(cell) if re.fullmatch(r"[0-9]+", cell) else cell)


@dataclass(frozen=True)
class Result:
    """A result's headline metrics, what identifies its measurement, and where it came from."""

    metrics: dict[str, float]
    identity: dict[str, str]
    source: str
    non_finite: int = 0
    decimals: dict[str, int | None] = field(default_factory=dict)
    kind: str = SYNTHETIC

    @property
    def checked_metrics(self) -> tuple[str, ...]:
        """The metrics a result of this kind defines (real video has no mIoU_syn)."""
        return metrics_of(self.kind)


@dataclass(frozen=True)
class Check:
    metric: str
    value: float
    required: float
    source: str  # "threshold", "baseline <model>" or "model outputs"
    decimals: int | None = None  # compare at this precision (the baseline's stored precision)

    @property
    def margin(self) -> float:
        return self.value - self.required

    @property
    def passed(self) -> bool:
        if self.decimals is None:
            return self.value >= self.required
        return round(self.value, self.decimals) >= round(self.required, self.decimals)


def parse_threshold(text: str) -> tuple[str, float]:
    """``"S_boundary=94.0"`` -> ``("S_boundary", 94.0)``; ValueError on anything else (NaN included)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in METRICS:
        raise ValueError(f"threshold {text!r} must be METRIC=VALUE with METRIC one of {', '.join(METRICS)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"threshold {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"threshold {text!r}: the value must be a finite number")
    return name, number


def _decimals(text: str) -> int | None:
    """Decimals a CSV cell was rounded to (``None``: full precision, e.g. ``repr`` of a float)."""
    text = text.strip()
    if "e" in text.lower() or "." not in text:
        return None
    digits = len(text.split(".")[1])
    return digits if digits <= 6 else None


def load_result(path: Path, model: str | None = None, set_sha256: str | None = None) -> Result:
    """A ``results.json`` (or an eval folder) or a leaderboard row (``model``: its name; the row of
    ``set_sha256`` when several)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if path.exists() and not path.is_file():
        raise DataError(path, "not a regular file; refused")
    if not path.is_file():
        raise DataError(path, "result file not found")
    if path.suffix == ".json":
        return _from_results_json(path, model)
    row = select_row(path, model, set_sha256)
    kind = row.get("kind") or SYNTHETIC
    # the metrics the kind does not define (a real-video row's mIoU_syn is nan) are never checked
    metrics = {m: cell_percentage(path, f"{m} of the row of {row['model']!r}", row[m]) if m in metrics_of(kind)
               else float("nan") for m in METRICS}
    identity = {k: str(row.get(k) or ("1" if k == "definitions" else "")) for k in IDENTITY}
    non_finite = cell_count(path, f"non_finite of the row of {row['model']!r}", row.get("non_finite") or "0")
    return Result(metrics, identity, f"{path} row {row.get('model')!r}", non_finite,
                  {m: _decimals(str(row[m])) for m in METRICS}, kind)


def _real_video_metrics(path: Path, results: dict, model: str | None) -> dict:
    """The overall metrics of one model of a real-video results.json (``model``: its name)."""
    by_model = results["metrics"]
    compared = [name for name in by_model if name != results["reference"]["name"]]
    name = model if model is not None else (compared[0] if len(compared) == 1 else None)
    if name not in by_model:
        raise DataError(path, f"name the model to check with --model (models: {', '.join(by_model)})" if name is None
                        else f"no model {name!r} in this result (models: {', '.join(by_model)})")
    return {m: percentage(path, f"metrics.{name}.{m}", by_model[name][m]) for m in metrics_of(REAL_VIDEO)} \
        | {"mIoU_syn": float("nan")}


def _from_results_json(path: Path, model: str | None = None) -> Result:
    try:
        results = json.loads(path.read_text())
        kind = results.get("kind", SYNTHETIC)
        if kind == REAL_VIDEO:
            metrics = _real_video_metrics(path, results, model)
        else:
            metrics = {m: percentage(path, f"metrics.{m}", results["metrics"][m]) for m in METRICS}
        identity = {
            "set_sha256": str(results["set"]["sha256"]),
            "protocol_version": str(results["set"]["protocol_version"]),
            "boundary_width": str(results["settings"]["boundary_width"]),
            "definitions": str(results["settings"].get("definitions", "1")),
        }
        non_finite = count(path, "model_outputs.non_finite", results.get("model_outputs", {}).get("non_finite", 0))
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DataError(path, f"not a stabbench results.json ({exc.__class__.__name__}: {exc})") from None
    return Result(metrics, identity, str(path), non_finite, {m: None for m in METRICS}, kind)


def select_row(path: Path, model: str | None, set_sha256: str | None = None) -> dict:
    """The leaderboard row named ``model`` (the only model when None); among several rows of one
    name, the one measured on ``set_sha256``. Never silently the last of several."""
    rows = read_rows(path)
    if model is not None:
        rows = [r for r in rows if r["model"] == model]
    if not rows:
        raise DataError(path, f"no row for model {model!r}" if model else "leaderboard is empty")
    if model is None and len({r["model"] for r in rows}) > 1:
        raise DataError(path, "several models in this leaderboard; name one with --model / --baseline-model")
    if len(rows) > 1 and set_sha256 is not None:
        same_set = [r for r in rows if r.get("set_sha256") == set_sha256]
        rows = same_set or rows
    if len(rows) > 1:
        sets = ", ".join(sorted({str(r.get("set_sha256", ""))[:12] for r in rows}))
        raise DataError(path, f"{len(rows)} rows for model {rows[0]['model']!r} (sets {sets}); "
                              "give the eval folder instead, or keep one row per set")
    return rows[0]


def comparability(result: Result, baseline: Result) -> list[str]:
    """What differs between the measurements of two results (empty: comparable)."""
    return [f"{key}: {result.identity.get(key)!r} vs baseline {baseline.identity.get(key)!r}"
            for key in IDENTITY if result.identity.get(key) != baseline.identity.get(key)]


@dataclass(frozen=True)
class GateReport:
    """The outcome of ``stabbench gate``: every check, the lines to print, the exit code."""

    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when every check passed, 1 when one fell short."""
        return EXIT_CHECK_FAILED if self.failed else EXIT_OK

    def lines(self) -> list[str]:
        """One line per check and a summary (the notes are for stderr)."""
        out = [
            f"{'ok  ' if c.passed else 'FAIL'} {c.metric:<11} {c.value:8.3f}  required >= {c.required:8.3f} "
            f"({c.source})  margin {c.margin:+.3f}"
            for c in self.checks
        ]
        n = len(self.checks)
        out.append(f"gate: {self.failed} of {n} checks fell short" if self.failed else f"gate: all {n} checks passed")
        return out


def gate(result_path: Path, model: str | None, thresholds: tuple[str, ...], baseline: Path | None,
         baseline_model: str | None, tolerance: float, allow_different_set: bool = False) -> GateReport:
    """Load the result (and baseline), check comparability, run every check.

    UsageError for bad thresholds or nothing to check; DataError (exit 3) for an incomparable
    baseline unless ``allow_different_set``.
    """
    try:
        parsed = [parse_threshold(t) for t in thresholds]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not parsed and baseline is None:
        raise UsageError("nothing to check: give --min METRIC=VALUE and/or --baseline")
    result = load_result(result_path, model)
    undefined = [m for m, _ in parsed if m not in result.checked_metrics]
    if undefined:
        raise UsageError(f"{result.source}: a {result.kind} result has no {undefined[0]} "
                         f"(its metrics: {', '.join(result.checked_metrics)})")
    notes: list[str] = []
    base = None
    if baseline is not None:
        base = load_result(baseline, baseline_model, result.identity["set_sha256"])
        if base.kind != result.kind:
            raise DataError(baseline, f"the baseline is a {base.kind} result and {result.source} a {result.kind} one: "
                                      "S on real video (estimated flow) is never compared with S on a synthetic set "
                                      "(--allow-different-set does not apply)")
        differs = comparability(result, base)
        if differs and not allow_different_set:
            raise DataError(baseline, "the baseline was not measured like the result (" + "; ".join(differs)
                            + "); compare results of the same set, protocol, band and definitions, "
                            "or pass --allow-different-set")
        if differs:
            notes.append("WARNING: comparing results measured differently (--allow-different-set): " + "; ".join(differs))
    checks = run_checks(result.metrics, parsed, None if base is None else base.metrics,
                        f"baseline {baseline_model or baseline}", tolerance, result.checked_metrics,
                        decimals=None if base is None else base.decimals)
    if result.non_finite:  # a broken model never passes
        checks.append(Check("finite", -float(result.non_finite), 0.0, f"{result.non_finite} model outputs held NaN/Inf"))
    return GateReport(tuple(checks), tuple(notes))


def run_checks(
    result: dict[str, float],
    thresholds: list[tuple[str, float]],
    baseline: dict[str, float] | None = None,
    baseline_name: str = "baseline",
    tolerance: float = 0.0,
    metrics: tuple[str, ...] = METRICS,
    decimals: dict[str, int | None] | None = None,
) -> list[Check]:
    """Every check: each threshold, then each of ``metrics`` against the baseline - tolerance."""
    checks = [Check(m, result[m], v, "threshold") for m, v in thresholds]
    if baseline is not None:
        decimals = decimals or {}
        checks += [Check(m, result[m], baseline[m] - tolerance, baseline_name, decimals.get(m)) for m in metrics]
    return checks


def load_metrics(path: Path, model: str | None = None) -> dict[str, float]:
    """Headline metrics of a result (see :func:`load_result`)."""
    return load_result(path, model).metrics
