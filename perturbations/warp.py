"""The exact warp of the synthetic protocol: fixed-point coordinates, integer weights.

A frame's bytes are defined by integer arithmetic alone, so a compact set renders the same
bytes on every machine, CPU, thread count and library build (no OpenCV, no SIMD-dependent
float rounding). The definition (``docs/protocol.md``, "Rendering"):

1. ``M = A^-1`` (frame -> source) by the closed form of :func:`perturbations.geometry.invert`
   in IEEE-754 binary64 (each operation correctly rounded: the same on every machine).
2. ``Q = round_half_even(M * 2**COEF_BITS)``: six exact integers.
3. For a frame pixel ``(x, y)``: ``u = (Q[r, 0] * x + Q[r, 1] * y + Q[r, 2] + 2**(S-1)) >> S``
   with ``S = COEF_BITS - SUBPIXEL_BITS`` (floor shift), for ``r = 0`` (``ux``) and ``r = 1``
   (``uy``): the source point in units of ``1/256`` pixel, rounded half up.
4. Covered: ``0 <= ux <= (W-1)*256`` and ``0 <= uy <= (H-1)*256``.
5. Bilinear (frames): ``x0 = ux >> 8``, ``fx = ux & 255`` (``y0``, ``fy`` alike), neighbours
   ``x1 = min(x0 + 1, W-1)``, ``y1 = min(y0 + 1, H-1)``; per channel, rows first:
   ``r_j = (p[y_j, x0] * (256 - fx) + p[y_j, x1] * fx + 128) >> 8`` for ``j = 0, 1``, then
   ``v = (r_0 * (256 - fy) + r_1 * fy + 128) >> 8``. Uncovered pixels are 0.
6. Nearest (labels): ``label[(uy + 128) >> 8, (ux + 128) >> 8]``; uncovered pixels get the
   ignore label.

Convention: see :mod:`perturbations.geometry` (``(x, y)`` pixel centres, ``A`` maps source
to frame, as ``cv2.warpAffine`` takes it).

Implementation: the three channels of a pixel are packed in one int64, 16 bits per channel,
so each bilinear step is a few integer operations on whole frames (no lane can overflow:
a lane holds at most ``255 * 256 + 128``). When ``M`` has no shear or rotation (translation,
scaling), ``ux`` depends on ``x`` only and ``uy`` on ``y`` only, and rows and columns are
gathered separably; the arithmetic, and so every byte, is the same as the general path
(tested).
"""

from __future__ import annotations

import numpy as np

from perturbations.geometry import invert

#: Bits of the fractional part of the fixed-point frame -> source coefficients.
COEF_BITS = 32
#: Bits of the fractional part of a source coordinate (1/256 pixel) and of the weights.
SUBPIXEL_BITS = 8
_SHIFT = COEF_BITS - SUBPIXEL_BITS
_ONE = 1 << SUBPIXEL_BITS
_HALF = _ONE >> 1

#: Largest image side and coefficient magnitudes the integer arithmetic is defined for
#: (every intermediate stays below 2**60 in int64).
MAX_SIDE = 1 << 15
MAX_LINEAR = 1 << 8
MAX_SHIFT = 1 << 20

#: The three channels of a pixel in one int64: lane ``c`` at bits ``16c .. 16c + 15``.
_LANE_BITS = 16
_LANE_ROUND = sum(_HALF << (_LANE_BITS * c) for c in range(3))
_LANE_MASK = sum(0xFF << (_LANE_BITS * c) for c in range(3))


#: The frame -> source map in fixed point: two rows of three integers, in units of ``2**-COEF_BITS``.
FixedPointMap = tuple[tuple[int, int, int], tuple[int, int, int]]


