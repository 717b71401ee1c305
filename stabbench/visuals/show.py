"""``stabbench show``: render clips and heatmaps of a result's sequences from its saved predictions.

Output folder (default ``RESULT_DIR/visuals``)::

    visuals.json                  what was rendered (the shape the HTML report reads)
    <sequence id>/clip.gif        frames + predicted outline + flicker red + band shaded
    <sequence id>/clip.mp4
    <sequence id>/heatmap.png     flicker rate per source pixel over the source, colour bar
    <sequence id>/compare.gif     --compare: A|B, the same sequence under both models
    <sequence id>/compare.mp4
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from stabbench.conventions import BAND_WIDTH
from stabbench.errors import DataError, OutputConflictError, UsageError
from stabbench.fileio import atomic_write_bytes, atomic_write_json, publish_dir
from stabbench.report.predictions import SavedPredictions
from stabbench.report.results import load_results
from stabbench.visuals.clips import side_by_side, write_gif, write_mp4
from stabbench.visuals.flicker import sequence_flicker
from stabbench.visuals.heatmap import draw_heatmap, source_flicker_rate
from stabbench.visuals.overlay import FLICKER_RGB, OUTLINE_RGB, render_clip
from stabbench.visuals.select import worst_sequences

VISUALS_FILE = "visuals.json"
VISUALS_KIND = "stabbench-visuals"
VISUALS_FORMAT_VERSION = 1
FORMATS = ("gif", "mp4")
#: Longest model name written on an A|B panel.
NAME_CHARS = 40
#: Colours a GIF keeps exactly: the overlay's, and the black-on-white labels of A|B panels.
GIF_COLOURS = (FLICKER_RGB, OUTLINE_RGB, (255, 255, 255), (0, 0, 0))
#: What ``show --model`` must share with the result's model (the keys of ``results.json["model"]``).
MODEL_IDENTITY = ("id", "sha256", "weights_sha256", "preprocess")


def panel_name(name: str) -> str:
    """``name`` cut to :data:`NAME_CHARS` for an A|B panel's label."""
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 3] + "..."


@dataclass(frozen=True)
class ShownResult:
    """An eval result and where its labels come from: ``folder``, ``results`` (results.json), and
    ``predictions`` (:class:`SavedPredictions`, or :class:`ModelPredictions` with ``--model``)."""

    folder: Path
    results: dict
    predictions: SavedPredictions | ModelPredictions

    @property
    def model_name(self) -> str:
        """The result's name (``--name`` of eval, else the model id)."""
        model = self.results["model"]
        return str(model.get("name") or model.get("id") or "model")

    @property
    def short_name(self) -> str:
        """:attr:`model_name`, cut to :data:`NAME_CHARS` for an A|B panel's label."""
        return panel_name(self.model_name)

    @property
    def band_width(self) -> int:
        return int(self.results["settings"].get("boundary_width", BAND_WIDTH))


