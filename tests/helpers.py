"""Helpers shared by the test modules (fixtures live in the ``conftest.py`` files).

Sections: running the CLI, reading what it wrote, the real DAVIS sample, exact
comparisons, small synthetic sets through the API, dataset trees, label maps and flows
(metrics), perturbations, images (flow), tensors (losses), predictors, leaderboard rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import perturbations as P
from stabbench.errors import DataError

REPO = Path(__file__).resolve().parents[1]
#: The real DAVIS-2016 sample, next to the checkout; tests that need it take the
#: ``davis_sample`` fixture (tests/conftest.py), which skips them when it is absent.
DAVIS_SAMPLE = REPO.parent / "shared" / "data" / "davis-sample"


# ----------------------------------------------------------------------------- the CLI


def cli(*args, **kw) -> Result:
    """``stabbench ARGS...`` in-process (click's CliRunner); arguments are converted with ``str``,
    keyword arguments (``env=...``) go to ``CliRunner.invoke``."""
    from stabbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def ok(result: Result) -> Result:
    """Assert exit 0 (showing stderr and any traceback otherwise) and return the result."""
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return result


def fails(result: Result, code: int) -> str:
    """Assert exit ``code`` with a ``stabbench: error:`` line last on stderr; return that line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("stabbench: error: "), result.stderr
    return lines[-1]


def eval_cli(model: str, set_dir: Path, out: Path, *args, env: dict | None = None) -> Result:
    """``stabbench eval -q --model MODEL --set SET_DIR --out OUT ARGS...``."""
    return cli("eval", "-q", "--model", model, "--set", set_dir, "--out", out, *args, env=env)


def error_line(result: Result) -> str:
    """The error message of a failed command: exactly one line on stderr, nothing on stdout."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stabbench: error: "), lines[0]
    assert result.stdout == ""
    return lines[0]


# ----------------------------------------------------------------------------- what the CLI wrote

#: The headline metrics of ``results.json`` and of a leaderboard row.
HEADLINE = ("S_global", "S_boundary", "mIoU_syn")
#: SOURCE_DATE_EPOCH of the oracle's eval run (tests/cli/conftest.py): 2023-11-14T22:13:20+00:00
EPOCH = "1700000000"
EPOCH_DATE = "2023-11-14T22:13:20+00:00"
#: Flip rate of the ``builtin:flicker`` eval run (tests/cli/conftest.py).
FLICKER_RATE = 0.1


def results_of(out: Path) -> dict:
    """The ``results.json`` of an eval output folder."""
    return json.loads((out / "results.json").read_text())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative posix path -> digest)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- the real DAVIS sample


def davis_subset(root: Path, sequences, sample: Path = DAVIS_SAMPLE) -> Path:
    """A DAVIS root at ``root`` holding only ``sequences`` of the real sample, as symlinks (no copies)."""
    for sub in ("JPEGImages", "Annotations"):
        (root / sub / "480p").mkdir(parents=True)
        for seq in sequences:
            (root / sub / "480p" / seq).symlink_to(sample / sub / "480p" / seq, target_is_directory=True)
    return root


# ----------------------------------------------------------------------------- exact comparisons


def outcome(fn, *args):
    """``fn(*args)``, or the type of the exception it raised (so both sides can be compared)."""
    with np.errstate(all="ignore"):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            return type(exc)


def assert_same(got, want, context="") -> None:
    """Same exception type, or same dtype, shape and bits (signed zeros included; a NaN only
    has to be a NaN: its sign bit depends on which machine instruction made it)."""
    if isinstance(want, type):
        assert got is want, (context, got, want)
        return
    assert isinstance(got, np.ndarray), (context, got)
    assert got.dtype == want.dtype and got.shape == want.shape, (context, got.dtype, got.shape, want.shape)
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), context
        got, want = got[~nan], want[~nan]
    assert got.tobytes() == want.tobytes(), (context, int((got != want).sum()))


# ----------------------------------------------------------------------------- synthetic sets through the API

SH, SW = 48, 64  # shapes size for API runs


def shapes_listing(num_images: int = 2, height: int = SH, width: int = SW):
    from stabbench.datasets import list_sources

    return list_sources("shapes", num_images=num_images, height=height, width=width)


def api_config(listing, protocol="paper", num_frames=3, seed=0, perturbations=P.PERTURBATION_NAMES, severities=P.SEVERITIES,
               materialize=True):
    """A set's config (materialized by default: the tests that use it look at the frame files)."""
    from stabbench.synth.writer import SynthConfig

    return SynthConfig("shapes", None, listing.options, protocol, num_frames, seed, tuple(perturbations), tuple(severities),
                       materialize)


def api_synth(out: Path, num_images: int = 2, overwrite: bool = False, **kw):
    from stabbench.synth.writer import synthesize

    listing = shapes_listing(num_images)
    return synthesize(listing, api_config(listing, **kw), out, overwrite=overwrite)


class Interrupt:
    """Wrap ``writer.write_sequence`` to raise KeyboardInterrupt after ``after`` sequences
    (install it with ``monkeypatch.setattr(writer, "write_sequence", Interrupt(n))``)."""

    def __init__(self, after: int):
        import stabbench.synth.writer as writer

        self.after, self.calls = after, 0
        self.original = writer.write_sequence

    def __call__(self, *args, **kwargs):
        if self.calls >= self.after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.original(*args, **kwargs)


# ----------------------------------------------------------------------------- dataset trees

TREE_W, TREE_H = 32, 24  # size of the images of the dataset trees


def write_image(path: Path, size: tuple[int, int] = (TREE_W, TREE_H), seed: int = 0) -> Path:
    """Write a random RGB image (format from the suffix); ``size`` is (W, H)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def write_gray(path: Path, values: np.ndarray) -> Path:
    """Write ``(H, W)`` uint8 values as an 8-bit grayscale ("L") PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def blob(value: int, x0: int = 4, x1: int = 12) -> np.ndarray:
    """``(TREE_H, TREE_W)`` uint8 zeros with a rectangle of ``value``."""
    mask = np.zeros((TREE_H, TREE_W), np.uint8)
    mask[6:14, x0:x1] = value
    return mask


def assert_data_error(excinfo: pytest.ExceptionInfo, path: Path, *problem_words: str) -> None:
    """The DataError names ``path`` and each of ``problem_words`` (case-insensitive)."""
    err = excinfo.value
    assert isinstance(err, DataError)
    assert str(path) in str(err), str(err)
    for word in problem_words:
        assert word.lower() in str(err).lower(), str(err)


# ----------------------------------------------------------------------------- label maps and flows (metrics)

# frame t; the content moves one pixel right (flow dx = +1)
PRED_T = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 1, 1, 1],
        [0, 0, 0, 1],
    ],
    np.uint8,
)


