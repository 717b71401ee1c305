"""A synthetic set summarised (``stabbench info``)."""

from __future__ import annotations

from pathlib import Path

from stabbench.synth.manifest import COMPACT_FORMAT
from stabbench.synth.reader import open_set


def summarize_set(out: Path) -> dict:
    """Machine-readable summary of a set: counts per perturbation x severity, sizes, versions."""
    ds = open_set(out)
    counts: dict[str, dict[str, int]] = {}
    total_bytes = frames = 0
    sources: dict[str, int] = {}
    for record in ds.manifest["sequences"]:
        plan = record["plan"]
        row = counts.setdefault(plan["perturbation"], {})
        row[str(plan["severity"])] = row.get(str(plan["severity"]), 0) + 1
        frames += len(record["frames"])
        if "render" in record:  # compact: each source's files once
            files = record["render"]["source_files"]
            sources.update({files[k]: files[k + "_bytes"] for k in ("image", "label")})
        else:
            total_bytes += sum(f["frame_bytes"] + f["mask_bytes"] for f in record["frames"])
    total_bytes += sum(sources.values())
    manifest_bytes = (out / "manifest.json").stat().st_size
    return {
        "set": str(out),
        "protocol_version": ds.protocol_version,
        "layout": "compact" if ds.format_version == COMPACT_FORMAT else "materialized",
        "format_version": ds.format_version,
        "config": ds.config,
        "classes": list(ds.classes),
        "sources": len({r["plan"]["source_index"] for r in ds.manifest["sequences"]}),
        "sequences": len(ds),
        "frames": frames,
        "image_bytes": total_bytes,
        "manifest_bytes": manifest_bytes,
        "counts": counts,
        "versions": ds.manifest["versions"],
    }
