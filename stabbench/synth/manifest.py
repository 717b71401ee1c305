"""Checking a set's manifest before anything in it is used: sets come from strangers.

:func:`check_manifest` validates every field a reader uses (types, ranges, names), so a
malformed or hostile manifest is a :class:`~stabbench.errors.DataError` (exit 3) naming the
field, never a traceback. :func:`member_path` is the only way a reader turns a name from the
manifest into a path: names are single path components of a restricted alphabet, and the
file must be a regular file inside the set (a symlink may not leave it; no FIFO, socket or
device is ever opened).
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from perturbations import PERTURBATION_NAMES, SEVERITIES
from perturbations.warp import fixed_point_inverse
from stabbench.errors import DataError
from stabbench.fileio import sha256_bytes
from stabbench.limits import check_pixels

#: A file or sequence-folder name in a set: one path component, no leading dot.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: Affines whose 2x2 part has a smaller |determinant| are singular (no inverse correspondence).
MIN_ABS_DET = 1e-6

SET_FORMAT = "stabbench-synthetic-set"
#: 1: materialized (every frame and mask a PNG); 3: compact (sources + trajectories, rendered on
#: demand by the exact fixed-point renderer of protocol v2). 2: the compact sets of protocol v1,
#: rendered by ``cv2.warpAffine``, whose bytes depend on the OpenCV build: no longer read.
MATERIALIZED_FORMAT, LEGACY_COMPACT_FORMAT, COMPACT_FORMAT = 1, 2, 3
SET_FORMAT_VERSIONS = (MATERIALIZED_FORMAT, COMPACT_FORMAT)


def _fail(path: Path, where: str, problem: str) -> DataError:
    return DataError(path, f"malformed manifest: {where}: {problem}")


def _get(obj: Any, key: str, kind: type | tuple, path: Path, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(path, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _fail(path, f"{where}.{key}", "missing")
    value = obj[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(path, f"{where}.{key}", f"expected {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise _fail(path, f"{where}.{key}", f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _number(obj: dict, key: str, path: Path, where: str) -> float:
    value = float(_get(obj, key, (int, float), path, where))
    if not math.isfinite(value):
        raise _fail(path, f"{where}.{key}", f"not a finite number ({value})")
    return value


def check_name(name: str, path: Path, where: str) -> str:
    if not NAME_RE.match(name):
        raise _fail(path, where, f"{name!r} is not a plain file name (letters, digits, '._-'; no '/' or leading '.')")
    return name


def check_manifest(manifest: Any, path: Path) -> dict:
    """Validate a parsed ``manifest.json`` (see the module docstring); returns it unchanged."""
    if not isinstance(manifest, dict):
        raise _fail(path, "top level", f"expected an object, got {type(manifest).__name__}")
    classes = _get(manifest, "classes", list, path, "manifest")
    if not classes or not all(isinstance(c, str) for c in classes) or len(classes) > 255:
        raise _fail(path, "classes", "expected 1 to 255 class names (strings)")
    versions = _get(manifest, "versions", dict, path, "manifest")
    _get(versions, "protocol", str, path, "versions")
    config = _get(manifest, "config", dict, path, "manifest")
    _get(config, "seed", int, path, "config")
    _get(config, "dataset", str, path, "config")
    _get(config, "protocol", str, path, "config")
    sequences = _get(manifest, "sequences", list, path, "manifest")
    count = _get(manifest, "num_sequences", int, path, "manifest")
    if count != len(sequences):
        raise _fail(path, "num_sequences", f"says {count}, the list holds {len(sequences)}")
    version = manifest.get("format_version")
    seen: set[str] = set()
    for i, record in enumerate(sequences):
        seq_id = check_record(record, path, f"sequences[{i}]", version)
        if seq_id in seen:
            raise _fail(path, f"sequences[{i}].id", f"{seq_id!r} appears twice")
        seen.add(seq_id)
    return manifest


def check_record(record: Any, path: Path, where: str, format_version: int = 1) -> str:
    """Validate one sequence record of a set of ``format_version`` (1 materialized, 3 compact); returns its id."""
    seq_id = check_name(_get(record, "id", str, path, where), path, f"{where}.id")
    plan = _get(record, "plan", dict, path, where)
    _get(plan, "index", int, path, f"{where}.plan")
    if _get(plan, "perturbation", str, path, f"{where}.plan") not in PERTURBATION_NAMES:
        raise _fail(path, f"{where}.plan.perturbation", f"unknown perturbation {plan['perturbation']!r}")
    if _get(plan, "severity", int, path, f"{where}.plan") not in SEVERITIES:
        raise _fail(path, f"{where}.plan.severity", f"{plan['severity']} is not a severity 1-6")
    _get(record, "source", dict, path, where)
    frames = _get(record, "frames", list, path, where)
    height, width, num_affines = check_trajectory(_get(record, "trajectory", dict, path, where), path, f"{where}.trajectory")
    if len(frames) < 2 or len(frames) != num_affines:
        raise _fail(path, f"{where}.frames", f"{len(frames)} frames for {num_affines} trajectory steps (at least 2)")
    for k, item in enumerate(frames):
        for key in ("frame", "mask"):
            if format_version == COMPACT_FORMAT:
                _sha(item, key + "_pixels_sha256", path, f"{where}.frames[{k}]")
            else:
                _file_entry(item, key, path, f"{where}.frames[{k}]")
    if format_version == COMPACT_FORMAT:
        render = _get(record, "render", dict, path, where)
        files = _get(render, "source_files", dict, path, f"{where}.render")
        for key in ("image", "label"):
            _file_entry(files, key, path, f"{where}.render.source_files")
        check_generator(_get(render, "generator", dict, path, f"{where}.render"), path, f"{where}.render.generator")
    return seq_id


def _sha(item: dict, key: str, path: Path, where: str) -> None:
    if not SHA256_RE.match(_get(item, key, str, path, where)):
        raise _fail(path, f"{where}.{key}", "not a sha256 hex digest")


def _file_entry(item: dict, key: str, path: Path, where: str) -> None:
    """``item[key]`` a file name, ``item[key_sha256]`` its digest, ``item[key_bytes]`` its size."""
    check_name(_get(item, key, str, path, where), path, f"{where}.{key}")
    _sha(item, key + "_sha256", path, where)
    if _get(item, key + "_bytes", int, path, where) < 0:
        raise _fail(path, f"{where}.{key}_bytes", "negative")


def check_generator(state: dict, path: Path, where: str) -> None:
    """A PCG64 state as :func:`stabbench.synth.writer.generator_state` writes it."""
    if _get(state, "bit_generator", str, path, where) != "PCG64":
        raise _fail(path, f"{where}.bit_generator", "only PCG64 is supported")
    inner = _get(state, "state", dict, path, where)
    for key in ("state", "inc"):
        if not 0 <= _get(inner, key, int, path, f"{where}.state") < 2**128:
            raise _fail(path, f"{where}.state.{key}", "not a 128-bit unsigned integer")
    if _get(state, "has_uint32", int, path, where) not in (0, 1):
        raise _fail(path, f"{where}.has_uint32", "must be 0 or 1")
    if not 0 <= _get(state, "uinteger", int, path, where) < 2**32:
        raise _fail(path, f"{where}.uinteger", "not a 32-bit unsigned integer")


def check_trajectory(data: dict, path: Path, where: str) -> tuple[int, int, int]:
    """Validate a trajectory record; returns ``(height, width, number of affines)``."""
    height = _get(data, "height", int, path, where)
    width = _get(data, "width", int, path, where)
    check_pixels(path, width, height)
    _get(data, "perturbation", str, path, where)
    _get(data, "severity", int, path, where)
    _get(data, "params", dict, path, where)
    _number(data, "noise_step", path, where)
    try:
        affines = np.asarray(_get(data, "affines", list, path, where), dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"{where}.affines", "not a list of 2x3 matrices of numbers") from None
    if affines.ndim != 3 or affines.shape[1:] != (2, 3) or not np.isfinite(affines).all():
        raise _fail(path, f"{where}.affines", f"expected N finite 2x3 matrices, got shape {affines.shape}")
    det = affines[:, 0, 0] * affines[:, 1, 1] - affines[:, 0, 1] * affines[:, 1, 0]
    if (np.abs(det) < MIN_ABS_DET).any():
        raise _fail(path, f"{where}.affines[{int(np.argmax(np.abs(det) < MIN_ABS_DET))}]", "singular matrix")
    for k, affine in enumerate(affines):
        try:
            fixed_point_inverse(affine, height, width)
        except ValueError as exc:
            raise _fail(path, f"{where}.affines[{k}]", str(exc)) from None
    occluders = _get(data, "occluders", list, path, where)
    if occluders and len(occluders) != len(affines):
        raise _fail(path, f"{where}.occluders", f"{len(occluders)} entries for {len(affines)} frames")
    for k, occ in enumerate(occluders):
        if occ is None:
            continue
        for key in ("cx", "cy", "ax", "ay"):
            _number(occ, key, path, f"{where}.occluders[{k}]")
        if min(occ["ax"], occ["ay"]) <= 0:
            raise _fail(path, f"{where}.occluders[{k}]", "semi-axes must be positive")
        color = _get(occ, "color", list, path, f"{where}.occluders[{k}]")
        if len(color) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color):
            raise _fail(path, f"{where}.occluders[{k}].color", "expected 3 integers 0-255")
    return height, width, len(affines)


def member_path(root: Path, *names: str) -> Path:
    """``root / names...`` for names already checked with :func:`check_name`, as a regular file
    inside ``root``; DataError otherwise (missing, a symlink leaving the set, not a regular file)."""
    path = root.joinpath(*names)
    try:
        info = os.stat(path)  # follows symlinks: what would be opened
    except FileNotFoundError:
        raise DataError(path, "missing file of a synthetic set") from None
    except OSError as exc:
        raise DataError(path, f"cannot access a file of the synthetic set ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(path, "not a regular file (a folder, FIFO, socket or device); refused")
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise DataError(path, f"leads outside the synthetic set (to {real}); refused")
    return path


def read_member(path: Path, size: int, sha256: str) -> bytes:
    """The bytes of a set's file, checked against the manifest's size and sha256 as they are read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise DataError(path, "not a regular file; refused")
            data = handle.read(size + 1)
    except OSError as exc:
        raise DataError(path, f"cannot read a file of the synthetic set ({exc.strerror or exc})") from None
    if len(data) != size or sha256_bytes(data) != sha256:
        raise DataError(path, "size or checksum (sha256) differs from the manifest: the set was changed or is corrupt")
    return data
