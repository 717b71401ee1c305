"""``stabbench synth`` / ``stabbench info`` end to end through the CLI (stabbench.cli.synth):
protocols and options, determinism, interrupting and resuming, refusing to destroy data,
bad input (exit 3, one line), the installed entry point, and the real DAVIS sample."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import perturbations as P
import stabbench.synth.writer as writer
from stabbench.datasets import list_sources
from stabbench.errors import OutputConflictError
from stabbench.synth import open_set
from stabbench.synth.writer import SynthConfig, synthesize
from tests.helpers import Interrupt, cli, davis_subset, error_line, tree_hashes, write_gray


def cli_synth(out: Path, *args: str):
    return cli("synth", "--out", str(out), "-q", "--materialize", *args)


def write_rgb(path: Path, height: int = 48, width: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.uint8), (0, 0), 2)
    Image.fromarray(rgb).save(path)
    return path


def make_davis(root: Path, sequences=("bear",), height: int = 48, width: int = 64) -> Path:
    """A tiny DAVIS-2016-style tree: one annotated frame per sequence (0/255 masks)."""
    for i, seq in enumerate(sequences):
        write_rgb(root / "JPEGImages" / "480p" / seq / "00000.jpg", height, width, seed=i)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : 3 * height // 4, width // 4 : width // 2] = 255
        write_gray(root / "Annotations" / "480p" / seq / "00000.png", mask)
    return root


@pytest.fixture(scope="module")
def complete_set(tmp_path_factory) -> Path:
    """A complete small set written by the CLI (shapes 320x240, 1 image, paper, 2 frames)."""
    out = tmp_path_factory.mktemp("complete") / "set"
    result = cli_synth(out, "--num-images", "1", "--frames", "2", "--seed", "5")
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture
def set_copy(complete_set: Path, tmp_path: Path) -> Path:
    out = tmp_path / "existing"
    shutil.copytree(complete_set, out)
    return out


# ----------------------------------------------------------------------------- resume


def test_cli_interrupt_then_resume(tmp_path: Path, monkeypatch, complete_set: Path) -> None:
    out = tmp_path / "out"
    args = ("--num-images", "1", "--frames", "2", "--seed", "5")
    monkeypatch.setattr(writer, "write_sequence", Interrupt(2))
    result = cli_synth(out, *args)
    monkeypatch.undo()
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "re-run" in result.stderr
    assert not (out / "manifest.json").exists()
    info = cli("info", str(out))
    assert info.exit_code == 3 and "interrupted" in error_line(info)
    # other settings: refused, nothing lost
    before = tree_hashes(out)
    other = cli_synth(out, "--num-images", "1", "--frames", "2", "--seed", "6")
    assert other.exit_code == 4
    assert "other settings" in error_line(other) and str(out) in error_line(other)
    other = cli_synth(out, "--num-images", "1", "--frames", "3", "--seed", "5")
    assert other.exit_code == 4
    assert tree_hashes(out) == before
    with pytest.raises(OutputConflictError):
        listing = list_sources("shapes", num_images=1)
        synthesize(listing, SynthConfig("shapes", None, listing.options, num_frames=2, seed=7), out)
    assert tree_hashes(out) == before
    # same command: resumes, and the result is the uninterrupted set
    again = cli_synth(out, *args)
    assert again.exit_code == 0, again.stderr
    assert "resumed: 2 sequences" in again.stderr
    assert tree_hashes(out) == tree_hashes(complete_set)


# ----------------------------------------------------------------------------- synth


def test_cli_paper_and_grid_and_frames(tmp_path: Path) -> None:
    paper = tmp_path / "paper"
    result = cli_synth(paper, "--num-images", "2", "--frames", "2", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert "12 sequences" in result.stdout
    ds = open_set(paper)
    assert len(ds) == 12
    for src in range(2):
        assert sorted(s.severity for s in ds if s.source["index"] == src) == list(P.SEVERITIES)
    assert all(s.num_frames == 2 and s.shape == (240, 320) for s in ds)
    assert sorted(p.name for p in (paper / "seq_00000").iterdir()) == [
        "frame_00.png", "frame_01.png", "mask_00.png", "mask_01.png", "sequence.json"
    ]

    grid = tmp_path / "grid"
    result = cli_synth(grid, "--num-images", "1", "--frames", "2", "--protocol", "grid")
    assert result.exit_code == 0, result.stderr
    assert len(open_set(grid)) == 30

    sub = tmp_path / "sub"
    result = cli_synth(
        sub, "--num-images", "1", "--frames", "4", "--protocol", "grid",
        "--perturbations", "rotation,occlusion", "--severities", "2,6",
    )
    assert result.exit_code == 0, result.stderr
    ds = open_set(sub)
    assert sorted((s.perturbation, s.severity) for s in ds) == [
        ("occlusion", 2), ("occlusion", 6), ("rotation", 2), ("rotation", 6)
    ]
    assert all(s.num_frames == 4 and len(list((sub / s.id).glob("frame_*.png"))) == 4 for s in ds)
    assert ds.config["perturbations"] == ["rotation", "occlusion"] and ds.config["severities"] == [2, 6]


def test_cli_same_seed_same_bytes(tmp_path: Path, complete_set: Path) -> None:
    out = tmp_path / "again"
    result = cli_synth(out, "--num-images", "1", "--frames", "2", "--seed", "5")
    assert result.exit_code == 0
    assert tree_hashes(out) == tree_hashes(complete_set)
    other = tmp_path / "other"
    assert cli_synth(other, "--num-images", "1", "--frames", "2", "--seed", "6").exit_code == 0
    assert tree_hashes(other)["manifest.json"] != tree_hashes(complete_set)["manifest.json"]


def test_cli_complete_set_needs_overwrite(tmp_path: Path, set_copy: Path, complete_set: Path) -> None:
    before = tree_hashes(set_copy)
    result = cli_synth(set_copy, "--num-images", "1", "--frames", "2", "--seed", "5")
    assert result.exit_code == 4
    line = error_line(result)
    assert str(set_copy) in line and "--overwrite" in line
    assert tree_hashes(set_copy) == before
    # a different run onto a complete set: refused as well
    assert cli_synth(set_copy, "--num-images", "2", "--frames", "2").exit_code == 4
    assert tree_hashes(set_copy) == before
    # --overwrite regenerates it with the new settings, leaving no stale sequence behind
    (set_copy / "notes.txt").write_text("mine")
    result = cli_synth(set_copy, "--num-images", "1", "--frames", "3", "--seed", "7", "--overwrite")
    assert result.exit_code == 0, result.stderr
    fresh = tmp_path / "fresh"
    assert cli_synth(fresh, "--num-images", "1", "--frames", "3", "--seed", "7").exit_code == 0
    after = tree_hashes(set_copy)
    assert after.pop("notes.txt") == hashlib.sha256(b"mine").hexdigest()  # not ours: kept
    assert after == tree_hashes(fresh)


def test_cli_never_deletes_a_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    (foreign / "album").mkdir(parents=True)
    (foreign / "a.jpg").write_bytes(b"precious")
    (foreign / "album" / "seq_00000").mkdir()  # even a folder named like ours
    (foreign / "manifest.json").write_text("{}")
    before = tree_hashes(foreign)
    for extra in ((), ("--overwrite",)):
        result = cli_synth(foreign, "--num-images", "1", "--frames", "2", *extra)
        assert result.exit_code == 4
        line = error_line(result)
        assert str(foreign) in line and "not a stabbench synthetic set" in line
        assert tree_hashes(foreign) == before
        assert sorted(p.name for p in foreign.iterdir()) == ["a.jpg", "album", "manifest.json"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = cli_synth(a_file, "--num-images", "1", "--frames", "2", "--overwrite")
    assert result.exit_code == 4 and "not a directory" in error_line(result)
    assert a_file.read_text() == "x"


def test_cli_empty_directory_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert cli_synth(out, "--num-images", "1", "--frames", "2").exit_code == 0
    assert len(open_set(out)) == 6


# ----------------------------------------------------------------------------- info


def test_info_json_and_table(complete_set: Path) -> None:
    result = cli("info", str(complete_set), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sequences"] == 6 and summary["sources"] == 1 and summary["frames"] == 12
    assert summary["protocol_version"] == "v2" and summary["config"]["seed"] == 5
    assert summary["classes"] == ["background", "blob", "polygon"]
    assert sum(sum(row.values()) for row in summary["counts"].values()) == 6
    manifest = json.loads((complete_set / "manifest.json").read_text())
    assert summary["image_bytes"] == sum(
        f["frame_bytes"] + f["mask_bytes"] for r in manifest["sequences"] for f in r["frames"]
    )
    assert summary["manifest_bytes"] == (complete_set / "manifest.json").stat().st_size
    table = cli("info", str(complete_set))
    assert table.exit_code == 0 and "6 sequences" in table.stdout and "seed 5" in table.stdout
    verified = cli("info", str(complete_set), "--verify", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["sequences"] == 6


def test_info_verify_detects_changes(set_copy: Path) -> None:
    target = set_copy / "seq_00003" / "frame_01.png"
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    assert cli("info", str(set_copy)).exit_code == 0  # without --verify: not checked
    result = cli("info", str(set_copy), "--verify")
    assert result.exit_code == 3
    line = error_line(result)
    assert str(target) in line and "checksum" in line
    target.unlink()
    result = cli("info", str(set_copy), "--verify")
    assert result.exit_code == 3 and str(target) in error_line(result) and "missing" in error_line(result)


def test_info_on_bad_directories(tmp_path: Path) -> None:
    result = cli("info", str(tmp_path / "nowhere"))
    assert result.exit_code == 3 and "not found" in error_line(result)
    (tmp_path / "plain").mkdir()
    result = cli("info", str(tmp_path / "plain"))
    assert result.exit_code == 3 and "not a stabbench synthetic set" in error_line(result)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    result = cli("info", str(tmp_path / "broken"))
    assert result.exit_code == 3 and "corrupt manifest" in error_line(result)


def test_installed_entry_point(complete_set: Path) -> None:
    exe = Path(sys.executable).with_name("stabbench")
    if not exe.is_file():
        pytest.skip("console script not installed next to the interpreter")
    proc = subprocess.run([str(exe), "info", str(complete_set), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sequences"] == 6


# ----------------------------------------------------------------------------- bad input


def bad_davis_trees(tmp_path: Path) -> dict[str, tuple[list[str], Path | str, str]]:
    """name -> (extra CLI args, the path the message must name, a phrase of the problem)."""
    cases: dict = {}
    cases["missing root"] = (["--dataset", "davis", "--root", str(tmp_path / "nope")], tmp_path / "nope", "not found")
    wrong = tmp_path / "wrong"
    (wrong / "images").mkdir(parents=True)
    cases["wrong layout"] = (["--dataset", "davis", "--root", str(wrong)], wrong / "JPEGImages" / "480p", "expected DAVIS layout")

    corrupt = make_davis(tmp_path / "corrupt", ("bear", "cat"))
    image = corrupt / "JPEGImages" / "480p" / "cat" / "00000.jpg"
    image.write_bytes(b"not a jpeg at all" * 20)
    cases["corrupt image"] = (["--dataset", "davis", "--root", str(corrupt)], image, "cannot decode image")

    truncated = make_davis(tmp_path / "truncated")
    mask = truncated / "Annotations" / "480p" / "bear" / "00000.png"
    mask.write_bytes(mask.read_bytes()[:50])
    cases["truncated mask"] = (["--dataset", "davis", "--root", str(truncated)], mask, "cannot decode mask")

    mismatch = make_davis(tmp_path / "mismatch")
    mask = mismatch / "Annotations" / "480p" / "bear" / "00000.png"
    write_gray(mask, np.full((24, 32), 255))
    cases["size mismatch"] = (["--dataset", "davis", "--root", str(mismatch)], mask, "32x24")

    empty = make_davis(tmp_path / "empty")
    mask = empty / "Annotations" / "480p" / "bear" / "00000.png"
    write_gray(mask, np.zeros((48, 64)))
    cases["empty mask"] = (["--dataset", "davis", "--root", str(empty)], mask, "empty")

    folder = tmp_path / "folder"
    write_rgb(folder / "images" / "a.png")
    write_rgb(folder / "images" / "b.png")
    write_gray(folder / "masks" / "a.png", np.eye(48, 64) * 255)
    cases["image without mask"] = (["--dataset", "folder", "--root", str(folder)], folder / "images" / "b.png", "no mask")

    cases["unknown dataset"] = (["--dataset", "imagenet"], "'imagenet'", "unknown dataset")
    cases["unknown perturbation"] = (["--perturbations", "rotation,blur"], "'blur'", "unknown perturbation")
    cases["severity out of range"] = (["--severities", "2,7"], "7", "unknown severity")
    cases["severity zero"] = (["--severities", "0"], "0", "unknown severity")
    cases["severity not a number"] = (["--severities", "high"], "high", "severities must be integers")
    return cases


BAD_CASES = [
    "missing root", "wrong layout", "corrupt image", "truncated mask", "size mismatch", "empty mask",
    "image without mask", "unknown dataset", "unknown perturbation", "severity out of range",
    "severity zero", "severity not a number",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exit_3_with_one_line(case: str, tmp_path: Path) -> None:
    args, names, problem = bad_davis_trees(tmp_path)[case]
    result = cli_synth(tmp_path / "out", "--num-images", "1", "--frames", "2", *args)
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    line = error_line(result)
    assert str(names) in line, line
    assert problem in line, line
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_leaves_a_complete_set_untouched(case: str, tmp_path: Path, set_copy: Path) -> None:
    args, _, _ = bad_davis_trees(tmp_path)[case]
    before = tree_hashes(set_copy)
    # without --overwrite the run is refused either for the input (3) or for the output (4)
    result = cli_synth(set_copy, "--num-images", "1", "--frames", "2", *args)
    assert result.exit_code in (3, 4)
    assert tree_hashes(set_copy) == before
    # with --overwrite, bad input must still not cost the existing set
    result = cli_synth(set_copy, "--num-images", "1", "--frames", "2", "--overwrite", *args)
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    error_line(result)
    assert tree_hashes(set_copy) == before
    assert len(open_set(set_copy)) == 6


def test_usage_errors_are_exit_2(tmp_path: Path) -> None:
    assert cli_synth(tmp_path / "o", "--protocol", "random").exit_code == 2
    assert cli_synth(tmp_path / "o", "--frames", "1").exit_code == 2
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- real DAVIS


def test_real_davis_synth_and_warp(tmp_path: Path, davis_sample: Path) -> None:
    root = davis_subset(tmp_path / "davis-subset", ("blackswan",), davis_sample)
    out = tmp_path / "davis-set"
    result = cli_synth(
        out, "--dataset", "davis", "--root", str(root), "--protocol", "grid",
        "--perturbations", "rotation,scaling,translation", "--severities", "4", "--frames", "3",
    )
    assert result.exit_code == 0, result.stderr
    ds = open_set(out)
    assert len(ds) == 3 and ds.classes == ("background", "foreground")
    assert ds.config["dataset"] == "davis" and ds.config["root"] == str(root)
    image_file = davis_sample / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"
    label_file = davis_sample / "Annotations" / "480p" / "blackswan" / "00000.png"
    source_image = np.asarray(Image.open(image_file).convert("RGB"))
    gx, gy = np.meshgrid(np.arange(854, dtype=np.float32), np.arange(480, dtype=np.float32))
    errors = {}
    for seq in ds:
        assert seq.source["name"] == "blackswan/00000"
        assert seq.source["image"].endswith("blackswan/00000.jpg")
        assert seq.source["image_sha256"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
        assert seq.source["label_sha256"] == hashlib.sha256(label_file.read_bytes()).hexdigest()
        frames, masks = seq.frames(), seq.masks()
        assert frames.shape == (3, 480, 854, 3) and masks.shape == (3, 480, 854)
        np.testing.assert_array_equal(frames[0], source_image)
        assert set(np.unique(masks).tolist()) <= {0, 1, 255} and {0, 1} <= set(np.unique(masks[-1]).tolist())
        for t, flow, valid in seq.pairs():
            warped = cv2.remap(frames[t + 1], gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
            comp = np.abs(warped.astype(np.float64) - frames[t])[valid].mean()
            none = np.abs(frames[t + 1].astype(np.float64) - frames[t])[valid].mean()
            errors[(seq.perturbation, t)] = (round(comp, 2), round(none, 2))
            # real, JPEG-textured frames: minute noise (~1.2) plus resampling of fine texture
            assert comp < 3.0, errors
            assert comp < 0.5 * none, errors
    # recorded relative to the dataset root (as given), so the manifest names no machine path
    assert ds[0].source["image"] == "JPEGImages/480p/blackswan/00000.jpg"
    assert (root / ds[0].source["image"]).resolve() == image_file.resolve()
