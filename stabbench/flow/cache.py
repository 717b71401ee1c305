"""On-disk cache of :class:`~stabbench.flow.dis.PairFlow`: each pair's flow is computed once.

Key: sha256 of the cache format version, the OpenCV version, the parameters as canonical
JSON (:meth:`FlowParams.canonical_json`) and, for each of the two frames, its shape, dtype
and bytes. A changed pixel, setting, format or OpenCV version therefore never reuses a
stale flow (it is a different key; old files are simply no longer read).

Layout: ``<root>/<key[:2]>/<key>.flow``, one file per pair (``FORMAT_VERSION`` 1)::

    b"SBFLOW\\x00\\x01"  magic + version          8 bytes
    header length       little-endian uint32     4 bytes
    header              UTF-8 JSON: key, shape [H, W], flow encoding, sizes, crc32
    payload             zlib (level 1 by default; 0 = stored) of: forward flow, backward
                        flow (each byte-shuffled), valid_fw, valid_bw (np.packbits)

Flows are stored as int16 fixed point in 1/32 px (``"q32"``: at most 1/64 px error per
component, range +-1023.9 px; a pair with a larger or non-finite component is stored as
float32, ``"f32"``). About 0.85 MB per 854x480 pair instead of 7.4 MB of raw float32
flows and bool masks.
:meth:`FlowCache.get_or_compute` returns the *decoded* flows on a miss too, so a result
never depends on whether it came from the cache. The masks are computed from the
full-precision flows before quantisation.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so concurrent
processes computing the same pair at worst both write the same bytes. A file that cannot be
read or decoded (truncated, corrupt, foreign) is recomputed and overwritten with a
``RuntimeWarning``; the cache never raises because of its own files.

Counters (``hits``, ``misses``, ``corrupt``) are per :class:`FlowCache` object, i.e. per
process (each data-loader worker counts its own).
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np

from stabbench.fileio import atomic_write_bytes
from stabbench.flow.dis import FlowParams, PairFlow, bidirectional_flow

FORMAT_VERSION = 1
MAGIC = b"SBFLOW\x00" + bytes([FORMAT_VERSION])
SUFFIX = ".flow"
#: Fixed-point scale of the "q32" flow encoding (1/32 px steps).
Q_SCALE = 32
_Q_LIMIT = (np.iinfo(np.int16).max - 1) / Q_SCALE
_ZLIB_LEVEL = 1


def cache_key(frame_t: np.ndarray, frame_t1: np.ndarray, params: FlowParams) -> str:
    """The hex sha256 a pair is stored under (see module docstring)."""
    h = hashlib.sha256()
    h.update(f"stabbench-flow-cache/{FORMAT_VERSION}/opencv-{cv2.__version__}/".encode())
    h.update(params.canonical_json().encode())
    for frame in (frame_t, frame_t1):
        frame = np.ascontiguousarray(frame)
        h.update(f"/{frame.shape}/{frame.dtype.str}/".encode())
        h.update(frame.reshape(-1).view(np.uint8))
    return h.hexdigest()


# --------------------------------------------------------------------------- encoding


def _shuffle(raw: np.ndarray) -> bytes:
    """Byte planes of a numeric array (all first bytes, then all second bytes, ...)."""
    return raw.reshape(-1).view(np.uint8).reshape(-1, raw.itemsize).T.tobytes()


def _unshuffle(data: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(dtype)
    planes = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, -1)
    if dtype == np.dtype("<i2"):  # the common case, 6x faster than the transpose below
        out = planes[1].view(np.int8).astype(np.int16)
        out <<= 8
        out |= planes[0]
        return out.reshape(shape)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _flow_encoding(flows: tuple[np.ndarray, np.ndarray]) -> str:
    ok = all(np.isfinite(f).all() and (f.size == 0 or float(np.abs(f).max()) <= _Q_LIMIT) for f in flows)
    return "q32" if ok else "f32"


def _encode_flow(flow: np.ndarray, encoding: str) -> bytes:
    if encoding == "q32":
        return _shuffle(np.rint(flow * np.float32(Q_SCALE)).astype("<i2"))
    return _shuffle(flow.astype("<f4"))


def _decode_flow(data: bytes, encoding: str, shape: tuple[int, int]) -> np.ndarray:
    if encoding == "q32":
        flow = _unshuffle(data, "<i2", (*shape, 2)).astype(np.float32)
        flow *= np.float32(1.0 / Q_SCALE)
        return flow
    return _unshuffle(data, "<f4", (*shape, 2)).astype(np.float32)


def encode(key: str, pair: PairFlow, level: int = _ZLIB_LEVEL) -> bytes:
    """The bytes of one cache file (``level``: zlib level, 0 = stored uncompressed)."""
    height, width = pair.valid_fw.shape
    encoding = _flow_encoding((pair.flow_fw, pair.flow_bw))
    parts = [
        _encode_flow(pair.flow_fw, encoding),
        _encode_flow(pair.flow_bw, encoding),
        np.packbits(pair.valid_fw, axis=None).tobytes(),
        np.packbits(pair.valid_bw, axis=None).tobytes(),
    ]
    payload = zlib.compress(b"".join(parts), level)
    header = json.dumps(
        {
            "key": key,
            "shape": [height, width],
            "flow_encoding": encoding,
            "q_scale": Q_SCALE,
            "sizes": [len(p) for p in parts],
            "payload_bytes": len(payload),
            "payload_crc32": zlib.crc32(payload),
            "opencv": cv2.__version__,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + payload


def decode(data: bytes, key: str | None = None, shape: tuple[int, int] | None = None) -> PairFlow:
    """Inverse of :func:`encode`; raises ``ValueError`` on anything unexpected."""
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError("not a stabbench flow-cache file of this format version (bad magic)")
    (header_len,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + header_len].decode())
    payload = data[start + header_len :]
    if key is not None and header["key"] != key:
        raise ValueError("file holds another key")
    height, width = (int(v) for v in header["shape"])
    if shape is not None and (height, width) != tuple(shape):
        raise ValueError(f"stored shape {(height, width)} differs from the frames' {tuple(shape)}")
    if len(payload) != header["payload_bytes"] or zlib.crc32(payload) != header["payload_crc32"]:
        raise ValueError("payload truncated or corrupt (size/crc32 mismatch)")
    encoding = header["flow_encoding"]
    if encoding not in ("q32", "f32") or int(header["q_scale"]) != Q_SCALE:
        raise ValueError(f"unknown flow encoding {encoding!r}")
    raw = zlib.decompress(payload)
    sizes = [int(s) for s in header["sizes"]]
    itemsize = 2 if encoding == "q32" else 4
    n_pix = height * width
    expected = [n_pix * 2 * itemsize] * 2 + [(n_pix + 7) // 8] * 2
    if sizes != expected or len(raw) != sum(sizes):
        raise ValueError("payload sizes do not match the shape")
    offsets = np.cumsum([0, *sizes])
    chunks = [raw[offsets[i] : offsets[i + 1]] for i in range(4)]

    def mask(chunk: bytes) -> np.ndarray:
        return np.unpackbits(np.frombuffer(chunk, np.uint8), count=n_pix).astype(bool).reshape(height, width)

    return PairFlow(
        _decode_flow(chunks[0], encoding, (height, width)),
        mask(chunks[2]),
        _decode_flow(chunks[1], encoding, (height, width)),
        mask(chunks[3]),
    )


# --------------------------------------------------------------------------- cache


class FlowCache:
    """Flows of frame pairs, computed once and kept under ``root`` (created if missing).

        >>> cache = FlowCache("flow-cache")
        >>> pf = cache.get_or_compute(frame_t, frame_t1, FlowParams(preset="medium"))  # doctest: +SKIP
        >>> cache.hits, cache.misses, cache.hit_rate                                    # doctest: +SKIP
    """

    def __init__(self, root: str | Path, compress_level: int = _ZLIB_LEVEL):
        """``compress_level``: zlib level of new files, 1 (default, about 0.8 MB per 854x480
        pair) to 9, or 0 (stored: about 3.3 MB per pair, a faster fetch; see
        ``benchmarks/RESULTS.md``). Files of any level are read; the level is not in the key."""
        if int(compress_level) != compress_level or not 0 <= compress_level <= 9:
            raise ValueError(f"compress_level must be an integer in 0..9, got {compress_level!r}")
        self.compress_level = int(compress_level)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def __repr__(self) -> str:
        return f"FlowCache({str(self.root)!r}, hits={self.hits}, misses={self.misses}, corrupt={self.corrupt})"

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)`` (NaN before the first lookup); corrupt files count as misses."""
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt, "hit_rate": self.hit_rate}

    def reset_stats(self) -> None:
        self.hits = self.misses = self.corrupt = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def get_or_compute(self, frame_t: np.ndarray, frame_t1: np.ndarray, params: FlowParams = FlowParams()) -> PairFlow:
        """The :class:`PairFlow` of ``(frame_t, frame_t1)``: read from disk, or computed and stored."""
        key = cache_key(frame_t, frame_t1, params)
        path = self.path(key)
        shape = np.shape(frame_t)[:2]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:  # unreadable (permissions, a folder in the way, ...): recompute
            data = None
            self._warn(path, exc)
        if data is not None:
            try:
                pair = decode(data, key, shape)
            except Exception as exc:  # noqa: BLE001 -- any undecodable file is recomputed
                self._warn(path, exc)
            else:
                self.hits += 1
                return pair
        self.misses += 1
        data = encode(key, bidirectional_flow(frame_t, frame_t1, params), self.compress_level)
        self._write(path, data)
        return decode(data, key, shape)

    def _warn(self, path: Path, exc: Exception) -> None:
        self.corrupt += 1
        warnings.warn(f"{path}: unreadable flow-cache file ({type(exc).__name__}: {exc}); recomputing", RuntimeWarning, stacklevel=3)

    def _write(self, path: Path, data: bytes) -> None:
        """Atomic write; a failure to write warns (the flow is still returned)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data, durable=False)
        except OSError as exc:
            warnings.warn(f"{path}: cannot write flow-cache file ({exc}); flow not cached", RuntimeWarning, stacklevel=3)
