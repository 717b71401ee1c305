"""Read a synthetic set: frames, masks and, for each successive pair, flow and validity.

    >>> from stabbench.synth import open_set
    >>> ds = open_set("synth-out")
    >>> seq = ds[0]
    >>> seq.perturbation, seq.severity, seq.num_frames
    ('rotation', 3, 11)
    >>> frames = seq.frames()            # (N, H, W, 3) uint8 RGB
    >>> masks = seq.masks()              # (N, H, W) uint8, 255 = ignore
    >>> flow, valid = seq.flow(0)        # (H, W, 2) float32, (H, W) bool

Convention: see :mod:`perturbations.geometry`; ``flow[y, x]`` is where the content of
pixel ``(x, y)`` of frame ``t`` is in frame ``t+1``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from perturbations import Trajectory, pair_correspondence
from stabbench.errors import DataError
from stabbench.limits import png_size
from stabbench.synth.manifest import COMPACT_FORMAT, LEGACY_COMPACT_FORMAT, check_manifest, member_path, read_member
from stabbench.synth.writer import MANIFEST_FILE, RUN_FILE, SET_FORMAT, SET_FORMAT_VERSIONS, SOURCES_DIR, pixels_sha256

#: ``cv2.IMREAD_COLOR_RGB`` (OpenCV >= 4.10: decode straight to RGB), else ``None``.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


class SourceCache:
    """The last few decoded source images and labels of a compact set, shared by its sequences
    (a source serves several consecutive sequences: 6 under the paper protocol, 30 under the
    grid). Keyed by file name and sha256 (each entry was checked against it when decoded);
    entries are read-only arrays. Thread-safe (the runner reads ahead in a thread)."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # pickled (a set sent to a spawned process): empty, no lock
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])

    def get(self, key: tuple, load) -> np.ndarray:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        array = load()
        array.flags.writeable = False
        with self._lock:
            self._entries[key] = array
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return array


