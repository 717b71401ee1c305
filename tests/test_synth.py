"""stabbench.synth and ``stabbench synth`` / ``stabbench info``: protocols, determinism,
the on-disk format and its reader, resuming, refusing to destroy data, bad input, and the
real DAVIS sample."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import perturbations as P
import stabbench.synth.writer as writer
from stabbench.fileio import temporary_name
from stabbench.cli import main
from stabbench.datasets import list_sources
from stabbench.errors import DataError, OutputConflictError
from stabbench.synth import open_set
from stabbench.synth.plan import plan_sequences, sequence_rng
from stabbench.synth.writer import SynthConfig, label_focus, synthesize

REPO = Path(__file__).resolve().parents[1]
DAVIS_SAMPLE = REPO.parent / "shared" / "data" / "davis-sample"
needs_davis = pytest.mark.skipif(not DAVIS_SAMPLE.is_dir(), reason=f"real DAVIS sample not found at {DAVIS_SAMPLE}")

SH, SW = 48, 64  # shapes size for API runs


# ----------------------------------------------------------------------------- helpers


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative posix path -> digest)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def shapes_listing(num_images: int = 2, height: int = SH, width: int = SW):
    return list_sources("shapes", num_images=num_images, height=height, width=width)


def api_config(listing, protocol="paper", num_frames=3, seed=0, perturbations=P.PERTURBATION_NAMES, severities=P.SEVERITIES):
    return SynthConfig("shapes", None, listing.options, protocol, num_frames, seed, tuple(perturbations), tuple(severities))


def api_synth(out: Path, num_images: int = 2, overwrite: bool = False, **kw):
    listing = shapes_listing(num_images)
    return synthesize(listing, api_config(listing, **kw), out, overwrite=overwrite)


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result


def cli_synth(out: Path, *args: str):
    return cli("synth", "--out", str(out), "-q", *args)


def error_line(result) -> str:
    """The error message of a failed command: exactly one line on stderr."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stabbench: error: "), lines[0]
    assert result.stdout == ""
    return lines[0]


def write_rgb(path: Path, height: int = 48, width: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.uint8), (0, 0), 2)
    Image.fromarray(rgb).save(path)
    return path


