"""Saved predictions of an evaluation (``stabbench eval --save-predictions``): writing and reading.

Layout inside an eval output folder::

    predictions/
      <sequence id>/00000.png 00001.png ...   8-bit gray PNG of the predicted class ids, frame k
      index.json                              sha256 of every PNG, per sequence, in frame order

``results.json["predictions"]`` records the folder, the index's sha256 and the counts, so a
reader (``stabbench show``) checks that it reads the predictions of this very result: the
index against ``index_sha256``, each PNG against the index.

While the evaluation runs, the PNGs go to a staging folder beside the output
(:func:`staging_folder`); :func:`finish_staging` hashes and fsyncs them and writes the index,
and :func:`~stabbench.report.results.write_outputs` moves the folder into the output before
the output is published (renamed into place), so saved predictions appear with the results
or not at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from stabbench.errors import DataError
from stabbench.fileio import atomic_write_bytes, atomic_write_json, pid_alive, sha256_bytes
from stabbench.predictors.precomputed import MASK_SUFFIX, mask_name

PREDICTIONS_DIR = "predictions"
INDEX_FILE = "index.json"
INDEX_FORMAT = "stabbench-predictions"
INDEX_FORMAT_VERSION = 1
#: zlib level of the PNGs: label maps compress well already at the fastest level.
PNG_COMPRESSION = 1


def frame_name(k: int) -> str:
    """File name of frame ``k``: ``00000.png``, ``00001.png``, ... (the names ``--model predictions:DIR`` reads)."""
    return mask_name(k) + MASK_SUFFIX


def encode_labels(labels: np.ndarray) -> bytes:
    """``(H, W)`` integer class ids in ``[0, 255]`` -> bytes of an 8-bit gray PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a (H, W) map, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"class ids must be in [0, 255] to be saved as 8-bit PNG, got [{labels.min()}, {labels.max()}]")
        labels = labels.astype(np.uint8)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(labels), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError("cv2.imencode could not encode the label map as PNG")
    return data.tobytes()


# ----------------------------------------------------------------------------- writing


def staging_folder(out: Path, tag: str, what: str = PREDICTIONS_DIR) -> Path:
    """``.OUT.predictions-TAG`` beside ``out``: where this process writes its PNGs during the run
    (``TAG`` is the process id, or ``rankRofW`` under torchrun); ``what`` names other staged
    parts of an output (``stabbench video --visuals``: ``visuals``)."""
    return out.with_name(f".{out.name}.{what}-{tag}")


def remove_stale_staging(out: Path, what: str = PREDICTIONS_DIR) -> None:
    """Remove staging folders of ``out`` left by dead single-process runs (``TAG`` a dead pid)."""
    for stale in out.parent.glob(f".{out.name}.{what}-*"):
        tag = stale.name.rsplit("-", 1)[-1]
        if tag.isdigit() and stale.is_dir() and not pid_alive(tag):
            shutil.rmtree(stale, ignore_errors=True)


class PredictionWriter:
    """The ``on_labels(sequence, labels)`` callback of :func:`~stabbench.evaluation.evaluate`:
    writes ``folder/<sequence id>/<k:05d>.png`` for every frame of ``labels`` ``(N, H, W)``.

    The folder is emptied when the writer is made (a staging folder of an earlier run of the
    same process id or rank never leaks into this one)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def __call__(self, seq, labels: np.ndarray) -> None:
        folder = self.folder / seq.id  # ids are checked names (no separator, no leading dot)
        folder.mkdir(exist_ok=True)
        for k, frame in enumerate(labels):
            atomic_write_bytes(folder / frame_name(k), encode_labels(frame), durable=False)  # fsync-ed by finish_staging


def gather_rank_staging(leader: Path, others: list[Path]) -> None:
    """torchrun: move the sequence folders that the other ranks wrote into rank 0's staging folder."""
    for folder in others:
        if not folder.is_dir():
            continue
        for seq_dir in sorted(folder.iterdir()):
            os.replace(seq_dir, leader / seq_dir.name)
        shutil.rmtree(folder, ignore_errors=True)