def fixed_point_inverse(affine: np.ndarray, height: int, width: int) -> FixedPointMap:
    """The frame -> source map of ``affine`` as integers in units of ``2**-COEF_BITS``.

    Raises:
        ValueError: the size or the map is outside the range the arithmetic is defined for.
    """
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ValueError(f"image size {width}x{height} outside 1..{MAX_SIDE} per side")
    try:
        inv = invert(affine)
    except np.linalg.LinAlgError:
        raise ValueError("affine is singular") from None
    values = [float(v) for v in inv.ravel()]
    if not all(np.isfinite(v) for v in values):
        raise ValueError("affine is singular or not finite")
    linear = (values[0], values[1], values[3], values[4])
    if max(abs(v) for v in linear) > MAX_LINEAR or max(abs(values[2]), abs(values[5])) > MAX_SHIFT:
        raise ValueError(f"affine outside the renderer's range (|linear| <= {MAX_LINEAR}, |shift| <= {MAX_SHIFT} px)")
    q = [round(v * (1 << COEF_BITS)) for v in values]
    return (q[0], q[1], q[2]), (q[3], q[4], q[5])


def source_coordinates(
    affine: np.ndarray, height: int, width: int, rows: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ux, uy)``: the source point of every frame pixel in units of 1/256 pixel (int64).

    ``rows = (r0, r1)``: only frame rows ``r0 .. r1-1`` (default all). Shapes broadcast to
    ``(R, W)``: ``(1, W)`` and ``(R, 1)`` when the map is separable (no rotation or shear),
    else both ``(R, W)``.
    """
    return coordinates_of(fixed_point_inverse(affine, height, width), width, rows or (0, height))


def coordinates_of(q: FixedPointMap, width: int, rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`source_coordinates` from the map :func:`fixed_point_inverse` returned (computed once
    per frame, then used for every band of rows)."""
    (a, b, c), (d, e, f) = q
    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(*rows, dtype=np.int64)[:, None]
    round_half = 1 << (_SHIFT - 1)
    if b == 0 and d == 0:
        return (a * x + (c + round_half)) >> _SHIFT, (e * y + (f + round_half)) >> _SHIFT
    ux = a * x + (b * y + (c + round_half))
    uy = d * x + (e * y + (f + round_half))
    ux >>= _SHIFT
    uy >>= _SHIFT
    return ux, uy


def covered_by(ux: np.ndarray, uy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool, broadcastable to ``(H, W)``: source point inside ``[0, W-1] x [0, H-1]`` (step 4).

    One unsigned comparison per axis: a negative coordinate viewed as uint64 is huge.
    """
    in_x = ux.view(np.uint64) <= (width - 1) * _ONE
    in_y = uy.view(np.uint64) <= (height - 1) * _ONE
    return in_x & in_y


def fixed_point_coverage(affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool coverage of ``affine`` under the fixed-point rule (step 4 above)."""
    ux, uy = source_coordinates(affine, height, width)
    return np.ascontiguousarray(np.broadcast_to(covered_by(ux, uy, height, width), (height, width)))


def pack_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H, W)`` int64, channel ``c`` in bits ``16c .. 16c + 15``."""
    packed = image[..., 0].astype(np.int64)
    packed |= image[..., 1].astype(np.int64) << _LANE_BITS
    packed |= image[..., 2].astype(np.int64) << (2 * _LANE_BITS)
    return packed


def unpack_rgb(packed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`pack_rgb` (lanes must hold values 0..255), into ``out`` if given."""
    lanes = np.ascontiguousarray(packed, dtype="<i8").view("<u2").reshape(*packed.shape, 4)
    if out is None:
        return lanes[..., :3].astype(np.uint8)
    np.copyto(out, lanes[..., :3], casting="unsafe")
    return out


