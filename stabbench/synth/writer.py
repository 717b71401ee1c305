"""Write a synthetic set to disk: sources or frames, correspondence data, manifest.

A **compact** set (format 3, the default) stores each source image and label once, as
decoded pixels in lossless PNG, and for every sequence its trajectory, the state of its
generator after the trajectory was drawn, and the sha256 of every rendered frame's and
mask's pixels; the reader renders frames, masks, flow and validity on demand with the very
code that renders them here (bit-identical to a materialized set). A **materialized** set
(format 1, ``--materialize``) stores every frame and mask as a PNG, as earlier versions did.

Layout of a set directory::

    OUT/
      run.json                   settings of the run (written first; used to resume)
      sources/                   (compact) src_00000_image.png, src_00000_label.png, ...
      seq_00000/
        frame_00.png ...         (materialized) RGB frames, lossless PNG
        mask_00.png ...          (materialized) uint8 label maps (255 = ignore), PNG
        sequence.json            trajectory (affines, occluders), seeds, checksums;
                                 written last: its presence marks the sequence complete
      ...
      manifest.json              everything above in one file; written last: its
                                 presence marks the set complete

Correspondences are stored as geometry (an affine per frame, an occluder per frame) and
densified on demand by :mod:`perturbations.correspondence`; they take a few kB.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from perturbations import PERTURBATION_NAMES, PROTOCOL_VERSION, SEVERITIES, Trajectory, make_trajectory, render_sequence
from stabbench import fileio
from stabbench.errors import DataError, OutputConflictError
from stabbench.synth.manifest import (  # noqa: F401 - the format constants are re-exported
    COMPACT_FORMAT,
    MATERIALIZED_FORMAT,
    SET_FORMAT,
    SET_FORMAT_VERSIONS,
    check_record,
    member_path,
)
from stabbench.synth.plan import SequencePlan, plan_sequences

SOURCES_DIR = "sources"
RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.json"
SEQUENCE_FILE = "sequence.json"
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the bytes of a set (compared on resume)."""

    dataset: str
    root: str | None
    dataset_options: dict
    protocol: str = "paper"
    num_frames: int = 11
    seed: int = 0
    perturbations: tuple[str, ...] = PERTURBATION_NAMES
    severities: tuple[int, ...] = SEVERITIES
    materialize: bool = False

    @property
    def format_version(self) -> int:
        return MATERIALIZED_FORMAT if self.materialize else COMPACT_FORMAT

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "dataset_options": self.dataset_options,
            "protocol": self.protocol,
            "num_frames": self.num_frames,
            "seed": self.seed,
            "perturbations": list(self.perturbations),
            "severities": list(self.severities),
            "layout": "materialized" if self.materialize else "compact",
        }


@dataclass
class SynthReport:
    """What a run did (for the summary)."""

    out: Path
    num_sequences: int = 0
    written: int = 0
    resumed: int = 0
    bytes_written: int = 0
    counts: dict = field(default_factory=dict)


def versions() -> dict:
    """The version stamp of a set (no Python version: it does not change the bytes)."""
    stamp = fileio.versions()
    del stamp["python"]
    return {**stamp, "protocol": PROTOCOL_VERSION}


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as sorted, indented JSON, atomically and durably."""
    fileio.atomic_write_json(path, data)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB ``(H, W, 3)`` or gray ``(H, W)`` uint8 array."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array, PNG_PARAMS)
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def prepare_output(out: Path, run: dict, overwrite: bool) -> bool:
    """Create or check ``out``; return True when it holds a resumable partial run.

    Raises :class:`OutputConflictError` when a complete set is there and ``overwrite`` is
    False, when a partial run was made with other settings, or when ``out`` is a non-empty
    directory that is not a synthetic set (never deleted, even with ``overwrite``).
    """
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"{out}: exists and is not a directory")
    if not out.exists() or not any(not _is_temporary(child) for child in out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)  # new, empty, or left by a kill before the first run.json
        for stale in out.iterdir():
            stale.unlink()
        write_json_atomic(out / RUN_FILE, run)
        return False
    if not (out / RUN_FILE).is_file():
        raise OutputConflictError(
            f"{out}: exists, is not empty and is not a stabbench synthetic set; refusing to touch it"
        )
    complete = (out / MANIFEST_FILE).is_file()
    same = _read_json(out / RUN_FILE) == run
    if overwrite:
        clear_set(out)  # keeps run.json: a kill at any point leaves a set --overwrite (or a resume) takes up
        write_json_atomic(out / RUN_FILE, run)
        return False
    if complete:
        raise OutputConflictError(f"{out}: a complete synthetic set is already there; pass --overwrite to replace it")
    if not same:
        raise OutputConflictError(
            f"{out}: holds an interrupted run made with other settings; "
            "re-run with the same settings to resume, or pass --overwrite"
        )
    return True


def _is_temporary(path: Path) -> bool:
    """A temporary file of an interrupted atomic write (``.name.PID.tmp``, or an older ``name.tmp``)."""
    return path.is_file() and path.name.endswith(".tmp")


def clear_set(out: Path) -> None:
    """Delete a synthetic set's files but ``run.json``: the manifest first (the set never looks
    complete), then the sequences and temporaries. ``run.json`` stays until the caller replaces
    it, so every state a kill can leave is one that ``--overwrite`` (or a resume) takes up."""
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    for child in sorted(out.iterdir()):
        if child.is_dir() and not child.is_symlink() and (child.name.startswith("seq_") or child.name == SOURCES_DIR):
            shutil.rmtree(child)
        elif _is_temporary(child) or (child.is_symlink() and child.name.startswith("seq_")):
            child.unlink()


def _read_json(path: Path) -> dict | None:
    """The JSON object in a regular file ``path``; ``None`` for anything else."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def sequence_dir(out: Path, index: int) -> Path:
    return out / f"seq_{index:05d}"


