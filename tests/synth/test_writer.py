"""stabbench.synth.writer: synthetic sets through the API: protocols, provenance in the
manifest, determinism, one sequence regenerated alone, resuming after interruptions and
damage, and the real DAVIS sample."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import perturbations as P
import stabbench.synth.writer as writer
from stabbench.datasets import list_sources
from stabbench.errors import DataError
from stabbench.fileio import temporary_name
from stabbench.synth import open_set
from stabbench.synth.plan import plan_sequences
from stabbench.synth.writer import SynthConfig, synthesize
from tests.helpers import SH, SW, Interrupt, api_config, api_synth, davis_subset, shapes_listing, tree_hashes

# ----------------------------------------------------------------------------- protocols and format


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


# ----------------------------------------------------------------------------- real DAVIS


def test_real_davis_paper_protocol_api(tmp_path: Path, davis_sample: Path) -> None:
    root = davis_subset(tmp_path / "davis-subset", ("camel", "kite-surf"), davis_sample)
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
        label = (np.asarray(Image.open(davis_sample / "Annotations" / "480p" / seq.source["name"].split("/")[0] / "00000.png")) == 255)
        if seq.perturbation != "occlusion":
            np.testing.assert_array_equal(mask0, label.astype(np.uint8))
        else:  # the occluder crosses the object's centroid at the middle frame
            occ = seq.trajectory.occluders
            ys, xs = np.nonzero(label)
            mid = ((occ[0].cx + occ[1].cx) / 2, (occ[0].cy + occ[1].cy) / 2)
            assert mid == pytest.approx((xs.mean(), ys.mean()), abs=1e-6)
            assert math.isfinite(occ[0].ax)