class PackedSource:
    """A source image ready to be sampled: packed pixels (:func:`pack_rgb`), one column and one
    row replicated past the right and bottom edges (the bilinear neighbours ``x0 + 1``,
    ``y0 + 1`` of a covered point need no clamping: where ``x0 = W-1`` the weight ``fx`` is 0,
    so the replicated value counts for nothing) and a block of zero pixels at the end, where
    uncovered pixels read (their value is then 0 without a separate masking pass)."""

    def __init__(self, image: np.ndarray):
        height, width = image.shape[:2]
        self.height, self.width, self.stride = height, width, width + 1
        packed = np.zeros((height + 2) * self.stride + 2, np.int64)
        grid = packed[: (height + 1) * self.stride].reshape(height + 1, self.stride)
        grid[:height, :width] = pack_rgb(image)
        grid[:height, width] = grid[:height, width - 1]
        grid[height] = grid[height - 1]
        self.flat = packed
        self.grid = grid
        self.zero = (height + 1) * self.stride  # index of the zero block

    def sample(self, ux: np.ndarray, uy: np.ndarray, covered: np.ndarray) -> np.ndarray:
        """Bilinear samples (step 5) at ``(ux, uy)``, 0 where not ``covered``: packed, ``(H, W)``."""
        if ux.shape[0] == 1 and uy.shape[1] == 1:
            return np.where(covered, self._sample_separable(ux[0], uy[:, 0]), 0)
        fx = ux & (_ONE - 1)
        index = uy >> SUBPIXEL_BITS
        index *= self.stride
        index += ux >> SUBPIXEL_BITS
        index = np.where(covered, index, self.zero)  # uncovered: all four neighbours are zero pixels
        flat, stride = self.flat, self.stride
        gx = _ONE - fx
        top = _lerp(flat.take(index), flat[1:].take(index), fx, gx)
        bottom = _lerp(flat[stride:].take(index), flat[stride + 1 :].take(index), fx, gx)
        fy = uy & (_ONE - 1)
        return _lerp(top, bottom, fy, _ONE - fy)

    def _sample_separable(self, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        """:meth:`sample` where ``ux`` ``(W,)`` depends on the column only and ``uy`` ``(H,)`` on
        the row only (translation, scaling), not masked. Every source row the frame needs is
        interpolated horizontally once (a row serves as the top neighbour of one frame row and
        the bottom of another: the same value either way), then rows are blended."""
        x0 = np.clip(ux >> SUBPIXEL_BITS, 0, self.width - 1)
        y0 = np.clip(uy >> SUBPIXEL_BITS, 0, self.height - 1)
        fx, fy = ux & (_ONE - 1), (uy & (_ONE - 1))[:, None]
        first, last = int(y0.min()), int(y0.max()) + 2  # rows first .. last-1 of the padded grid
        rows = self.grid[first:last]
        horizontal = _lerp(rows.take(x0, axis=1), rows.take(x0 + 1, axis=1), fx, _ONE - fx)
        top = horizontal.take(y0 - first, axis=0)
        bottom = horizontal.take(y0 + 1 - first, axis=0)
        return _lerp(top, bottom, fy, _ONE - fy)


def _lerp(low: np.ndarray, high: np.ndarray, frac: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``(low * rest + high * frac + 128) >> 8`` in each lane of packed pixels (``rest = 256 - frac``);
    ``low`` and ``high`` are scratch (overwritten when they have the result's shape)."""
    out = np.multiply(low, rest, out=low if low.shape == np.broadcast_shapes(low.shape, rest.shape) else None)
    high = np.multiply(high, frac, out=high if high.shape == out.shape else None)
    out += high
    out += _LANE_ROUND
    out >>= SUBPIXEL_BITS
    out &= _LANE_MASK
    return out


def nearest_labels(label: np.ndarray, ux: np.ndarray, uy: np.ndarray, covered: np.ndarray, ignore_label: int) -> np.ndarray:
    """Nearest-neighbour labels (step 6) at ``(ux, uy)``, ``ignore_label`` where not ``covered``: ``(R, W)`` uint8."""
    height, width = label.shape
    nx = (ux + _HALF) >> SUBPIXEL_BITS
    ny = (uy + _HALF) >> SUBPIXEL_BITS
    if nx.shape[0] == 1 and ny.shape[1] == 1:  # separable
        values = label.take(np.clip(ny[:, 0], 0, height - 1), axis=0).take(np.clip(nx[0], 0, width - 1), axis=1)
        return np.where(covered, values, np.uint8(ignore_label)).astype(np.uint8, copy=False)
    index = ny * width
    index += nx
    np.clip(index, 0, height * width - 1, out=index)
    return np.where(covered, label.ravel().take(index), np.uint8(ignore_label))