class SyntheticSequence:
    """One sequence of a synthetic set: files are read, or (compact sets) frames rendered, on demand.

    The API is the same for both formats. A compact sequence renders all its frames and masks
    at once (from its source, its trajectory and its generator state) and checks each against
    the manifest's pixel checksum. ``frames()`` and ``masks()`` hand over the rendered arrays
    (no copy) and the sequence keeps nothing once both are taken; ``frame(k)``/``mask(k)``
    copy one frame out of the rendered ones, which stay until taken.
    """

    def __init__(self, root: Path, record: dict, versions: dict | None = None, sources: SourceCache | None = None):
        self.root = root
        self._sources = sources if sources is not None else SourceCache(capacity=2)
        self.folder = root / record["id"]
        self.record = record
        self.versions = versions or {}
        self.compact = "render" in record
        self._rendered: list[np.ndarray | None] = [None, None]  # compact: frames, masks (until taken)
        self.id: str = record["id"]
        self.index: int = record["plan"]["index"]
        self.perturbation: str = record["plan"]["perturbation"]
        self.severity: int = record["plan"]["severity"]
        self.source: dict = record["source"]

    def __repr__(self) -> str:
        return f"SyntheticSequence({self.id!r}, {self.perturbation}, severity={self.severity}, frames={self.num_frames})"

    @cached_property
    def trajectory(self) -> Trajectory:
        return Trajectory.from_dict(self.record["trajectory"])

    @property
    def params(self) -> dict:
        return self.record["trajectory"]["params"]

    @property
    def num_frames(self) -> int:
        return len(self.record["frames"])

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self.trajectory.height, self.trajectory.width

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k``: ``(H, W, 3)`` uint8 RGB."""
        if self.compact:
            return self._render(0)[self._index(k)].copy()
        if _IMREAD_RGB is not None:  # the decoder writes RGB: no BGR -> RGB pass
            return self._read(k, "frame", _IMREAD_RGB)
        return cv2.cvtColor(self._read(k, "frame", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def mask(self, k: int) -> np.ndarray:
        """Ground truth of frame ``k``: ``(H, W)`` uint8 class ids, 255 = ignore."""
        if self.compact:
            return self._render(1)[self._index(k)].copy()
        return self._read(k, "mask", cv2.IMREAD_UNCHANGED)

    def source_image(self) -> np.ndarray | None:
        """The source image, ``(H, W, 3)`` uint8 RGB, of a compact sequence (checked against its
        sha256); ``None`` for a materialized one, which does not store it (its frame 0 is the
        source, except under frame 0's occluder)."""
        if not self.compact:
            return None
        image = self._source("image", _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
        return image.copy() if _IMREAD_RGB is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def frames(self) -> np.ndarray:
        """All frames, ``(N, H, W, 3)`` uint8 RGB."""
        if self.compact:
            return self._take(0)
        return self._read_all("frame", self.frame)

    def masks(self) -> np.ndarray:
        """All masks, ``(N, H, W)`` uint8."""
        if self.compact:
            return self._take(1)
        return self._read_all("mask", self.mask)

    def _take(self, part: int) -> np.ndarray:
        """Hand over the rendered frames (0) or masks (1): the caller owns them, the sequence forgets them."""
        array = self._render(part)
        self._rendered[part] = None
        return array

    def flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth ``(flow (H, W, 2) float32, valid (H, W) bool)`` of the pair ``(t, t+1)``."""
        return pair_correspondence(self.trajectory, t)

    def pairs(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(t, flow, valid)`` for ``t = 0 .. N-2``."""
        for t in range(self.num_frames - 1):
            yield (t, *self.flow(t))

    def verify(self) -> None:
        """Check every file (materialized) or every rendered frame and mask (compact) against the
        manifest's checksums; raises :class:`DataError`."""
        if self.compact:
            self._render(0)  # renders and checks every frame and mask
            self._rendered = [None, None]
            return
        for k in range(self.num_frames):
            for key in ("frame", "mask"):
                self._member_bytes(k, key)

    def _index(self, k: int) -> int:
        if not 0 <= k < self.num_frames:
            raise IndexError(f"frame index {k} out of range [0, {self.num_frames - 1}]")
        return k

    def _source(self, key: str, flags: int) -> np.ndarray:
        """The source image or label of a compact sequence, confined, checked and decoded."""
        files = self.record["render"]["source_files"]
        path = member_path(self.root, SOURCES_DIR, files[key])

        def load() -> np.ndarray:
            return self._decode(path, read_member(path, files[key + "_bytes"], files[key + "_sha256"]), f"source {key}", flags)

        return self._sources.get((files[key], files[key + "_sha256"], flags), load)

    def _render(self, part: int) -> np.ndarray:
        """The rendered frames (0) or masks (1) of a compact sequence; all of both are rendered, each
        checked against its checksum, unless that part is still held from an earlier render."""
        if self._rendered[part] is not None:
            return self._rendered[part]
        from perturbations import render_sequence

        image = self._source("image", _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
        if _IMREAD_RGB is None:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # a new array: the cached one stays BGR
        label = self._source("label", cv2.IMREAD_UNCHANGED)
        if image.ndim != 3 or label.ndim != 2:
            raise DataError(self.root / SOURCES_DIR, f"sequence {self.id}: source image must be RGB and label one channel")
        state = self.record["render"]["generator"]
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {"bit_generator": "PCG64", "state": dict(state["state"]),
                                   "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}
        height, width = self.shape
        frames = np.empty((self.num_frames, height, width, 3), np.uint8)
        masks = np.empty((self.num_frames, height, width), np.uint8)
        for k, (frame, mask) in enumerate(render_sequence(image, label, self.trajectory, rng)):
            expected = self.record["frames"][k]
            for key, array in (("frame", frame), ("mask", mask)):
                if pixels_sha256(array) != expected[key + "_pixels_sha256"]:
                    raise DataError(self.root, self._mismatch(k, key))
            frames[k], masks[k] = frame, mask
        self._rendered = [frames, masks]
        return self._rendered[part]

    def _mismatch(self, k: int, key: str) -> str:
        return (f"sequence {self.id}, {key} {k}: the rendered pixels differ from the manifest's checksum. The "
                "renderer is exact (the same bytes on every machine and library build), so the set's sources or "
                "manifest were changed after it was made: re-create it, or get an intact copy")

    def _read_all(self, key: str, read) -> np.ndarray:
        """``read(k)`` of every frame, into one array allocated once (no list + ``np.stack`` copy)."""
        if self.num_frames == 0:
            raise DataError(self.folder, f"sequence {self.id} has no frames")
        first = read(0)
        out = np.empty((self.num_frames, *first.shape), dtype=first.dtype)
        out[0] = first
        for k in range(1, self.num_frames):
            array = read(k)
            if array.shape != first.shape or array.dtype != first.dtype:
                path = self.folder / self.record["frames"][k][key]
                got, want = f"{array.shape} {array.dtype}", f"{first.shape} {first.dtype}"
                raise DataError(path, f"{key} is {got}, but {key} 0 of the sequence is {want}")
            out[k] = array
        return out

    def _member_bytes(self, k: int, key: str) -> tuple[Path, bytes]:
        """The bytes of file ``key`` of frame ``k``, confined to the set and checked against the manifest."""
        item = self.record["frames"][self._index(k)]
        path = member_path(self.root, self.id, item[key])
        return path, read_member(path, item[key + "_bytes"], item[key + "_sha256"])

    def _read(self, k: int, key: str, flags: int) -> np.ndarray:
        return self._decode(*self._member_bytes(k, key), key, flags)

    def _decode(self, path: Path, data: bytes, what: str, flags: int) -> np.ndarray:
        """Decode a checked PNG, its header first compared with the frame size of the manifest."""
        size = png_size(data, path)
        if size != (self.shape[1], self.shape[0]):
            raise DataError(path, f"{what} is {size[0]}x{size[1]}, the manifest says {self.shape[1]}x{self.shape[0]}")
        array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if array is None:
            raise DataError(path, f"cannot decode {what} of a synthetic set (corrupt PNG)")
        return array


class SyntheticSet:
    """A synthetic set on disk; indexable and iterable over :class:`SyntheticSequence`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self._records = self.manifest["sequences"]
        self.format_version: int = self.manifest["format_version"]
        self._sources = SourceCache()

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> SyntheticSequence:
        return SyntheticSequence(self.root, self._records[i], self.manifest.get("versions"), self._sources)

    def __iter__(self) -> Iterator[SyntheticSequence]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"SyntheticSet({str(self.root)!r}, sequences={len(self)}, protocol={self.protocol_version})"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest["classes"])

    @property
    def protocol_version(self) -> str:
        return self.manifest["versions"]["protocol"]

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def content_sha256(self) -> str:
        """The set's identity (``set_sha256`` of results and leaderboards): :func:`content_sha256` of its manifest."""
        return content_sha256(self.manifest)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def verify(self) -> None:
        for seq in self:
            seq.verify()


def content_sha256(manifest: dict) -> str:
    """sha256 of a manifest as canonical JSON (sorted keys, no whitespace, ASCII), without
    ``versions`` and ``config.root``: what the set holds (every trajectory, source and frame checksum),
    not the folder it was made from nor the library versions that made it, so the same
    command run by two people gives one identity (the renderer is exact)."""
    content = {k: v for k, v in manifest.items() if k != "versions"}
    content["config"] = {k: v for k, v in manifest.get("config", {}).items() if k != "root"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def load_manifest(root: Path) -> dict:
    """Read and check a set's manifest; a missing one means "not a (complete) set"."""
    if not root.is_dir():
        raise DataError(root, "synthetic set directory not found")
    path = root / MANIFEST_FILE
    if not path.exists() and not path.is_symlink():
        hint = (
            "an interrupted run (re-run the same `stabbench synth` command to resume)"
            if (root / RUN_FILE).is_file()
            else "not a stabbench synthetic set"
        )
        raise DataError(root, f"no {MANIFEST_FILE}: {hint}")
    member_path(root, MANIFEST_FILE)
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(path, f"cannot read the manifest ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(path, f"corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(path, f"malformed manifest: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != SET_FORMAT:
        raise DataError(path, f"not a stabbench synthetic-set manifest (format={manifest.get('format')!r})")
    if manifest.get("format_version") == LEGACY_COMPACT_FORMAT:
        made = manifest.get("versions", {}).get("stabbench", "?") if isinstance(manifest.get("versions"), dict) else "?"
        raise DataError(path, (
            f"a compact set of format {LEGACY_COMPACT_FORMAT} (protocol v1, made by stabbench {made}), whose frames "
            f"depend on the OpenCV build that renders them; this stabbench reads compact format {COMPACT_FORMAT} "
            "(an exact renderer, the same bytes everywhere). Re-create the set with this version (the same "
            f"`stabbench synth` command), or materialize it with the version that made it (`stabbench export "
            f"{root} --out DIR` under stabbench {made}) and use that folder"))
    if manifest.get("format_version") not in SET_FORMAT_VERSIONS:
        supported = " or ".join(map(str, SET_FORMAT_VERSIONS))
        raise DataError(path, f"set format version {manifest.get('format_version')} is not supported (expected {supported})")
    return check_manifest(manifest, path)


def open_set(root: str | Path) -> SyntheticSet:
    """Open the synthetic set written by ``stabbench synth`` at ``root``."""
    return SyntheticSet(root)
