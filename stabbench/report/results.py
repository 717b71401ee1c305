"""Results of an evaluation: the JSON file, the breakdown CSVs, the plot, the leaderboard row.

An eval output folder holds::

    results.json                    everything below + the mergeable counts ("state")
    per_sequence.csv                S_global, S_boundary, mIoU per sequence
    per_perturbation_severity.csv   the same per perturbation x severity
    per_class.csv                   IoU per class
    stability_vs_severity.png       S_global and S_boundary against severity (with [plot])

``results.json`` has no timestamp: the same evaluation writes the same bytes. The date
goes to the leaderboard row (``SOURCE_DATE_EPOCH`` fixes it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_write_text, csv_cell, publish_dir, sha256_file
from stabbench.metrics import DEFINITIONS, sequence_rows, summarize

RESULTS_FORMAT = "stabbench-results"
RESULTS_FORMAT_VERSION = 1
HEADLINE = ("S_global", "S_boundary", "mIoU_syn")
#: Counts beside the headline in ``results.json["metrics"]``.
METRIC_COUNTS = ("S_global_pooled", "S_boundary_pooled", "sequences", "pairs", "tracked", "boundary_sequences",
                 "boundary_pairs", "boundary_tracked", "boundary_skipped_pairs", "frames", "pixels")
#: What the ground-truth agreement rule does to S_boundary (diagnostics; S_boundary keeps the rule):
#: S_boundary computed without it, and the share (0-1) of the band's tracked pixels it removed.
GT_RULE_DIAGNOSTICS = ("S_boundary_no_gt_rule", "boundary_tracked_no_gt_rule", "gt_rule_removed_fraction")
#: ``kind`` of a result: an eval on a synthetic set (absent in results written before real video) or real video.
SYNTHETIC, REAL_VIDEO = "synthetic", "real-video"


def set_info(dataset) -> dict:
    """What identifies a synthetic set: the sha256 of its content (``SyntheticSet.content_sha256``:
    the manifest without where and with which library versions it was made) and its settings;
    ``manifest_sha256`` is the file's own checksum (provenance)."""
    manifest = dataset.root / "manifest.json"
    return {
        "path": str(dataset.root),
        "sha256": dataset.content_sha256,
        "manifest_sha256": sha256_file(manifest),
        "dataset": dataset.config["dataset"],
        "protocol": dataset.config["protocol"],
        "protocol_version": dataset.protocol_version,
        "seed": dataset.seed,
        "sequences": len(dataset),
        "classes": list(dataset.classes),
    }


def sanity_warnings(headline: dict, state) -> list[str]:
    """Implausible results: one class everywhere, S=100 with mIoU near 0, NaN/Inf outputs."""
    out = []
    used = [k for k, v in state.label_counts.items() if v > 0]
    if len(used) == 1:
        out.append(f"the model predicted class {used[0]} everywhere: S is trivially 100 and means nothing")
    if headline["S_global"] >= 99.99 and headline["mIoU_syn"] < 5.0:
        out.append(f"S_global={headline['S_global']:.2f} with mIoU(syn)={headline['mIoU_syn']:.2f}: stable but wrong")
    if state.non_finite:
        first = state.warnings[0] if state.warnings else ""
        out.append(f"{state.non_finite} model outputs had NaN or Inf (first: {first})")
    for key in HEADLINE:
        if isinstance(headline[key], float) and math.isnan(headline[key]):
            out.append(f"{key} is NaN (no pixel counted)")
    return out


def build_results(state, model_info: dict, set_meta: dict, band_width: int, shard: tuple[int, int]) -> dict:
    """The results dict (written as results.json)."""
    from stabbench import __version__

    overall = summarize(state.stability, state.confusion)
    headline = {"S_global": overall["S_global"], "S_boundary": overall["S_boundary"], "mIoU_syn": overall["mIoU"]}
    by_group = summarize(state.stability, state.confusion, state.groups)
    per_ps = [{"perturbation": pert, "severity": int(sev), **_row_metrics(vals)} for (pert, sev), vals in by_group.items()]
    per_ps.sort(key=lambda r: (r["perturbation"], r["severity"]))
    per_seq = [
        {**row, "perturbation": state.groups[row["sequence"]][0], "severity": state.groups[row["sequence"]][1]}
        for row in sequence_rows(state.stability, state.confusion)
    ]
    per_class = state.confusion.per_class(set_meta["classes"])
    return {
        "format": RESULTS_FORMAT,
        "format_version": RESULTS_FORMAT_VERSION,
        "stabbench_version": __version__,
        "model": model_info,
        "set": set_meta,
        "settings": {"boundary_width": band_width, "shard": list(shard), "definitions": DEFINITIONS},
        "model_outputs": {"non_finite": state.non_finite},
        "metrics": {**headline, **{k: overall[k] for k in METRIC_COUNTS + GT_RULE_DIAGNOSTICS}},
        "warnings": sanity_warnings(headline, state),
        "model_warnings": state.warnings[:100],
        "per_perturbation_severity": per_ps,
        "per_sequence": per_seq,
        "per_class": per_class,
        "state": state.state_dict(),
    }


def _row_metrics(vals: dict) -> dict:
    return {
        "S_global": vals["S_global"],
        "S_boundary": vals["S_boundary"],
        "mIoU_syn": vals.get("mIoU", float("nan")),
        "sequences": vals["sequences"],
        "pairs": vals["pairs"],
        "boundary_sequences": vals["boundary_sequences"],
        "boundary_pairs": vals["boundary_pairs"],
    }


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def to_json(results: dict) -> str:
    """Deterministic JSON (sorted keys; NaN written as null)."""
    return json.dumps(_nan_to_none(results), indent=1, sort_keys=True, default=_json_default) + "\n"