def const_flow(h: int, w: int, dx: float = 0.0, dy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A constant ``(h, w, 2)`` float32 flow and an all-valid mask."""
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow, np.ones((h, w), bool)


def vertical_edge(h: int = 12, w: int = 40, col: int = 20) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[:, col:] = 1
    return mask


def random_blobs(rng: np.random.Generator, h: int, w: int, labels=(0, 1, 2, 255)) -> np.ndarray:
    small = rng.choice(np.array(labels, np.uint8), size=(h // 8 + 1, w // 8 + 1))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


# ----------------------------------------------------------------------------- perturbations


def rounded_std(std: float) -> float:
    """Exact std of round(N(0, std^2)) (the noise the protocol adds), from the normal CDF."""
    cdf = NormalDist(0.0, std).cdf
    var = sum(2 * k * k * (cdf(k + 0.5) - cdf(k - 0.5)) for k in range(1, int(10 * std) + 10))
    return math.sqrt(var)


def trajectory_key(traj: P.Trajectory) -> str:
    return json.dumps(traj.to_dict(), sort_keys=True)


def covered_fraction(traj: P.Trajectory, k: int) -> float:
    """Fraction of frame k's pixels showing source content (covered and un-occluded)."""
    cov = P.geometry.coverage(traj.affines[k], traj.height, traj.width)
    if traj.occluder(k) is not None:
        cov &= ~traj.occluder(k).raster(traj.height, traj.width)
    return float(cov.mean())


# ----------------------------------------------------------------------------- images (flow)


def texture(h: int, w: int, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    from stabbench.datasets.shapes import smooth_texture

    return smooth_texture(np.random.default_rng(seed), h, w, scale)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by ``(dx, dy)``: content at x ends up at x + d (bilinear)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


# ----------------------------------------------------------------------------- tensors (losses)


def gen(seed: int = 0):
    """A seeded ``torch.Generator``."""
    import torch

    return torch.Generator().manual_seed(seed)


def flow_tensor(b: int, h: int, w: int, dx: float = 0.0, dy: float = 0.0, dtype=None):
    """A constant ``(b, 2, h, w)`` flow tensor (float32 unless ``dtype``)."""
    import torch

    flow = torch.empty(b, 2, h, w, dtype=dtype or torch.float32)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def num(t) -> float:
    """A 0-d tensor's value (detached: converting a grad-requiring tensor warns)."""
    return t.detach().item()


def grads(loss, *tensors) -> tuple:
    import torch

    return torch.autograd.grad(loss, tensors, allow_unused=False)


# ----------------------------------------------------------------------------- predictors

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
OVERRIDES = {"mean": ",".join(map(str, MEAN)), "std": list(STD)}  # CLI strings and JSON lists both work


def run_model(model: str, frames: np.ndarray, **kw) -> tuple[np.ndarray, list, dict]:
    """``load_predictor(model, **kw)`` run on ``frames`` in batches of 2: (labels, issues, info)."""
    from stabbench.predictors import load_predictor, predict_sequence

    loaded = load_predictor(model, **kw)
    labels, issues = predict_sequence(loaded.predictor, frames, spec=loaded.spec, batch_size=2)
    return labels, issues, loaded.info


# ----------------------------------------------------------------------------- leaderboard rows


def make_row(model: str, s_global: float = 99.0, set_sha: str = "abc") -> dict:
    return {
        "model": model,
        "model_format": "torchscript",
        "model_sha256": "f" * 64,
        "preprocess": json.dumps({"mean": [0.5, 0.5, 0.5], "input_size": None}),
        "dataset": "shapes",
        "set_sha256": set_sha,
        "protocol_version": "v1",
        "protocol": "paper",
        "seed": 0,
        "sequences": 24,
        "boundary_width": 15,
        "S_global": s_global,
        "S_boundary": 95.5,
        "mIoU_syn": 80.25,
        "stabbench_version": "0.1.0",
        "date": "2026-11-23T00:00:00+00:00",
    }


# ----------------------------------------------------------------------------- visuals (report)


def tiny_gif(frames: int = 3, size: int = 8) -> bytes:
    """An animated GIF of ``frames`` gray levels."""
    images = [Image.fromarray(np.full((size, size), 40 + 60 * k, np.uint8)) for k in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def tiny_png(size: int = 8) -> bytes:
    heat = np.zeros((size, size, 3), np.uint8)
    heat[size // 2:, :, 0] = 255
    buf = io.BytesIO()
    Image.fromarray(heat).save(buf, format="PNG")
    return buf.getvalue()


def write_visuals(result: Path, items: list[dict] | None = None, files: dict[str, bytes] | None = None) -> Path:
    """``RESULT/visuals/visuals.json`` (shape of ``stabbench show``) with a clip, a heatmap and a
    comparison clip of the result's least stable sequence, unless ``items`` are given."""
    folder = result / "visuals"
    folder.mkdir(exist_ok=True)
    results = json.loads((result / "results.json").read_text())
    row = min(results["per_sequence"], key=lambda r: r["S_boundary"])
    files = {"clip.gif": tiny_gif(), "heat.png": tiny_png(), "clip_b.gif": tiny_gif(2)} if files is None else files
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if items is None:
        items = [{"sequence": row["sequence"], "perturbation": row["perturbation"], "severity": row["severity"],
                  "S_global": row["S_global"], "S_boundary": row["S_boundary"], "clip_gif": "clip.gif",
                  "clip_mp4": None, "heatmap": "heat.png",
                  "compare": {"model_b": "builtin:oracle", "clip_gif": "clip_b.gif", "clip_mp4": None}}]
    visuals = {"format_version": 1, "kind": "stabbench-visuals", "model": results["model"]["id"], "set": "small",
               "items": items}
    (folder / "visuals.json").write_text(json.dumps(visuals))
    return folder / "visuals.json"