class ModelPredictions:
    """Labels made now by the result's own model (``show --model``), for the sequences shown only.

    ``loaded`` (a :class:`~stabbench.predictors.resolver.LoadedModel`) must be the model the
    result records (same id, file sha256, weights and pre/post-processing), else exit 3: the clip
    must show the predictions that were scored.
    """

    def __init__(self, folder: Path, results: dict, loaded, dataset, batch_size: int | None = None):
        for key in MODEL_IDENTITY:
            if loaded.info.get(key) != results["model"].get(key):
                raise DataError(folder, f"--model is not the model of this result ({key} differs: "
                                        f"{loaded.info.get(key)!r} vs {results['model'].get(key)!r})")
        self.loaded, self.dataset, self.batch_size = loaded, dataset, batch_size
        self.positions = {seq.id: i for i, seq in enumerate(dataset)}

    def labels(self, seq_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(N, H, W)`` labels of sequence ``seq_id``, checked as eval checks them (exit 5 on a bad output)."""
        from stabbench.evaluation.sequence import predict_checked
        from stabbench.evaluation.state import EvalState
        from stabbench.metrics import ConfusionMeter, StabilityMeter

        seq = self.dataset[self.positions[seq_id]]
        num_classes = len(self.dataset.classes)
        scratch = EvalState(StabilityMeter(), ConfusionMeter(num_classes=num_classes))
        labels = predict_checked(self.loaded.predictor, seq, seq.frames(), scratch, self.loaded.spec, self.batch_size,
                                 False, num_classes)
        return labels.astype(np.uint8, copy=False)


def open_result(folder: Path) -> ShownResult:
    """A result folder and its saved predictions (exit 3 naming how to get them when there are none)."""
    folder = Path(folder)
    results = load_results(folder)
    return ShownResult(folder, results, SavedPredictions(folder, results))


def open_matching_set(folder: Path, results: dict, set_dir: Path | None):
    """The synthetic set of a result (its recorded path, or ``set_dir``), refused (exit 3) unless its
    content sha256 is the one the result records."""
    from stabbench.synth import open_set

    recorded = results["set"].get("path")
    root = Path(set_dir) if set_dir is not None else Path(str(recorded))
    if set_dir is None and not root.is_dir():
        raise DataError(root, "the result's synthetic set (path recorded in results.json) is not there; pass --set")
    dataset = open_set(root)
    if dataset.content_sha256 != results["set"].get("sha256"):
        raise DataError(root, f"this is not the set {folder} was evaluated on (its content sha256 differs from "
                              "results.json's set.sha256)")
    return dataset


def check_comparable(a: ShownResult, b: ShownResult) -> None:
    """A|B needs both results on the same set (exit 3 otherwise)."""
    if a.results["set"].get("sha256") != b.results["set"].get("sha256"):
        raise DataError(b.folder, f"evaluated on another set than {a.folder} (set.sha256 differs): nothing to compare")


def choose_sequences(results: dict, sequences: tuple[str, ...] | None, worst: int) -> list[dict]:
    """Rows of ``per_sequence``: those named (in the order given), else the ``worst`` by S_boundary."""
    rows = results.get("per_sequence") or []
    if not sequences:
        return worst_sequences(rows, worst)
    by_id = {row["sequence"]: row for row in rows}
    unknown = [s for s in sequences if s not in by_id]
    if unknown:
        raise UsageError(f"--sequences: {', '.join(unknown)} not in the result (it has {len(by_id)} sequences, "
                         f"e.g. {', '.join(sorted(by_id)[:3])})")
    return [by_id[s] for s in dict.fromkeys(sequences)]


def _labels(result: ShownResult, seq) -> np.ndarray:
    labels = result.predictions.labels(seq.id, seq.shape)
    if len(labels) != seq.num_frames:
        raise DataError(result.predictions.folder / seq.id, f"{len(labels)} saved frames, the set's sequence has "
                                                            f"{seq.num_frames}")
    return labels


def write_clip(folder: Path, stem: str, frames: list[np.ndarray], formats: tuple[str, ...], pool: ThreadPoolExecutor,
                pending: list[Future]) -> dict:
    """Write ``stem.gif`` here and ``stem.mp4`` in ``pool`` (ffmpeg encodes in its own process meanwhile;
    its future is added to ``pending``); return the visuals.json keys ``clip_gif`` and ``clip_mp4``."""
    paths = {}
    if "mp4" in formats:
        pending.append(pool.submit(write_mp4, folder / f"{stem}.mp4", frames))
        paths["mp4"] = f"{folder.name}/{stem}.mp4"
    if "gif" in formats:
        write_gif(folder / f"{stem}.gif", frames, keep=GIF_COLOURS)
        paths["gif"] = f"{folder.name}/{stem}.gif"
    return {f"clip_{fmt}": paths.get(fmt) for fmt in FORMATS}


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"cannot encode {path.name}")
    atomic_write_bytes(path, data.tobytes(), durable=False)  # the folder is published as a whole


def _no_timer(name: str):
    return nullcontext()


def render_sequence(folder: Path, seq, row: dict, a: ShownResult, b: ShownResult | None,
                    formats: tuple[str, ...], stage: Callable = _no_timer) -> dict:
    """Write one sequence's clip(s), heatmap and A|B clip(s) into ``folder``; return its visuals.json item.

    ``stage(name)``: a context manager timing each stage (``benchmarks/bench_visuals.py`` passes
    ``StageTimer().stage``); ``mp4 wait`` is the time spent waiting for the MP4 encoder at the end.
    """
    folder.mkdir()
    pending: list[Future] = []
    with ThreadPoolExecutor(1, thread_name_prefix="stabbench-mp4") as pool:
        try:
            item = _render_into(folder, seq, row, a, b, formats, pool, pending, stage)
        finally:
            with stage("mp4 wait"):
                for future in pending:
                    future.result()  # an encoder's error is raised here; all are waited for first
    return item


def _render_into(folder: Path, seq, row: dict, a: ShownResult, b: ShownResult | None, formats: tuple[str, ...],
                 pool: ThreadPoolExecutor, pending: list[Future], stage: Callable) -> dict:
    with stage("read"):
        frames, masks = seq.frames(), seq.masks()
        pairs = list(seq.pairs())
        labels = _labels(a, seq)
    with stage("flicker"):
        seen = sequence_flicker(labels, masks, pairs, a.band_width)
    with stage("overlay"):
        clip = render_clip(frames, labels, seen.flicker, seen.band)
    with stage("clips"):
        item = {"sequence": seq.id, "perturbation": seq.perturbation, "severity": int(seq.severity),
                "S_global": row.get("S_global"), "S_boundary": row.get("S_boundary"),
                **write_clip(folder, "clip", clip, formats, pool, pending)}
    with stage("heatmap"):
        rate, _ = source_flicker_rate(seen.inconsistent, seen.tracked, seq.trajectory.affines, seq.shape)
        source = seq.source_image()  # None for a materialized set: its frame 0 (the source but for an occluder)
        _write_png(folder / "heatmap.png", draw_heatmap(frames[0] if source is None else source, rate, title="flicker rate"))
    item["heatmap"] = f"{folder.name}/heatmap.png"
    item["inconsistent_pixels"] = int(np.count_nonzero(seen.inconsistent))
    item["compare"] = None
    if b is not None:
        labels_b = _labels(b, seq)
        seen_b = sequence_flicker(labels_b, masks, pairs, b.band_width)
        clip_b = render_clip(frames, labels_b, seen_b.flicker, seen_b.band)
        panel = side_by_side(clip, clip_b, f"A: {a.short_name}", f"B: {b.short_name}")
        paths = write_clip(folder, "compare", panel, formats, pool, pending)
        b_row = next((r for r in b.results.get("per_sequence") or [] if r["sequence"] == seq.id), {})
        item["compare"] = {"model_b": b.model_name, **paths,
                           "S_global_b": b_row.get("S_global"), "S_boundary_b": b_row.get("S_boundary")}
    return item


def show(result_dir: Path, *, set_dir: Path | None = None, sequences: tuple[str, ...] | None = None, worst: int = 3,
         compare_dir: Path | None = None, formats: tuple[str, ...] = FORMATS, out: Path | None = None,
         overwrite: bool = False, progress: Callable[[int, int], None] | None = None, model=None,
         batch_size: int | None = None) -> Path:
    """Render the chosen sequences of a result (see the module docstring); return the output folder.

    ``model``: a loaded predictor (:class:`~stabbench.predictors.resolver.LoadedModel`) that must be
    the result's model: its labels are made now, for the chosen sequences only, instead of read
    from saved predictions. Everything is checked before anything is rendered: saved
    predictions of both results (or the model's identity), the set's identity, the sequence ids,
    an existing output (exit 4 without ``overwrite``).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"--format: {', '.join(unknown) or 'nothing'} given; choose from {', '.join(FORMATS)}")
    folder = Path(result_dir)
    results = load_results(folder)
    b = open_result(Path(compare_dir)) if compare_dir is not None else None
    dataset = open_matching_set(folder, results, set_dir)
    labels = SavedPredictions(folder, results) if model is None else ModelPredictions(folder, results, model, dataset,
                                                                                      batch_size)
    a = ShownResult(folder, results, labels)
    if b is not None:
        check_comparable(a, b)
    rows = choose_sequences(a.results, sequences, worst)
    positions = {seq.id: i for i, seq in enumerate(dataset)}
    missing = [row["sequence"] for row in rows if row["sequence"] not in positions]
    if missing:
        raise DataError(dataset.root, f"sequence {missing[0]} of the result is not in the set")
    out = Path(out) if out is not None else a.folder / "visuals"
    _refuse_existing(out, overwrite)

    def fill(tmp: Path) -> None:
        items = []
        for done, row in enumerate(rows):
            items.append(render_sequence(tmp / row["sequence"], dataset[positions[row["sequence"]]], row, a, b, formats))
            if progress is not None:
                progress(done + 1, len(rows))
        atomic_write_json(tmp / VISUALS_FILE, visuals_document(a, b, dataset, out, items, formats))

    publish_dir(out, fill, check=lambda: _refuse_existing(out, overwrite))
    return out


def visuals_document(a: ShownResult, b: ShownResult | None, dataset, out: Path, items: list[dict],
                     formats: tuple[str, ...]) -> dict:
    """The content of visuals.json (paths relative to the visuals folder)."""
    from stabbench import __version__

    return {
        "format_version": VISUALS_FORMAT_VERSION,
        "kind": VISUALS_KIND,
        "result": os.path.relpath(a.folder.resolve(), out.resolve()),
        "model": a.model_name,
        "model_b": None if b is None else b.model_name,
        "set": str(dataset.root),
        "set_sha256": a.results["set"].get("sha256"),
        "boundary_width": a.band_width,
        "formats": list(formats),
        "stabbench_version": __version__,
        "items": items,
    }


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise OutputConflictError(f"{out}: already exists; pass --overwrite to replace it")
    if not (out / VISUALS_FILE).is_file():
        raise OutputConflictError(f"{out}: exists and is not a `stabbench show` output; refusing to replace it")