def finish_staging(folder: Path, frames_per_sequence: dict[str, int]) -> dict:
    """Hash (and fsync) every PNG, check that each sequence has exactly its frames, write
    ``index.json``; return the record for ``results.json["predictions"]``.

    Args:
        frames_per_sequence: ``{sequence id: number of frames}`` of the evaluated sequences.
    """
    index = {}
    for seq_id in sorted(frames_per_sequence):
        names = sorted(p.name for p in (folder / seq_id).glob("*.png")) if (folder / seq_id).is_dir() else []
        expected = [frame_name(k) for k in range(frames_per_sequence[seq_id])]
        if names != expected:
            hint = " (under torchrun on several nodes, --out must be on a volume every node sees)" if not names else ""
            raise DataError(folder / seq_id, f"saved predictions hold {len(names)} frames, expected {len(expected)}{hint}")
        index[seq_id] = [_hash_and_sync(folder / seq_id / name) for name in names]
    extra = sorted(p.name for p in folder.iterdir() if p.name not in index)
    if extra:
        raise DataError(folder, f"saved predictions hold sequences that were not evaluated: {', '.join(extra[:3])}")
    payload = {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "sequences": index}
    atomic_write_json(folder / INDEX_FILE, payload)
    return {
        "folder": PREDICTIONS_DIR,
        "layout": "<sequence id>/<k:05d>.png, 8-bit gray, class ids",
        "index": f"{PREDICTIONS_DIR}/{INDEX_FILE}",
        "index_sha256": sha256_bytes((folder / INDEX_FILE).read_bytes()),
        "sequences": len(index),
        "frames": sum(len(v) for v in index.values()),
    }


def _hash_and_sync(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read()
        os.fsync(handle.fileno())
    return sha256_bytes(data)


# ----------------------------------------------------------------------------- reading


class SavedPredictions:
    """The saved predictions of an eval output folder, checked against its ``results.json``.

    Raises :class:`DataError` (exit 3) when the result has none (saying how to get them), when
    the index is not the one the result recorded, or when a PNG is not the one indexed.
    """

    def __init__(self, result_dir: Path, results: dict):
        self.result_dir = Path(result_dir)
        record = results.get("predictions")
        if not isinstance(record, dict):
            raise DataError(self.result_dir, "the result has no saved predictions: re-run `stabbench eval` with "
                                             "--save-predictions (the same command otherwise)")
        self.folder = self.result_dir / PREDICTIONS_DIR
        index_path = self.folder / INDEX_FILE
        try:
            data = index_path.read_bytes()
        except OSError as exc:
            raise DataError(index_path, f"cannot read the predictions index ({exc.strerror or exc})") from None
        if sha256_bytes(data) != record.get("index_sha256"):
            raise DataError(index_path, "the predictions index is not the one results.json records (changed or "
                                        "copied from another result)")
        try:
            self.index: dict[str, list[str]] = json.loads(data)["sequences"]
        except (ValueError, KeyError, TypeError):
            raise DataError(index_path, "malformed predictions index") from None

    def labels(self, seq_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(N, H, W)`` uint8 predicted class ids of sequence ``seq_id``, each PNG checked."""
        if seq_id not in self.index or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", seq_id):
            raise DataError(self.folder, f"no saved predictions of sequence {seq_id}")
        frames = []
        for k, digest in enumerate(self.index[seq_id]):
            path = self.folder / seq_id / frame_name(k)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DataError(path, f"cannot read a saved prediction ({exc.strerror or exc})") from None
            if sha256_bytes(data) != digest:
                raise DataError(path, "saved prediction differs from its checksum in the index")
            frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if frame is None or frame.ndim != 2 or frame.dtype != np.uint8:
                raise DataError(path, "a saved prediction must be an 8-bit gray PNG")
            if shape is not None and frame.shape != tuple(shape):
                raise DataError(path, f"saved prediction is {frame.shape[1]}x{frame.shape[0]}, the set's frames are "
                                      f"{shape[1]}x{shape[0]}")
            frames.append(frame)
        return np.stack(frames)