def write_mask(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def make_davis(root: Path, sequences=("bear",), height: int = 48, width: int = 64) -> Path:
    """A tiny DAVIS-2016-style tree: one annotated frame per sequence (0/255 masks)."""
    for i, seq in enumerate(sequences):
        write_rgb(root / "JPEGImages" / "480p" / seq / "00000.jpg", height, width, seed=i)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : 3 * height // 4, width // 4 : width // 2] = 255
        write_mask(root / "Annotations" / "480p" / seq / "00000.png", mask)
    return root


def davis_subset(tmp_path: Path, sequences=("blackswan",)) -> Path:
    """A DAVIS root holding only ``sequences`` of the real sample, as symlinks (no copies)."""
    root = tmp_path / "davis-subset"
    for sub in ("JPEGImages", "Annotations"):
        (root / sub / "480p").mkdir(parents=True)
        for seq in sequences:
            (root / sub / "480p" / seq).symlink_to(DAVIS_SAMPLE / sub / "480p" / seq, target_is_directory=True)
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


# ----------------------------------------------------------------------------- plans


def test_paper_plan_one_type_per_severity() -> None:
    plans = plan_sequences(200, "paper", seed=3)
    assert len(plans) == 1200
    assert [p.index for p in plans] == list(range(1200))
    for src in range(200):
        mine = [p for p in plans if p.source_index == src]
        assert [p.severity for p in mine] == list(P.SEVERITIES)
        assert [p.slot for p in mine] == list(range(6))
    counts = Counter(p.perturbation for p in plans)
    assert set(counts) == set(P.PERTURBATION_NAMES)
    for n in counts.values():  # uniform draw: 240 expected, sd ~13.9
        assert abs(n - 240) < 5 * 13.9
    # the draw depends on the seed, and a prefix of sources does not depend on their number
    assert [p.perturbation for p in plan_sequences(200, "paper", seed=4)] != [p.perturbation for p in plans]
    assert plan_sequences(7, "paper", seed=3) == plans[:42]


def test_grid_plan_and_subsets() -> None:
    plans = plan_sequences(2, "grid", seed=0)
    assert len(plans) == 60
    for src in (0, 1):
        mine = [(p.perturbation, p.severity) for p in plans if p.source_index == src]
        assert sorted(mine) == sorted((n, s) for n in P.PERTURBATION_NAMES for s in P.SEVERITIES)
        assert sorted(p.slot for p in plans if p.source_index == src) == list(range(30))
    sub = plan_sequences(3, "paper", 0, ("rotation", "occlusion"), (2, 5))
    assert len(sub) == 6 and {p.perturbation for p in sub} <= {"rotation", "occlusion"}
    assert [p.severity for p in sub] == [2, 5] * 3
    with pytest.raises(ValueError, match="paper, grid"):
        plan_sequences(1, "random", 0)


# ----------------------------------------------------------------------------- API: protocols and format


def test_paper_protocol_via_api(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    report = api_synth(out, num_images=2, num_frames=4, seed=1)
    assert (report.num_sequences, report.written, report.resumed) == (12, 12, 0)
    ds = open_set(out)
    assert len(ds) == 12
    for src in (0, 1):
        seqs = [s for s in ds if s.source["name"] == f"shapes/{src:04d}"]
        assert sorted(s.severity for s in seqs) == list(P.SEVERITIES)
        assert all(s.perturbation in P.PERTURBATION_NAMES for s in seqs)
    assert sum(report.counts.values()) == 12
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "run.json"] + [f"seq_{i:05d}" for i in range(12)]


def test_grid_protocol_via_api(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    report = api_synth(out, num_images=1, protocol="grid", num_frames=2)
    ds = open_set(out)
    assert len(ds) == 30 == report.num_sequences
    assert Counter((s.perturbation, s.severity) for s in ds) == Counter(
        {(n, s): 1 for n in P.PERTURBATION_NAMES for s in P.SEVERITIES}
    )


def test_reader_api_and_contents_match_the_protocol(tmp_path: Path) -> None:
    """Frames and masks on disk are what the protocol renders from each sequence's own
    generator, losslessly, in RGB order; flows are the trajectory's."""
    out = tmp_path / "set"
    listing = shapes_listing(2)
    config = api_config(listing, num_frames=5, seed=9)
    synthesize(listing, config, out)
    ds = open_set(out)
    assert repr(ds).startswith("SyntheticSet(") and ds.seed == 9 and ds.protocol_version == "v1"
    assert ds.classes == ("background", "blob", "polygon")
    samples = [ref.load() for ref in listing.sources]
    plans = plan_sequences(2, "paper", 9)
    for seq, plan in zip(ds, plans):
        assert seq.id == f"seq_{plan.index:05d}" and seq.index == plan.index
        assert (seq.perturbation, seq.severity) == (plan.perturbation, plan.severity)
        assert seq.num_frames == 5 and seq.shape == (SH, SW)
        assert isinstance(seq.params, dict) and seq.params == seq.trajectory.params
        assert plan.perturbation in repr(seq)
        frames, masks = seq.frames(), seq.masks()
        assert frames.shape == (5, SH, SW, 3) and frames.dtype == np.uint8
        assert masks.shape == (5, SH, SW) and masks.dtype == np.uint8
        np.testing.assert_array_equal(seq.frame(2), frames[2])
        np.testing.assert_array_equal(seq.mask(4), masks[4])
        # independent re-rendering from the documented seeding
        sample = samples[plan.source_index]
        rng = sequence_rng(9, plan.source_index, plan.slot)
        traj = P.make_trajectory(plan.perturbation, plan.severity, rng, SH, SW, 5, focus=label_focus(sample.label))
        rendered = list(P.render_sequence(sample.image, sample.label, traj, rng))
        np.testing.assert_array_equal(frames, np.stack([f for f, _ in rendered]))
        np.testing.assert_array_equal(masks, np.stack([m for _, m in rendered]))
        np.testing.assert_allclose(seq.trajectory.affines, traj.affines, atol=1e-12)
        assert seq.trajectory.occluders == traj.occluders
        if plan.perturbation != "occlusion":
            np.testing.assert_array_equal(frames[0], sample.image)
        pairs = list(seq.pairs())
        assert [t for t, _, _ in pairs] == [0, 1, 2, 3]
        for t, flow, valid in pairs:
            assert flow.shape == (SH, SW, 2) and flow.dtype == np.float32
            assert valid.shape == (SH, SW) and valid.dtype == bool
            ref_flow, ref_valid = P.pair_correspondence(traj, t)
            np.testing.assert_allclose(flow, ref_flow, atol=1e-5)
            assert (valid != ref_valid).sum() <= 2
        with pytest.raises(IndexError):
            seq.frame(5)
        with pytest.raises(ValueError):
            seq.flow(4)


def test_manifest_records_provenance(tmp_path: Path) -> None:
    out = tmp_path / "set"
    listing = shapes_listing(2)
    synthesize(listing, api_config(listing, num_frames=3, seed=21), out)
    manifest = json.loads((out / "manifest.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert manifest["format"] == "stabbench-synthetic-set" and manifest["format_version"] == 1
    assert manifest["versions"]["protocol"] == P.PROTOCOL_VERSION
    assert set(manifest["versions"]) >= {"stabbench", "protocol", "numpy", "opencv"}
    assert manifest["versions"]["numpy"] == np.__version__ and manifest["versions"]["opencv"] == cv2.__version__
    cfg = manifest["config"]
    assert cfg["seed"] == 21 and cfg["dataset"] == "shapes" and cfg["protocol"] == "paper"
    assert cfg["num_frames"] == 3 and cfg["perturbations"] == list(P.PERTURBATION_NAMES)
    assert cfg["severities"] == list(P.SEVERITIES)
    assert cfg["dataset_options"] == {"num_images": 2, "height": SH, "width": SW, "seed": 0}
    assert {k: manifest[k] for k in run} == run  # manifest = run.json + the rest
    assert manifest["classes"] == ["background", "blob", "polygon"] and manifest["num_sequences"] == 12
    samples = [ref.load() for ref in listing.sources]
    for record in manifest["sequences"]:
        folder = out / record["id"]
        assert json.loads((folder / "sequence.json").read_text()) == record
        plan, src = record["plan"], record["source"]
        assert record["seed"] == 21
        assert record["trajectory"]["perturbation"] == plan["perturbation"]
        assert record["trajectory"]["severity"] == plan["severity"]
        assert isinstance(record["trajectory"]["params"], dict) and record["trajectory"]["params"]
        sample = samples[plan["source_index"]]
        assert src["name"] == sample.name
        assert src["image_sha256"] == hashlib.sha256(sample.image.tobytes()).hexdigest()
        assert src["label_sha256"] == hashlib.sha256(sample.label.tobytes()).hexdigest()
        assert len(record["frames"]) == 3
        for k, item in enumerate(record["frames"]):
            for key in ("frame", "mask"):
                data = (folder / item[key]).read_bytes()
                assert item[key] == f"{key}_{k:02d}.png"
                assert item[key + "_bytes"] == len(data)
                assert item[key + "_sha256"] == hashlib.sha256(data).hexdigest()
    # JSON is written with sorted keys (reproducible bytes)
    text = (out / "manifest.json").read_text()
    assert text == json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    api_synth(a, seed=4)
    api_synth(b, seed=4)
    api_synth(c, seed=5)
    ha, hb, hc = tree_hashes(a), tree_hashes(b), tree_hashes(c)
    assert "manifest.json" in ha and len(ha) == 2 + 12 * (1 + 3 * 2)
    assert ha == hb
    assert set(ha) == set(hc)
    assert ha["manifest.json"] != hc["manifest.json"]
    changed = [k for k in ha if k.endswith(".png") and ha[k] != hc[k]]
    assert len(changed) > 12 * 2  # the noisy frames at least (frame 0 and masks may agree)


def test_a_sequence_regenerates_alone(tmp_path: Path) -> None:
    """Sequence i depends only on (seed, source, slot): written alone it has the same bytes."""
    full = tmp_path / "full"
    listing = shapes_listing(2)
    config = api_config(listing, num_frames=3, seed=8)
    synthesize(listing, config, full)
    alone = tmp_path / "alone"
    alone.mkdir()
    plan = plan_sequences(2, "paper", 8)[9]
    ref = listing.sources[plan.source_index]
    writer.write_sequence(alone, plan, ref.load(), ref.describe(None), config)
    assert tree_hashes(alone / "seq_00009") == tree_hashes(full / "seq_00009")


# ----------------------------------------------------------------------------- resume


class Interrupt:
    """Wrap ``writer.write_sequence`` to raise KeyboardInterrupt after ``after`` sequences."""

    def __init__(self, after: int):
        self.after, self.calls = after, 0
        self.original = writer.write_sequence

    def __call__(self, *args, **kwargs):
        if self.calls >= self.after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.original(*args, **kwargs)


def test_resume_after_interruption_is_byte_identical(tmp_path: Path, monkeypatch) -> None:
    reference = tmp_path / "reference"
    api_synth(reference, seed=2)
    out = tmp_path / "out"
    monkeypatch.setattr(writer, "write_sequence", Interrupt(3))
    with pytest.raises(KeyboardInterrupt):
        api_synth(out, seed=2)
    monkeypatch.undo()
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.glob("seq_*/sequence.json")) == ["sequence.json"] * 3
    with pytest.raises(DataError, match="interrupted") as info:
        open_set(out)
    assert "re-run" in str(info.value)
    kept = {k: v for k, v in tree_hashes(out).items() if k.startswith("seq_")}
    report = api_synth(out, seed=2)
    assert (report.resumed, report.written) == (3, 9)
    final = tree_hashes(out)
    assert final == tree_hashes(reference)
    assert all(final[k] == v for k, v in kept.items())  # finished sequences were kept


def test_resume_after_interruption_inside_a_sequence(tmp_path: Path, monkeypatch) -> None:
    """Killed between writing a temporary file and renaming it, in the middle of a sequence."""
    reference = tmp_path / "reference"
    api_synth(reference, seed=2)
    out = tmp_path / "out"
    calls = {"n": 0}

    def dying_write(path: Path, data: bytes, durable: bool = True) -> None:
        calls["n"] += 1
        if calls["n"] == 20:  # sequence 3 (6 files per sequence), its 2nd file
            temporary_name(path).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt
        temporary_name(path).write_bytes(data)
        os.replace(temporary_name(path), path)

    monkeypatch.setattr(writer.fileio, "atomic_write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        api_synth(out, seed=2)
    monkeypatch.undo()
    assert list(out.glob("seq_00003/*.tmp")) and not (out / "seq_00003" / "sequence.json").exists()
    report = api_synth(out, seed=2)
    assert (report.resumed, report.written) == (3, 9)
    assert tree_hashes(out) == tree_hashes(reference)


def test_resume_repairs_damaged_sequences(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    api_synth(reference, seed=6)
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "manifest.json").unlink()
    (out / "seq_00001" / "sequence.json").unlink()
    (out / "seq_00007" / "sequence.json").unlink()
    frame = out / "seq_00004" / "frame_02.png"
    frame.write_bytes(frame.read_bytes()[:100])  # truncated: size differs from its record
    shutil.rmtree(out / "seq_00010")
    report = api_synth(out, seed=6)
    assert (report.resumed, report.written) == (8, 4)
    assert tree_hashes(out) == tree_hashes(reference)


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


# ----------------------------------------------------------------------------- CLI


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
    assert summary["protocol_version"] == "v1" and summary["config"]["seed"] == 5
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
    write_mask(mask, np.full((24, 32), 255))
    cases["size mismatch"] = (["--dataset", "davis", "--root", str(mismatch)], mask, "32x24")

    empty = make_davis(tmp_path / "empty")
    mask = empty / "Annotations" / "480p" / "bear" / "00000.png"
    write_mask(mask, np.zeros((48, 64)))
    cases["empty mask"] = (["--dataset", "davis", "--root", str(empty)], mask, "empty")

    folder = tmp_path / "folder"
    write_rgb(folder / "images" / "a.png")
    write_rgb(folder / "images" / "b.png")
    write_mask(folder / "masks" / "a.png", np.eye(48, 64) * 255)
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


@needs_davis
def test_real_davis_synth_and_warp(tmp_path: Path) -> None:
    root = davis_subset(tmp_path, ("blackswan",))
    out = tmp_path / "davis-set"
    result = cli_synth(
        out, "--dataset", "davis", "--root", str(root), "--protocol", "grid",
        "--perturbations", "rotation,scaling,translation", "--severities", "4", "--frames", "3",
    )
    assert result.exit_code == 0, result.stderr
    ds = open_set(out)
    assert len(ds) == 3 and ds.classes == ("background", "foreground")
    assert ds.config["dataset"] == "davis" and ds.config["root"] == str(root)
    image_file = DAVIS_SAMPLE / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"
    label_file = DAVIS_SAMPLE / "Annotations" / "480p" / "blackswan" / "00000.png"
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


@needs_davis
def test_real_davis_paper_protocol_api(tmp_path: Path) -> None:
    root = davis_subset(tmp_path, ("camel", "kite-surf"))
    listing = list_sources("davis", root)
    assert [s.name for s in listing.sources] == ["camel/00000", "kite-surf/00000"]
    config = SynthConfig("davis", str(root), listing.options, "paper", 2, 0, P.PERTURBATION_NAMES, (1, 6))
    out = tmp_path / "set"
    report = synthesize(listing, config, out)
    assert report.num_sequences == 4 and report.written == 4
    ds = open_set(out)
    assert [s.severity for s in ds] == [1, 6, 1, 6]
    for seq in ds:
        mask0 = seq.mask(0)
        label = (np.asarray(Image.open(DAVIS_SAMPLE / "Annotations" / "480p" / seq.source["name"].split("/")[0] / "00000.png")) == 255)
        if seq.perturbation != "occlusion":
            np.testing.assert_array_equal(mask0, label.astype(np.uint8))
        else:  # the occluder crosses the object's centroid at the middle frame
            occ = seq.trajectory.occluders
            ys, xs = np.nonzero(label)
            mid = ((occ[0].cx + occ[1].cx) / 2, (occ[0].cy + occ[1].cy) / 2)
            assert mid == pytest.approx((xs.mean(), ys.mean()), abs=1e-6)
            assert math.isfinite(occ[0].ax)