def completed_record(out: Path, plan: SequencePlan, run: dict) -> dict | None:
    """The record of a sequence finished by an earlier run, if its files are intact."""
    folder = sequence_dir(out, plan.index)
    if folder.is_symlink():
        return None
    record = _read_json(folder / SEQUENCE_FILE)
    if not isinstance(record, dict) or record.get("plan") != plan_dict(plan) or record.get("seed") != run["config"]["seed"]:
        return None
    try:  # a record is only trusted as far as the set's reader would trust it
        check_record(record, folder / SEQUENCE_FILE, "sequence", run["format_version"])
        if "render" in record:
            files = record["render"]["source_files"]
            for key in ("image", "label"):
                if member_path(out, SOURCES_DIR, files[key]).stat().st_size != files[key + "_bytes"]:
                    return None
        else:
            for item in record["frames"]:
                for key in ("frame", "mask"):
                    if member_path(out, folder.name, item[key]).stat().st_size != item[key + "_bytes"]:
                        return None
    except DataError:
        return None
    return record


def plan_dict(plan: SequencePlan) -> dict:
    return {
        "index": plan.index,
        "source_index": plan.source_index,
        "slot": plan.slot,
        "perturbation": plan.perturbation,
        "severity": plan.severity,
    }


def label_focus(label: np.ndarray) -> tuple[float, float] | None:
    """Centroid ``(x, y)`` of the labelled non-background pixels (None if there are none)."""
    ys, xs = np.nonzero((label != 0) & (label != 255))
    if xs.size == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def source_files(out: Path, source_index: int, sample) -> dict:
    """Write a source's image and label once (compact sets), as decoded pixels in PNG; their record."""
    folder = out / SOURCES_DIR
    folder.mkdir(exist_ok=True)
    record = {}
    for key, array in (("image", sample.image), ("label", sample.label)):
        name = f"src_{source_index:05d}_{key}.png"
        path = folder / name
        data = encode_png(array)
        if not (path.is_file() and not path.is_symlink() and path.read_bytes() == data):
            fileio.atomic_write_bytes(path, data, durable=False)
        record.update({key: name, key + "_bytes": len(data), key + "_sha256": fileio.sha256_bytes(data)})
    return record


