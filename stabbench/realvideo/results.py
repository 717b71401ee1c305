"""Results of a real-video comparison: results.json, per-video and overall CSVs, leaderboard rows.

An output folder holds::

    results.json     kind "real-video": settings (flow, criterion, band, bootstrap seed), versions,
                     input checksums, the models and the reference, every row below, the counts
    per_video.csv    one row per video x model: S_global, S_boundary, coverage, the paired
                     difference to the reference with its 95 % interval and verdict
    overall.csv      the same over all videos (the headline)
    visuals/         with --visuals: the flicker clips and visuals.json (:mod:`stabbench.realvideo.visuals`)

A leaderboard row per model carries ``kind = real-video``, ``dataset``/``protocol``
``real-video`` and ``protocol_version`` :data:`PROTOCOL_VERSION`; its ``set_sha256`` is
:func:`measurement_digest` (the videos' bytes, the reference and every setting), so only
measurements of the same videos against the same reference are compared, and ``stabbench
gate`` never compares a real-video result with a synthetic one. ``mIoU_syn`` is undefined
(NaN): real video has no synthetic ground truth.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from stabbench.fileio import atomic_write_text, versions
from stabbench.metrics import DEFINITIONS
from stabbench.realvideo.compare import METRICS, compare_overall, compare_video
from stabbench.realvideo.run import RealVideoState, Settings
from stabbench.report.results import (
    REAL_VIDEO,
    RESULTS_FORMAT,
    RESULTS_FORMAT_VERSION,
    model_columns,
    publish_folder,
    rows_to_csv,
    run_date,
    to_json,
)
from stabbench.report.sources import VISUALS_FOLDER

PROTOCOL_VERSION = "real-video/1"


def settings_dict(settings: Settings, seed: int, resamples: int) -> dict:
    return {
        "flow": settings.flow.to_dict(),
        "flow_method": "opencv-dis, both directions, forward-backward check, in-frame mask",
        "motion_boundary": None if settings.criterion is None else settings.criterion.to_dict(),
        "boundary_width": settings.band_width,
        "band_from": "reference",
        "definitions": DEFINITIONS,
        "bootstrap": {"seed": seed, "resamples": resamples, "confidence": 0.95,
                      "scheme": "videos, then pairs within each video (percentile interval)"},
    }


def measurement_digest(checksums: dict[str, str], reference: dict, settings: dict) -> str:
    """sha256 over the videos' checksums (video id -> sha256), the reference's identity and the
    settings (:func:`settings_dict`; the bootstrap's are left out: they change no count)."""
    payload = {"videos": checksums, "reference": [reference.get("id"), reference.get("sha256")],
               "settings": {k: v for k, v in settings.items() if k != "bootstrap"}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _coverage(rows: list[list[int]]) -> dict:
    pixels = sum(r[1] for r in rows)
    band = sum(r[4] for r in rows)
    return {"coverage_pct": 100.0 * sum(r[3] for r in rows) / pixels if pixels else float("nan"),
            "fb_coverage_pct": 100.0 * sum(r[2] for r in rows) / pixels if pixels else float("nan"),
            "band_coverage_pct": 100.0 * sum(r[5] for r in rows) / band if band else float("nan")}


def _diff_rows(compare, model, reference, *args, seed: int, resamples: int) -> dict:
    out = {}
    for metric in METRICS:
        out.update(compare(model, reference, *args, metric, seed, resamples).as_row(metric))
        if model is reference:
            out[f"{metric}_verdict"] = "reference"
    return out


def per_video_rows(state: RealVideoState, reference: str, seed: int, resamples: int) -> list[dict]:
    ref = state.meters[reference]
    rows = []
    for vid in sorted(state.frames):
        cov = _coverage(state.coverage[vid])
        for name, meter in state.meters.items():
            (s,) = [r for r in meter.per_sequence() if r["sequence"] == vid]
            rows.append({"video": vid, "model": name, "reference": reference, "S_global": s["S_global"],
                         "S_boundary": s["S_boundary"], "pairs": s["pairs"], **cov,
                         **_diff_rows(compare_video, meter, ref, vid, seed=seed, resamples=resamples)})
    return rows


def overall_rows(state: RealVideoState, reference: str, per_video: list[dict], seed: int, resamples: int) -> list[dict]:
    ref = state.meters[reference]
    videos = sorted(state.frames)
    cov = _coverage([r for vid in videos for r in state.coverage[vid]])
    rows = []
    for name, meter in state.meters.items():
        s = meter.compute()
        mine = [r for r in per_video if r["model"] == name]
        counts = {f"{m}_videos_{tag}": sum(r[f"{m}_verdict"] == word for r in mine)
                  for m in METRICS for tag, word in (("more", "more stable"), ("less", "less stable"))}
        rows.append({"model": name, "reference": reference, "S_global": s["S_global"], "S_boundary": s["S_boundary"],
                     "videos": s["sequences"], "pairs": s["pairs"], **cov,
                     **_diff_rows(compare_overall, meter, ref, videos, seed=seed, resamples=resamples), **counts})
    return rows


def build_results(state: RealVideoState, models: dict[str, dict], reference: dict, settings: Settings,
                  videos_arg: list[str], seed: int, resamples: int) -> dict:
    """The results dict (``results.json``). ``models``: name -> the loader's info (reference
    model included); ``reference``: ``{"name", "id", "sha256", "kind": annotations|model}``."""
    from stabbench import __version__

    chosen = settings_dict(settings, seed, resamples)
    per_video = per_video_rows(state, reference["name"], seed, resamples)
    overall = overall_rows(state, reference["name"], per_video, seed, resamples)
    return {
        "format": RESULTS_FORMAT,
        "format_version": RESULTS_FORMAT_VERSION,
        "kind": REAL_VIDEO,
        "stabbench_version": __version__,
        "versions": versions(),
        "set": {"path": ", ".join(videos_arg), "sha256": measurement_digest(state.checksums, reference, chosen),
                "dataset": REAL_VIDEO, "protocol": REAL_VIDEO, "protocol_version": PROTOCOL_VERSION,
                "videos": {vid: {"frames": state.frames[vid], "sha256": state.checksums[vid]} for vid in sorted(state.frames)}},
        "settings": chosen,
        "reference": reference,
        "model": {name: info for name, info in models.items()},
        "metrics": {row["model"]: row for row in overall},
        "overall": overall,
        "per_video": per_video,
        "coverage": {vid: state.coverage[vid] for vid in sorted(state.coverage)},
        "state": {name: meter.state_dict() for name, meter in state.meters.items()},
    }


def write_outputs(out: Path, results: dict, overwrite: bool = False, visuals: Path | None = None) -> None:
    """``results.json``, ``per_video.csv``, ``overall.csv``, published atomically; ``visuals``: a
    finished staging folder of clips (:mod:`stabbench.realvideo.visuals`), moved into the output
    as ``visuals/`` before it is published (the clips appear with the results or not at all)."""
    def fill(folder: Path) -> None:
        atomic_write_text(folder / "results.json", to_json(results))
        atomic_write_text(folder / "per_video.csv", rows_to_csv(results["per_video"]))
        atomic_write_text(folder / "overall.csv", rows_to_csv(results["overall"]))
        if visuals is not None:
            os.replace(visuals, folder / VISUALS_FOLDER)

    publish_folder(out, fill, overwrite)


def _model_columns(name: str, models: dict[str, dict], reference: dict) -> dict:
    """The leaderboard's model columns of ``name``: a model's (:func:`~stabbench.report.results.model_columns`);
    the annotations' are their name, and the digest of their masks as checksum and fingerprint."""
    if name in models:
        return model_columns(models[name])
    digest = reference.get("sha256") or ""
    return {"model_id": name, "model_format": "annotations", "model_sha256": digest, "model_fingerprint": digest,
            "preprocess": json.dumps({})}


def row_probes(models: dict[str, dict], reference: dict, digest: str, band_width: int, seed: int) -> list[dict]:
    """What the leaderboard rows of a comparison hold before it is measured (one per model, the
    reference's included): key, model columns, seed. ``digest``: :func:`measurement_digest`;
    ``models``: name -> the loader's info. A row there with other values is refused early."""
    names = [*models, *([reference["name"]] if reference["name"] not in models else [])]
    return [{"model": name, **_model_columns(name, models, reference), "set_sha256": digest,
             "protocol_version": PROTOCOL_VERSION, "seed": seed, "boundary_width": band_width} for name in names]


def leaderboard_rows(results: dict) -> list[dict]:
    """One leaderboard row per model (reference included), marked as real video."""
    rows = []
    for row in results["overall"]:
        rows.append({
            "model": row["model"],
            **_model_columns(row["model"], results["model"], results["reference"]),
            "dataset": REAL_VIDEO,
            "set": Path(results["set"]["path"].split(", ")[0]).name,
            "set_sha256": results["set"]["sha256"],
            "protocol_version": PROTOCOL_VERSION,
            "protocol": REAL_VIDEO,
            "seed": results["settings"]["bootstrap"]["seed"],
            "sequences": row["videos"],
            "boundary_width": results["settings"]["boundary_width"],
            "definitions": results["settings"]["definitions"],
            "non_finite": 0,
            "S_global": row["S_global"],
            "S_boundary": row["S_boundary"],
            "mIoU_syn": float("nan"),
            "stabbench_version": results["stabbench_version"],
            "date": run_date(),
            "kind": REAL_VIDEO,
            "reference": row["reference"],
            "coverage_pct": row["coverage_pct"],
            **{k: row[k] for k in row if k.startswith("dS_") or k.endswith("_verdict")},
        })
    return rows


__all__ = ["PROTOCOL_VERSION", "build_results", "leaderboard_rows", "measurement_digest", "row_probes",
           "settings_dict", "write_outputs"]
