"""Sets from strangers: a set never makes stabbench read outside it, and its content is what its
manifest says. Hostile paths, symlinks, FIFOs, tampered bytes, decompression bombs, malformed
manifests (and a property-based fuzz of the manifest reader): exit 3 or a correct evaluation,
never a traceback, never a read outside the set."""

from __future__ import annotations

import builtins
import copy
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stabbench.cli import main
from stabbench.errors import DataError
from stabbench.synth import open_set


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A tiny valid set: 1 image x 2 sequences x 3 frames of 320x240."""
    out = tmp_path_factory.mktemp("trust") / "set"
    result = run("synth", "--dataset", "shapes", "--num-images", "1", "--frames", "3", "--severities", "1,6", "--out", out, "-q",
                 "--materialize")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def copy_set(pristine: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "set"
    shutil.copytree(pristine, dst)
    return dst


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def write_manifest(root: Path, manifest) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest))


def evaluate(root: Path, tmp_path: Path, *extra, **kw):
    return run("eval", "--model", "builtin:oracle", "--set", root, "--out", tmp_path / "ev", "--no-leaderboard",
               "--no-plot", "-q", *extra, **kw)


def assert_refused(result, *words) -> str:
    assert result.exit_code == 3, (result.exit_code, result.output, result.exception)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("stabbench: error:") and "Traceback" not in result.output
    for word in words:
        assert word in line, line
    return line


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/frame.png", ".hidden.png", "..", ""])
def test_file_names_outside_the_set_are_refused(copy_set: Path, tmp_path: Path, name: str) -> None:
    manifest = manifest_of(copy_set)
    manifest["sequences"][0]["frames"][1]["frame"] = name
    write_manifest(copy_set, manifest)
    for command in (evaluate(copy_set, tmp_path), run("info", copy_set), run("info", copy_set, "--verify")):
        assert_refused(command, "manifest")


@pytest.mark.parametrize("seq_id", ["../outside", "/tmp", "a/b", "."])
def test_sequence_ids_outside_the_set_are_refused(copy_set: Path, tmp_path: Path, seq_id: str) -> None:
    manifest = manifest_of(copy_set)
    manifest["sequences"][0]["id"] = seq_id
    write_manifest(copy_set, manifest)
    assert_refused(evaluate(copy_set, tmp_path), "id")


def test_a_symlink_leaving_the_set_is_refused(copy_set: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    target = copy_set / manifest_of(copy_set)["sequences"][0]["id"] / "frame_01.png"
    shutil.copy(target, secret)  # same bytes: only the location gives it away
    target.unlink()
    target.symlink_to(secret)
    assert_refused(evaluate(copy_set, tmp_path), "outside the synthetic set")
    assert_refused(run("info", copy_set, "--verify"), "outside the synthetic set")


def test_a_symlinked_sequence_folder_leaving_the_set_is_refused(copy_set: Path, tmp_path: Path) -> None:
    seq = copy_set / manifest_of(copy_set)["sequences"][0]["id"]
    moved = tmp_path / "elsewhere"
    shutil.move(seq, moved)
    seq.symlink_to(moved, target_is_directory=True)
    assert_refused(evaluate(copy_set, tmp_path), "outside the synthetic set")


def test_a_symlink_inside_the_set_is_fine(copy_set: Path, tmp_path: Path) -> None:
    seq = copy_set / manifest_of(copy_set)["sequences"][0]["id"]
    (seq / "frame_01.png").rename(copy_set / "kept.png")
    (seq / "frame_01.png").symlink_to(copy_set / "kept.png")
    assert evaluate(copy_set, tmp_path).exit_code == 0


@pytest.mark.parametrize("member", ["frame", "manifest"])
def test_a_fifo_is_refused_not_waited_on(copy_set: Path, tmp_path: Path, member: str) -> None:
    path = copy_set / "manifest.json" if member == "manifest" else (
        copy_set / manifest_of(copy_set)["sequences"][0]["id"] / "mask_02.png")
    if member == "frame":
        manifest = manifest_of(copy_set)
    path.unlink()
    os.mkfifo(path)
    if member == "manifest":
        assert_refused(evaluate(copy_set, tmp_path), "not a regular file")
    else:
        write_manifest(copy_set, manifest)
        assert_refused(evaluate(copy_set, tmp_path), "not a regular file")


# ----------------------------------------------------------------------------- content


def test_tampered_bytes_are_refused_as_they_are_read(copy_set: Path, tmp_path: Path) -> None:
    seq = manifest_of(copy_set)["sequences"][1]["id"]
    target = copy_set / seq / "frame_02.png"
    data = bytearray(target.read_bytes())
    data[-30] ^= 0x01  # still a decodable PNG? maybe not: either way not what the manifest says
    target.write_bytes(bytes(data))
    line = assert_refused(evaluate(copy_set, tmp_path), "checksum")
    assert str(target) in line
    assert not (tmp_path / "ev").exists()  # nothing that looks like a result


def test_a_replaced_frame_of_the_right_size_is_refused(copy_set: Path, tmp_path: Path) -> None:
    """Another valid PNG of the same size (a swapped frame) is caught by its checksum."""
    seq = copy_set / manifest_of(copy_set)["sequences"][0]["id"]
    shutil.copy(seq / "frame_00.png", seq / "frame_01.png")
    assert_refused(evaluate(copy_set, tmp_path), "checksum")


def png_bytes(width: int, height: int) -> bytes:
    """A tiny PNG header declaring width x height (its data is a single zlib stream of zeros)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_frame_declaring_another_size_is_refused_before_decoding(copy_set: Path, tmp_path: Path) -> None:
    """A bomb (30000 x 30000 declared) whose checksum was updated too: refused by its header."""
    import hashlib

    manifest = manifest_of(copy_set)
    record = manifest["sequences"][0]
    bomb = png_bytes(30000, 30000)
    (copy_set / record["id"] / "frame_01.png").write_bytes(bomb)
    record["frames"][1].update(frame_bytes=len(bomb), frame_sha256=hashlib.sha256(bomb).hexdigest())
    write_manifest(copy_set, manifest)
    assert_refused(evaluate(copy_set, tmp_path), "30000x30000", "the manifest says 320x240")