def generator_state(rng: np.random.Generator) -> dict:
    """The JSON-able state of a PCG64 generator (what the reader restores to render)."""
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":  # pragma: no cover - numpy's default_rng is PCG64
        raise RuntimeError(f"unexpected bit generator {state.get('bit_generator')}")
    return {"bit_generator": "PCG64", "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def pixels_sha256(array: np.ndarray) -> str:
    """sha256 of an array's pixels (C order bytes): the checksum of a rendered frame or mask."""
    return fileio.sha256_bytes(np.ascontiguousarray(array).tobytes())


def write_sequence(out: Path, plan: SequencePlan, sample, source_info: dict, config: SynthConfig,
                   sources: dict | None = None) -> dict:
    """Render one sequence and write it (PNGs when materialized, checksums when compact); return
    its record (also written as sequence.json)."""
    height, width = sample.label.shape
    rng = plan.rng(config.seed)
    trajectory = make_trajectory(
        plan.perturbation, plan.severity, rng, height, width, config.num_frames, focus=label_focus(sample.label)
    )
    # Render from exactly what the record stores (affines rounded to 12 decimals, JSON floats),
    # as the reader will: the checksums are then those of the reader's frames by construction.
    trajectory = Trajectory.from_dict(json.loads(json.dumps(trajectory.to_dict())))
    render_state = generator_state(rng)
    folder = sequence_dir(out, plan.index)
    folder.mkdir(exist_ok=True)
    (folder / SEQUENCE_FILE).unlink(missing_ok=True)
    frames = []
    for k, (frame, mask) in enumerate(render_sequence(sample.image, sample.label, trajectory, rng)):
        item = {}
        for key, array in (("frame", frame), ("mask", mask)):
            if config.materialize:
                data = encode_png(array)
                name = f"{key}_{k:02d}.png"
                fileio.atomic_write_bytes(folder / name, data, durable=False)
                item.update({key: name, key + "_bytes": len(data), key + "_sha256": fileio.sha256_bytes(data)})
            else:
                item[key + "_pixels_sha256"] = pixels_sha256(array)
        frames.append(item)
    record = {
        "id": folder.name,
        "plan": plan_dict(plan),
        "seed": config.seed,
        "source": source_info,
        "trajectory": trajectory.to_dict(),
        "frames": frames,
    }
    if not config.materialize:
        record["render"] = {"source_files": sources, "generator": render_state}
    write_json_atomic(folder / SEQUENCE_FILE, record)
    return record


def synthesize(
    listing,
    config: SynthConfig,
    out: Path,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Write the synthetic set of ``listing`` under ``config`` to ``out``.

    Resumes an interrupted run with the same settings; the manifest is written last.
    Sources are decoded one at a time, so memory does not depend on the set's size.
    """
    out = Path(out)
    plans = plan_sequences(len(listing.sources), config.protocol, config.seed, config.perturbations, config.severities)
    run = {"format": SET_FORMAT, "format_version": config.format_version, "config": config.to_dict(), "versions": versions()}
    if overwrite and (out / RUN_FILE).is_file():
        # --overwrite deletes the set there: check every source first, so bad input
        # (corrupt image, size mismatch, empty mask) never costs the existing set.
        for ref in listing.sources:
            ref.load()
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    try:
        with fileio.locked_dir(out, wait=False):  # two runs into one --out: the second is refused
            prepare_output(out, run, overwrite)
            return _write_sequences(listing, config, out, plans, run, progress)
    except BlockingIOError:
        raise OutputConflictError(f"{out}: another stabbench synth is writing this set; wait for it to finish") from None


def _write_sequences(listing, config: SynthConfig, out: Path, plans: list[SequencePlan], run: dict,
                     progress: Callable[[int, int], None] | None) -> SynthReport:
    """Write (or keep, when an earlier run finished them) every planned sequence, then the manifest."""
    report = SynthReport(out, num_sequences=len(plans))
    root = Path(config.root) if config.root else None
    current_source, sample, source_info, sources = -1, None, None, None
    for done, plan in enumerate(plans):
        record = completed_record(out, plan, run)
        if record is None:
            if plan.source_index != current_source:
                ref = listing.sources[plan.source_index]
                sample, source_info, current_source = ref.load(), ref.describe(root), plan.source_index
                sources = None if config.materialize else source_files(out, plan.source_index, sample)
            record = write_sequence(out, plan, sample, source_info, config, sources)
            report.written += 1
            report.bytes_written += sum(f.get("frame_bytes", 0) + f.get("mask_bytes", 0) for f in record["frames"])
        else:
            report.resumed += 1
        key = (plan.perturbation, plan.severity)
        report.counts[key] = report.counts.get(key, 0) + 1
        if progress is not None:
            progress(done + 1, len(plans))
    write_manifest(out, run, listing.classes, plans)
    if not config.materialize:  # the records are in the manifest now: a compact set is its sources + manifest
        for plan in plans:
            shutil.rmtree(sequence_dir(out, plan.index), ignore_errors=True)
    return report


def write_manifest(out: Path, run: dict, classes, plans: list[SequencePlan]) -> None:
    """Write ``manifest.json``: ``run``, the classes and every sequence's record.

    The records are read back from the ``sequence.json`` files one at a time, so memory does
    not grow with the number of sequences. The bytes are those of
    ``write_json_atomic(path, dict(run, classes=..., num_sequences=..., sequences=records))``:
    each record is dumped alone and indented by its depth in the manifest (two levels).
    """
    marker = "\x00sequences\x00"
    head = dict(run, classes=list(classes), num_sequences=len(plans), sequences=marker)
    prefix, suffix = json.dumps(head, indent=1, sort_keys=True).split(json.dumps(marker))

    def write(f) -> None:
        f.write(prefix.encode())
        for i, plan in enumerate(plans):
            record = json.loads((sequence_dir(out, plan.index) / SEQUENCE_FILE).read_text())
            text = json.dumps(record, indent=1, sort_keys=True).replace("\n", "\n  ")
            f.write((("[\n  " if i == 0 else ",\n  ") + text).encode())
        f.write(("\n ]" if plans else "[]").encode())
        f.write((suffix + "\n").encode())

    os.sync()  # the frames (written without fsync) reach the disk before the manifest publishes the set
    fileio.atomic_write(out / MANIFEST_FILE, write)
