"""Compact sets (format 3): rendered on demand, bit-identical to materialized sets (every frame,
mask, flow and validity map), deterministic, resumable, verified as rendered, exportable."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stabbench.synth import open_set
from stabbench.synth.writer import synthesize
from tests.helpers import api_config, cli, shapes_listing


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path]:
    """The same command, compact and materialized (grid protocol: every type and severity)."""
    root = tmp_path_factory.mktemp("compact")
    listing = shapes_listing(1)
    for name, materialize in (("compact", False), ("materialized", True)):
        synthesize(listing, api_config(listing, protocol="grid", num_frames=4, seed=4, materialize=materialize), root / name)
    return root / "compact", root / "materialized"


def test_compact_and_materialized_are_bit_identical(both) -> None:
    compact, materialized = (open_set(p) for p in both)
    assert compact.format_version == 3 and materialized.format_version == 1 and len(compact) == len(materialized) == 30
    for a, b in zip(compact, materialized):
        assert a.id == b.id and a.compact and not b.compact
        assert np.array_equal(a.frames(), b.frames()) and np.array_equal(a.masks(), b.masks())
        assert np.array_equal(a.frame(3), b.frame(3)) and np.array_equal(a.mask(0), b.mask(0))
        for (t, flow, valid), (t2, flow2, valid2) in zip(a.pairs(), b.pairs()):
            assert t == t2 and np.array_equal(flow, flow2) and np.array_equal(valid, valid2)


def test_a_compact_set_is_its_sources_and_manifest(both) -> None:
    compact, materialized = both
    assert sorted(p.name for p in compact.iterdir()) == ["manifest.json", "run.json", "sources"]
    assert sorted(p.name for p in (compact / "sources").iterdir()) == ["src_00000_image.png", "src_00000_label.png"]
    size = sum(p.stat().st_size for p in compact.rglob("*") if p.is_file())
    assert size < sum(p.stat().st_size for p in materialized.rglob("*") if p.is_file()) / 5


def test_same_command_same_bytes_and_resume(tmp_path: Path, both) -> None:
    listing = shapes_listing(1)
    config = api_config(listing, protocol="grid", num_frames=4, seed=4, materialize=False)
    synthesize(listing, config, tmp_path / "again")
    assert tree(tmp_path / "again") == tree(both[0])
    calls = {"n": 0}
    import stabbench.synth.writer as writer

    real = writer.write_sequence

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args, **kw)

    writer.write_sequence = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            synthesize(listing, config, tmp_path / "resumed")
    finally:
        writer.write_sequence = real
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    report = synthesize(listing, config, tmp_path / "resumed")
    assert report.resumed == 6 and tree(tmp_path / "resumed") == tree(both[0])


def test_a_changed_source_or_checksum_is_refused(both, tmp_path: Path) -> None:
    copy = tmp_path / "set"
    shutil.copytree(both[0], copy)
    source = copy / "sources" / "src_00000_image.png"
    data = bytearray(source.read_bytes())
    data[-20] ^= 1
    source.write_bytes(bytes(data))
    result = cli("eval", "--model", "builtin:oracle", "--set", copy, "--out", tmp_path / "ev", "--no-leaderboard", "-q")
    assert result.exit_code == 3 and "src_00000_image.png" in result.output and "checksum" in result.output
    shutil.rmtree(copy)
    shutil.copytree(both[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sequences"][2]["frames"][3]["mask_pixels_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = cli("info", copy, "--verify")
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 3 and "seq_00002, mask 3" in line and "changed" in line


def test_export_png_is_the_materialized_set_and_mp4_plays(both, tmp_path: Path) -> None:
    compact, materialized = both
    result = cli("export", compact, "--out", tmp_path / "png", "-q")
    assert result.exit_code == 0, result.output
    exported = tree(tmp_path / "png")
    for name, digest in tree(materialized).items():
        if name.endswith(".png"):
            assert exported[name] == digest, name
    assert cli("info", tmp_path / "png", "--verify").exit_code == 0
    assert cli("export", compact, "--out", tmp_path / "png", "-q").exit_code == 4  # never overwritten unasked
    result = cli("export", compact, "--out", tmp_path / "mp4", "--format", "mp4", "-q")
    assert result.exit_code == 0, result.output
    import imageio.v3 as iio

    video = iio.imread(tmp_path / "mp4" / "seq_00000.mp4", plugin="FFMPEG")
    assert video.shape == (4, *open_set(compact)[0].shape, 3)
    assert len(list((tmp_path / "mp4" / "seq_00000_masks").iterdir())) == 4


def test_info_reports_the_layout(both) -> None:
    result = cli("info", both[0], "--json")
    summary = json.loads(result.output)
    assert summary["layout"] == "compact" and summary["format_version"] == 3


def test_sources_are_decoded_once_per_source_and_shared_read_only(both, monkeypatch) -> None:
    """A source serves many sequences (30 here, grid protocol): the set decodes it once (checked
    against its sha256 then) and its sequences render from the same read-only arrays, to the
    same bytes; a set pickled to a spawned process takes no cached pixels along."""
    import pickle

    import stabbench.synth.reader as reader

    decoded = []
    real_decode = reader.SyntheticSequence._decode
    monkeypatch.setattr(reader.SyntheticSequence, "_decode",
                        lambda self, path, data, what, flags: decoded.append(path.name) or real_decode(self, path, data, what, flags))
    compact, materialized = open_set(both[0]), open_set(both[1])
    for a, b in zip(compact, materialized):
        assert np.array_equal(a.frames(), b.frames()) and np.array_equal(a.masks(), b.masks())
    assert decoded.count("src_00000_image.png") == 1 and decoded.count("src_00000_label.png") == 1
    cached = compact[0]._source("image", reader._IMREAD_RGB if reader._IMREAD_RGB is not None else 1)
    assert not cached.flags.writeable
    clone = pickle.loads(pickle.dumps(compact))
    assert not clone._sources._entries and np.array_equal(clone[5].masks(), compact[5].masks())