def test_a_manifest_declaring_a_huge_frame_is_refused(copy_set: Path, tmp_path: Path) -> None:
    manifest = manifest_of(copy_set)
    manifest["sequences"][0]["trajectory"]["height"] = 100_000
    manifest["sequences"][0]["trajectory"]["width"] = 100_000
    write_manifest(copy_set, manifest)
    assert_refused(evaluate(copy_set, tmp_path), "beyond the limit")


def test_a_source_bomb_is_refused_by_synth(tmp_path: Path) -> None:
    root = tmp_path / "people"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "a.png").write_bytes(png_bytes(30000, 30000))
    (root / "masks" / "a.png").write_bytes(png_bytes(30000, 30000))
    result = run("synth", "--dataset", "folder", "--root", root, "--out", tmp_path / "syn", "-q")
    assert_refused(result, "a.png")


def test_the_pixel_limit_is_configurable(pristine: Path, tmp_path: Path) -> None:
    result = evaluate(pristine, tmp_path, env={"STABBENCH_MAX_PIXELS": "1000"})
    assert_refused(result, "STABBENCH_MAX_PIXELS")


# ----------------------------------------------------------------------------- malformed manifests


MALFORMED = {
    "a JSON list": lambda m: [m],
    "null sequences": lambda m: {**m, "sequences": None},
    "missing classes": lambda m: {k: v for k, v in m.items() if k != "classes"},
    "string seed": lambda m: {**m, "config": {**m["config"], "seed": "0"}},
    "count mismatch": lambda m: {**m, "num_sequences": 7},
    "singular affine": lambda m: _set(m, ["sequences", 0, "trajectory", "affines", 1], [[0, 0, 1], [0, 0, 1]]),
    "NaN in affine": lambda m: _set(m, ["sequences", 0, "trajectory", "affines", 1, 0, 0], float("nan")),
    "null frames": lambda m: _set(m, ["sequences", 0, "frames"], None),
    "frames of a list": lambda m: _set(m, ["sequences", 0, "frames", 0], [1, 2]),
    "unknown perturbation": lambda m: _set(m, ["sequences", 0, "plan", "perturbation"], "explode"),
    "severity 9": lambda m: _set(m, ["sequences", 0, "plan", "severity"], 9),
    "bad sha": lambda m: _set(m, ["sequences", 0, "frames", 0, "mask_sha256"], "xyz"),
    "negative size": lambda m: _set(m, ["sequences", 0, "frames", 0, "mask_bytes"], -1),
    "occluder colour": lambda m: _set(m, ["sequences", 1, "trajectory", "occluders"], [None, {"cx": 1, "cy": 1, "ax": 1, "ay": 1, "color": "red"}, None]),
    "duplicate id": lambda m: _set(m, ["sequences", 1, "id"], m["sequences"][0]["id"]),
    "too few frames": lambda m: _set(m, ["sequences", 0, "frames"], m["sequences"][0]["frames"][:1]),
}