def _nan_to_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def rows_to_csv(rows: list[dict]) -> str:
    """A CSV of ``rows`` (columns: the first row's keys), floats to 4 decimals, every cell
    through :func:`~stabbench.fileio.csv_cell` (no cell a spreadsheet would run)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_outputs(out: Path, results: dict, overwrite: bool = False, plot: bool = True,
                  predictions: Path | None = None) -> list[Path]:
    """Write the eval folder atomically (see :func:`publish_folder`). ``predictions``: a finished
    staging folder of saved predictions (:mod:`stabbench.report.predictions`), moved into the
    output as ``predictions/`` before it is published."""
    def fill(tmp: Path) -> None:
        _write_files(tmp, results, plot)
        if predictions is not None:
            os.replace(predictions, tmp / "predictions")

    return publish_folder(out, fill, overwrite)


def publish_folder(out: Path, fill, overwrite: bool = False) -> list[Path]:
    """Publish a results folder atomically (:func:`stabbench.fileio.publish_dir`): ``fill(folder)``
    writes the files into a folder built beside ``out``, then renamed into place. An existing
    ``out`` is replaced only with ``overwrite`` (else :class:`OutputConflictError`)."""
    out = Path(out)
    publish_dir(out, fill, check=lambda: _check_replaceable(out, overwrite))
    return sorted(out.iterdir())
    return sorted(out.iterdir())


def _check_replaceable(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise OutputConflictError(f"{out}: already exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or (not (out / "results.json").is_file() and any(out.iterdir()))):
        raise OutputConflictError(f"{out}: exists and is not a stabbench eval output; refusing to replace it")


def _write_files(folder: Path, results: dict, plot: bool) -> None:
    files = {
        "results.json": to_json(results),
        "per_sequence.csv": rows_to_csv(results["per_sequence"]),
        "per_perturbation_severity.csv": rows_to_csv(results["per_perturbation_severity"]),
        "per_class.csv": rows_to_csv(results["per_class"]),
    }
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    if plot:
        from stabbench.report.plot import plot_stability_vs_severity

        plot_stability_vs_severity(results["per_perturbation_severity"], folder / "stability_vs_severity.png",
                                   results["model"].get("name") or results["model"]["id"])


def load_results(path: Path) -> dict:
    """Read a results.json (or the folder holding it); DataError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "results file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read results ({exc})") from None
    return check_results(path, results)


def check_results(path: Path, results) -> dict:
    """``results`` (the parsed JSON of ``path``) if it is a stabbench eval result; else DataError."""
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise DataError(path, "not a stabbench results.json")
    if results.get("kind", SYNTHETIC) != SYNTHETIC:
        raise DataError(path, f"a {results.get('kind')} result, not a synthetic-set eval result (it cannot be merged)")
    sections = {"model": dict, "set": dict, "settings": dict, "metrics": dict, "state": dict}
    bad = [k for k, kind in sections.items() if not isinstance(results.get(k), kind)]
    if bad:
        raise DataError(path, f"malformed results.json (missing or not an object: {', '.join(bad)})")
    return results


def model_columns(model: dict) -> dict:
    """The leaderboard columns of a model, from ``results.json["model"]`` or the loader's info:
    ``model_id``, ``model_format``, ``model_sha256``, ``model_fingerprint``, ``preprocess``."""
    return {
        "model_id": model["id"],
        "model_format": model.get("format", ""),
        "model_sha256": model.get("sha256") or "",
        "model_fingerprint": model.get("fingerprint") or "",
        "preprocess": json.dumps(model.get("preprocess", {}), sort_keys=True),
    }


def row_probe(model: dict, dset: dict, boundary_width: int) -> dict:
    """What the leaderboard row of ``model`` (with its ``name``) on the set ``dset`` holds before
    the evaluation: its key and the model's columns (a row there with others is refused early,
    :func:`~stabbench.report.leaderboard.refuse_conflicts`; the same model is recognised by them,
    :func:`~stabbench.report.leaderboard.recognise`)."""
    return {"model": model.get("name") or model["id"], **model_columns(model), "set_sha256": dset["sha256"],
            "protocol_version": dset["protocol_version"], "seed": dset["seed"], "boundary_width": boundary_width}


def leaderboard_row(results: dict) -> dict:
    """The leaderboard row of a full (unsharded or merged) result."""
    model, dset, m = results["model"], results["set"], results["metrics"]
    return {
        "model": model.get("name") or model["id"],
        **model_columns(model),
        "dataset": dset["dataset"],
        "set": Path(dset["path"]).name,
        "set_sha256": dset["sha256"],
        "protocol_version": dset["protocol_version"],
        "protocol": dset["protocol"],
        "seed": dset["seed"],
        "sequences": m["sequences"],
        "boundary_width": results["settings"]["boundary_width"],
        "definitions": results["settings"].get("definitions", DEFINITIONS),
        "non_finite": results.get("model_outputs", {}).get("non_finite", 0),
        "S_global": m["S_global"],
        "S_boundary": m["S_boundary"],
        "mIoU_syn": m["mIoU_syn"],
        "stabbench_version": results["stabbench_version"],
        "date": run_date(),
    }


def run_date() -> str:
    """UTC now, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds convention)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.replace(microsecond=0).isoformat()
