"""Writing a set's frames and masks as files (``stabbench export``): a materialized set (PNG,
set format 1, readable by stabbench) or one MP4 per sequence with its masks as PNGs, for
pipelines of one's own. Frames come from the set's reader, so a compact set is rendered
(and checked against its checksums) on the way."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from stabbench import fileio
from stabbench.errors import OutputConflictError
from stabbench.synth.writer import (
    MATERIALIZED_FORMAT,
    RUN_FILE,
    SEQUENCE_FILE,
    encode_png,
    write_json_atomic,
    write_manifest,
)

EXPORT_FORMATS = ("png", "mp4")


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputConflictError(f"{out}: already exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export_set(dataset, out: Path, fmt: str = "png", overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None) -> None:
    """Export ``dataset`` (a :class:`~stabbench.synth.SyntheticSet`) to ``out`` in ``fmt``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    out = Path(out)
    _prepare(out, overwrite)
    with fileio.locked_dir(out, wait=False):
        if fmt == "png":
            _export_png(dataset, out, progress)
        else:
            _export_mp4(dataset, out, progress)


def _export_png(dataset, out: Path, progress) -> None:
    manifest = dataset.manifest
    config = {**manifest["config"], "layout": "materialized"}
    run = {"format": manifest["format"], "format_version": MATERIALIZED_FORMAT, "config": config,
           "versions": manifest["versions"]}
    write_json_atomic(out / RUN_FILE, run)
    plans = []
    for done, seq in enumerate(dataset):
        folder = out / seq.id
        folder.mkdir()
        frames, masks = seq.frames(), seq.masks()
        items = []
        for k in range(seq.num_frames):
            item = {}
            for key, array in (("frame", frames[k]), ("mask", masks[k])):
                data = encode_png(array)
                name = f"{key}_{k:02d}.png"
                fileio.atomic_write_bytes(folder / name, data, durable=False)
                item.update({key: name, key + "_bytes": len(data), key + "_sha256": fileio.sha256_bytes(data)})
            items.append(item)
        record = {k: v for k, v in seq.record.items() if k != "render"}
        record["frames"] = items
        write_json_atomic(folder / SEQUENCE_FILE, record)
        plans.append(SimpleNamespace(index=seq.index))  # what write_manifest reads of a plan
        if progress is not None:
            progress(done + 1, len(dataset))
    write_manifest(out, run, dataset.classes, plans)


def _export_mp4(dataset, out: Path, progress) -> None:
    import imageio.v3 as iio

    for done, seq in enumerate(dataset):
        frames, masks = seq.frames(), seq.masks()
        tmp = out / f".{seq.id}.tmp.mp4"
        iio.imwrite(tmp, frames, plugin="FFMPEG", fps=10, codec="libx264", quality=10, macro_block_size=1)
        tmp.replace(out / f"{seq.id}.mp4")
        mask_dir = out / f"{seq.id}_masks"
        mask_dir.mkdir()
        for k, mask in enumerate(masks):
            fileio.atomic_write_bytes(mask_dir / f"mask_{k:02d}.png", encode_png(mask), durable=False)
        if progress is not None:
            progress(done + 1, len(dataset))