def _set(manifest, keys, value):
    manifest = copy.deepcopy(manifest)
    target = manifest
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return manifest


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifests_are_one_line_exit_3(copy_set: Path, tmp_path: Path, case: str) -> None:
    write_manifest(copy_set, MALFORMED[case](manifest_of(copy_set)))
    assert_refused(evaluate(copy_set, tmp_path), "manifest")
    assert_refused(run("info", copy_set), "manifest")


def test_not_json_and_empty_manifest(copy_set: Path, tmp_path: Path) -> None:
    (copy_set / "manifest.json").write_text("{")
    assert_refused(evaluate(copy_set, tmp_path), "corrupt manifest")
    (copy_set / "manifest.json").write_text("")
    assert_refused(evaluate(copy_set, tmp_path), "corrupt manifest")


# ----------------------------------------------------------------------------- fuzz


def _mutations():
    """A path into the manifest and a replacement value."""
    values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                       st.text(max_size=12), st.just("../../x"), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
    return st.tuples(st.lists(st.integers(0, 40), min_size=1, max_size=7), values, st.booleans())


def _mutate(manifest, steps, value, delete):
    """Follow ``steps`` (indices into keys/items) down the manifest; replace (or delete) what is there."""
    manifest = copy.deepcopy(manifest)
    parent, key, node = None, None, manifest
    for step in steps:
        if isinstance(node, dict) and node:
            keys = sorted(node)
            parent, key = node, keys[step % len(keys)]
        elif isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    if parent is None:
        return value
    if delete and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = value
    return manifest


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(mutation=_mutations())
def test_fuzzed_manifests_give_exit_3_or_a_correct_result(pristine: Path, tmp_path_factory, mutation) -> None:
    """Random mutations of a valid manifest: a DataError (exit 3) or an evaluation equal to the
    pristine one where the mutation is harmless; never another exception, never a read outside."""
    work = tmp_path_factory.mktemp("fuzz")
    root = work / "set"
    shutil.copytree(pristine, root)
    steps, value, delete = mutation
    write_manifest(root, _mutate(manifest_of(pristine), steps, value, delete))
    opened: list[str] = []
    real_open = builtins.open

    def watching_open(file, *args, **kwargs):
        opened.append(os.path.realpath(file) if isinstance(file, (str, Path)) else str(file))
        return real_open(file, *args, **kwargs)

    builtins.open = watching_open
    try:
        try:
            dataset = open_set(root)
            for seq in dataset:
                frames, masks = seq.frames(), seq.masks()
                assert frames.shape[0] == masks.shape[0] == seq.num_frames
                for _t, flow, valid in seq.pairs():
                    assert np.isfinite(flow).all() and valid.dtype == bool
        except DataError:
            pass
    finally:
        builtins.open = real_open
    real_root = os.path.realpath(root)
    outside = [p for p in opened if p.startswith("/") and not p.startswith(real_root) and "site-packages" not in p
               and not p.startswith("/proc") and not p.startswith("/dev")]
    assert not outside, outside


def test_the_reader_reads_its_own_files_only_through_checked_paths(pristine: Path) -> None:
    """A set opened from a relative path with '..' in it still confines reads to its root."""
    rel = os.path.relpath(pristine, Path.cwd())
    dataset = open_set(Path(rel))
    assert dataset[0].frames().dtype == np.uint8
