"""Affine motion, coverage, occluders and dense flow: the geometry of a synthetic sequence.

Convention (used by every function in this package and by stabbench):
    * Coordinates are ``(x, y)`` in pixels, ``x`` to the right (column), ``y`` down (row).
    * Integer coordinates are pixel **centres**: pixel ``[row i, col j]`` is the point
      ``(x=j, y=i)`` (OpenCV's convention). The image spans ``[-0.5, W-0.5] x [-0.5, H-0.5]``.
    * An affine ``A`` is a ``(2, 3)`` float64 matrix mapping a point ``p`` of the *source*
      image to ``A @ [x, y, 1]`` in a *frame* (forward map, as ``cv2.warpAffine`` takes it).
    * A flow ``f`` of a pair ``(t, t+1)`` is ``(H, W, 2)`` float32 with ``f[..., 0]`` = dx,
      ``f[..., 1]`` = dy: the content at pixel ``x`` of frame ``t`` is at ``x + f(x)`` in
      frame ``t+1`` (forward flow, OpenCV's ``calcOpticalFlow*`` layout).
    * "Inside" an image means inside the hull of its pixel centres, ``[0, W-1] x [0, H-1]``,
      where bilinear sampling needs no border value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Safety margin (pixels) of the validity mask around borders and occluders, so that the
#: pixel nearest to ``x + f(x)`` is also covered and un-occluded (rounding never lands on
#: an invalid pixel). See ``docs/protocol.md``.
VALIDITY_MARGIN = 1.0


def to_homogeneous(affine: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine -> ``(3, 3)`` matrix with last row ``[0, 0, 1]``."""
    out = np.eye(3, dtype=np.float64)
    out[:2] = affine
    return out


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` affine that applies ``first`` then ``second``.

    Computed in Python floats (IEEE-754 binary64, one correctly rounded operation at a time,
    in a fixed order), not by a BLAS product, so the result is the same on every machine.
    """
    (a, b, c), (d, e, f) = _rows(second)
    (g, h, i), (j, k, m) = _rows(first)
    return np.array(
        [[a * g + b * j, a * h + b * k, a * i + b * m + c], [d * g + e * j, d * h + e * k, d * i + e * m + f]],
        dtype=np.float64,
    )


def invert(affine: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine, by the closed form (the same bytes on every machine).

    With ``A = [[a, b, c], [d, e, f]]`` and ``det = a*e - b*d``: the linear part is
    ``[[e, -b], [-d, a]] / det`` (each entry one division) and the shift is
    ``-(L @ [c, f])`` with that linear part ``L``, each row ``l0*c + l1*f`` left to right.
    Raises ``numpy.linalg.LinAlgError`` where ``det`` is 0 (as ``np.linalg.inv``).
    """
    (a, b, c), (d, e, f) = _rows(affine)
    det = a * e - b * d
    if det == 0:
        raise np.linalg.LinAlgError("Singular matrix")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p, q, r, s = (np.float64(v) / np.float64(det) for v in (e, -b, -d, a))
        out = np.array([[p, q, -(p * c + q * f)], [r, s, -(r * c + s * f)]], dtype=np.float64)
    return out


def _rows(affine: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The six entries of a ``(2, 3)`` affine as Python floats."""
    m = np.asarray(affine, dtype=np.float64)
    return (float(m[0, 0]), float(m[0, 1]), float(m[0, 2])), (float(m[1, 0]), float(m[1, 1]), float(m[1, 2]))


def power(step: np.ndarray, k: int) -> np.ndarray:
    """``step`` applied ``k`` times, as a ``(2, 3)`` affine (``k = 0`` gives identity)."""
    out = np.eye(2, 3, dtype=np.float64)
    for _ in range(k):  # k products in a fixed order (compose: the same bytes on every machine)
        out = compose(step, out)
    return out


def about_centre(linear: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(2, 3)`` affine applying the ``(2, 2)`` ``linear`` map about the image centre.

    The centre is ``((W-1)/2, (H-1)/2)`` in the pixel-centre convention.
    """
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    out = np.zeros((2, 3), dtype=np.float64)
    out[:, :2] = linear
    out[:, 2] = centre - linear @ centre
    return out


def pixel_grid(height: int, width: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` coordinate arrays of shape ``(1, W)`` and ``(H, 1)`` (broadcastable)."""
    return np.arange(width, dtype=dtype)[None, :], np.arange(height, dtype=dtype)[:, None]


def apply_affine(affine: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Image of every pixel centre under ``affine``: two ``(H, W)`` float64 arrays (x', y')."""
    x, y = pixel_grid(height, width, np.float64)
    return (
        affine[0, 0] * x + affine[0, 1] * y + affine[0, 2],
        affine[1, 0] * x + affine[1, 1] * y + affine[1, 2],
    )


def inside(x: np.ndarray, y: np.ndarray, width: int, height: int, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of points inside ``[margin, W-1-margin] x [margin, H-1-margin]``."""
    return (x >= margin) & (x <= width - 1 - margin) & (y >= margin) & (y <= height - 1 - margin)


def coverage(affine: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """``(H, W)`` bool: frame pixels whose source point (under ``affine``) is inside the source.

    Args:
        affine: ``(2, 3)`` source -> frame map; the source has the frame's size ``(H, W)``.
        margin: shrink the source's inside region by this many pixels.
    """
    if np.allclose(affine, np.eye(2, 3)) and margin <= 0:
        return np.ones((height, width), dtype=bool)
    inv = invert(affine)
    if not (height >= 1 and width >= 1 and np.isfinite(inv).all() and np.isfinite(margin) and abs(margin) < _MAX_COORD
            and np.abs(inv[:, :2]).max() * max(height, width) + np.abs(inv[:, 2]).max() < _MAX_COORD):
        return coverage_dense(affine, height, width, margin)
    # Rows of `inv`: source x, source y; the bounds exactly as `inside` (see pair_validity).
    bounds = np.array([margin, width - 1 - margin, margin, height - 1 - margin], dtype=np.float64)
    first, suffix = _row_thresholds(inv[[0, 0, 1, 1]], bounds, np.array([True, False, True, False]), height, width)
    return _fill_intervals(*_row_intervals(first, suffix, width), height, width)


def coverage_dense(affine: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """:func:`coverage` by its definition, on full-frame float64 arrays (the reference; slower)."""
    if np.allclose(affine, np.eye(2, 3)) and margin <= 0:
        return np.ones((height, width), dtype=bool)
    sx, sy = apply_affine(invert(affine), height, width)
    return inside(sx, sy, width, height, margin)


def _fill_intervals(start: np.ndarray, end: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool, True on columns ``start[i] .. end[i]-1`` of each row ``i`` (runs of equal rows at once)."""
    out = np.zeros((height, width), dtype=bool)
    runs = [0, *(np.flatnonzero((np.diff(start) != 0) | (np.diff(end) != 0)) + 1).tolist(), height]
    for top, bottom in zip(runs[:-1], runs[1:]):
        x0, x1 = int(start[top]), int(end[top])
        if x0 < x1:
            out[top:bottom, x0:x1] = True
    return out


def pair_affine(affine_t: np.ndarray, affine_t1: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` map from frame ``t`` to frame ``t+1``: ``A_{t+1} A_t^{-1}``."""
    return compose(affine_t1, invert(affine_t))


def affine_flow(affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """Dense ``(H, W, 2)`` float32 flow ``f(x) = affine(x) - x``.

    Each component is ``(a - 1) * x + b * y + c`` (or ``a * x + (b - 1) * y + c``) in
    float64, rounded once to float32, always with the same operations in the same order,
    so the values do not depend on how the work is split: a component whose ``y`` (``x``)
    coefficient is zero is the same in every row (column) and is computed once and
    broadcast (translation, scaling: ``0 * y`` is the same zero for every ``y >= 0``);
    otherwise it is computed a band of rows at a time in a small float64 buffer that stays
    in cache, instead of through full-frame float64 temporaries. The identity (``-0.0``
    entries included) gives ``+0.0`` for every pixel: ``np.zeros``.
    """
    if np.array_equal(affine, _IDENTITY):  # occlusion, noise: the expression gives +0.0 everywhere
        return np.zeros((height, width, 2), dtype=np.float32)
    x, y = pixel_grid(height, width, np.float64)
    flow = np.empty((height, width, 2), dtype=np.float32)
    band = max(1, _FLOW_BAND_VALUES // max(width, 1))
    buffer = None
    for c, (ax, ay) in enumerate(((affine[0, 0] - 1.0, affine[0, 1]), (affine[1, 0], affine[1, 1] - 1.0))):
        shift = affine[c, 2]
        if ay == 0:  # the same row for every y
            flow[:, :, c] = ax * x + ay * 0.0 + shift
        elif ax == 0:  # the same column for every x
            flow[:, :, c] = ax * 0.0 + ay * y + shift
        else:
            if buffer is None:
                buffer = np.empty((min(band, height), width), dtype=np.float64)
            ax_x, ay_y = ax * x, ay * y
            for top in range(0, height, band):
                rows = buffer[: min(band, height - top)]
                np.add(ax_x, ay_y[top : top + band], out=rows)
                rows += shift
                flow[top : top + band, :, c] = rows
    return flow


#: float64 values per band of :func:`affine_flow` (256 KiB: stays in a core's cache).
_FLOW_BAND_VALUES = 32768

_IDENTITY = np.eye(2, 3)


@dataclass(frozen=True)
class Occluder:
    """An axis-aligned filled ellipse drawn over a frame.

    Convention: centre ``(cx, cy)`` and semi-axes ``(ax, ay)`` in pixels (pixel-centre
    coordinates); a point ``(x, y)`` is occluded when
    ``((x-cx)/ax)^2 + ((y-cy)/ay)^2 <= 1``. ``color`` is RGB uint8.
    """

    cx: float
    cy: float
    ax: float
    ay: float
    color: tuple[int, int, int]

    def contains(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of points inside the ellipse grown by ``margin`` pixels."""
        ax, ay = self.ax + margin, self.ay + margin
        return ((x - self.cx) / ax) ** 2 + ((y - self.cy) / ay) ** 2 <= 1.0

    def raster(self, height: int, width: int) -> np.ndarray:
        """``(H, W)`` bool mask of pixel centres inside the ellipse (evaluated on its box)."""
        out = np.zeros((height, width), dtype=bool)
        x0, x1 = max(0, int(np.floor(self.cx - self.ax))), min(width, int(np.ceil(self.cx + self.ax)) + 1)
        y0, y1 = max(0, int(np.floor(self.cy - self.ay))), min(height, int(np.ceil(self.cy + self.ay)) + 1)
        if x0 < x1 and y0 < y1:
            x = np.arange(x0, x1, dtype=np.float64)[None, :]
            y = np.arange(y0, y1, dtype=np.float64)[:, None]
            out[y0:y1, x0:x1] = self.contains(x, y)
        return out

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else float(v)) for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(data: dict) -> Occluder:
        return Occluder(
            float(data["cx"]), float(data["cy"]), float(data["ax"]), float(data["ay"]),
            tuple(int(c) for c in data["color"]),
        )


def pair_validity(
    affine_t: np.ndarray,
    affine_t1: np.ndarray,
    occluder_t: Occluder | None,
    occluder_t1: Occluder | None,
    height: int,
    width: int,
    margin: float = VALIDITY_MARGIN,
) -> np.ndarray:
    """``(H, W)`` bool: pixels of frame ``t`` with a ground-truth correspondence in ``t+1``.

    A pixel ``x`` is valid when its source point is inside the source (by ``margin``), its
    target ``x + f(x)`` is inside frame ``t+1`` and neither ``x`` (in ``t``) nor
    ``x + f(x)`` (in ``t+1``) is under an occluder grown by ``margin``.

    The definition is :func:`pair_validity_dense` (two full-frame float64 affine images and
    full-frame ellipse tests). This computes the same mask, bit for bit, in a fraction of
    the time: each ``inside`` bound is a monotone test along a row (the rounded
    ``a*x + b*y + c`` is monotone in ``x``), so its pixels form one interval per row, whose
    ends are estimated analytically and then settled with the very same float64 expression
    (a per-row binary search where the estimate is off); the ellipse tests are evaluated,
    with the same expressions, only on a box that holds every pixel they can hit. Inputs
    this reasoning does not cover (non-finite or huge values, odd occluders, empty images)
    take :func:`pair_validity_dense`.
    """
    inv = invert(affine_t)
    m = pair_affine(affine_t, affine_t1)
    coef = np.concatenate([inv, m])
    box_t1 = _occluder_box(occluder_t1, margin) if occluder_t1 is not None else None
    if not (
        height >= 1
        and width >= 1
        and np.isfinite(coef).all()
        and np.isfinite(margin)
        and abs(margin) < _MAX_COORD
        and np.abs(coef[:, :2]).max() * max(height, width) + np.abs(coef[:, 2]).max() < _MAX_COORD
        and (occluder_t1 is None or box_t1 is not None)
    ):
        return pair_validity_dense(affine_t, affine_t1, occluder_t, occluder_t1, height, width, margin)
    # Rows of `coef`: source x, source y (inv), target x, target y (m). Bounds exactly as `inside`.
    rows = [0, 0, 1, 1, 2, 2, 3, 3]
    bounds = [margin, width - 1 - margin, margin, height - 1 - margin, 0.0, width - 1 - 0.0, 0.0, height - 1 - 0.0]
    if box_t1 is not None:  # a padded box around the occluder of t+1, in target coordinates
        rows += [2, 2, 3, 3]
        bounds += list(box_t1)
    lower = np.arange(len(rows)) % 2 == 0
    first, suffix = _row_thresholds(coef[rows], np.array(bounds, dtype=np.float64), lower, height, width)
    valid = _fill_intervals(*_row_intervals(first[:8], suffix[:8], width), height, width)
    if occluder_t is not None:
        box = _occluder_box(occluder_t, margin)
        if box is None:
            x, y = pixel_grid(height, width, np.float64)
            valid &= ~occluder_t.contains(x, y, margin)
        else:
            x0, x1 = max(0, int(np.floor(box[0]))), min(width, int(np.ceil(box[1])) + 1)
            y0, y1 = max(0, int(np.floor(box[2]))), min(height, int(np.ceil(box[3])) + 1)
            if x0 < x1 and y0 < y1:
                x = np.arange(x0, x1, dtype=np.float64)[None, :]
                y = np.arange(y0, y1, dtype=np.float64)[:, None]
                valid[y0:y1, x0:x1] &= ~occluder_t.contains(x, y, margin)
    if box_t1 is not None:
        start, end = _row_intervals(first[8:], suffix[8:], width)
        hit = np.flatnonzero(start < end)
        if hit.size:
            y0, y1 = int(hit[0]), int(hit[-1]) + 1
            x0, x1 = int(start[hit].min()), int(end[hit].max())
            x = np.arange(x0, x1, dtype=np.float64)[None, :]
            y = np.arange(y0, y1, dtype=np.float64)[:, None]
            tx = m[0, 0] * x + m[0, 1] * y + m[0, 2]  # as apply_affine, on the box only
            ty = m[1, 0] * x + m[1, 1] * y + m[1, 2]
            valid[y0:y1, x0:x1] &= ~occluder_t1.contains(tx, ty, margin)
    return valid


def pair_validity_dense(
    affine_t: np.ndarray,
    affine_t1: np.ndarray,
    occluder_t: Occluder | None,
    occluder_t1: Occluder | None,
    height: int,
    width: int,
    margin: float = VALIDITY_MARGIN,
) -> np.ndarray:
    """:func:`pair_validity` by its definition, on full-frame arrays (the reference; slow)."""
    src_x, src_y = apply_affine(invert(affine_t), height, width)
    valid = inside(src_x, src_y, width, height, margin)
    m = pair_affine(affine_t, affine_t1)
    tx, ty = apply_affine(m, height, width)
    valid &= inside(tx, ty, width, height)
    if occluder_t is not None:
        x, y = pixel_grid(height, width, np.float64)
        valid &= ~occluder_t.contains(x, y, margin)
    if occluder_t1 is not None:
        valid &= ~occluder_t1.contains(tx, ty, margin)
    return valid


#: Fast paths of :func:`pair_validity` only for coordinates and coefficients below this
#: (pixels): far from where float64 rounding could move a value by a pixel.
_MAX_COORD = 1e7

#: How far (pixels) the box of an occluder reaches beyond its grown ellipse: rounding in
#: ``Occluder.contains`` can put a pixel inside only within ~1e-9 px of the ellipse.
_OCCLUDER_PAD = 2.0


def _occluder_box(occluder: Occluder, margin: float) -> tuple[float, float, float, float] | None:
    """``(x_min, x_max, y_min, y_max)``: every point ``occluder.contains(.., margin)`` can
    hit lies in it; ``None`` where that is not safe to say (non-finite, huge, non-positive axes)."""
    ax, ay = occluder.ax + margin, occluder.ay + margin
    values = (occluder.cx, occluder.cy, ax, ay)
    if not (all(np.isfinite(v) and abs(v) < _MAX_COORD for v in values) and ax > 0 and ay > 0):
        return None
    pad = _OCCLUDER_PAD
    return occluder.cx - ax - pad, occluder.cx + ax + pad, occluder.cy - ay - pad, occluder.cy + ay + pad


def _row_thresholds(
    coef: np.ndarray, bound: np.ndarray, lower: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row boundaries of the tests ``v >= bound`` (``lower``) or ``v <= bound``, where
    ``v = coef[p, 0] * x + coef[p, 1] * y + coef[p, 2]`` is evaluated exactly as
    :func:`apply_affine` does (same float64 operations, same order).

    The rounded ``v`` is monotone in ``x`` along a row, so each test holds on a prefix or
    a suffix of the columns ``0 .. W-1`` (``suffix[p]``: a suffix). Returns ``first``
    ``(P, H)``: for a suffix test, the first column where it holds; for a prefix test, the
    first column where it fails (``W``: none), and ``suffix`` ``(P,)``.
    """
    a0, a1, a2 = coef[:, 0:1], coef[:, 1:2], coef[:, 2:3]
    bound, lower = bound[:, None], lower[:, None]
    a1y = a1 * np.arange(height, dtype=np.float64)[None, :]
    suffix = (a0 >= 0) == lower

    def switched(cols: np.ndarray) -> np.ndarray:  # False before `first`, True from it on
        v = a0 * cols.astype(np.float64) + a1y + a2
        return np.where(lower, v >= bound, v <= bound) == suffix

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        at = (bound - (a1y + a2)) / a0  # real-valued boundary: an estimate, settled below
        guess = np.where(suffix, np.ceil(at), np.floor(at) + 1.0)
    first = np.clip(np.nan_to_num(guess, nan=0.0, posinf=width, neginf=0.0), 0, width).astype(np.int64)
    flat = a0[:, 0] == 0  # v constant along the row: all columns or none
    if flat.any():
        first[flat] = np.where(switched(np.zeros_like(first))[flat], 0, width)
    for _ in range(3):
        step_down = (first > 0) & switched(np.maximum(first - 1, 0))
        step_up = (first < width) & ~switched(np.minimum(first, width - 1))
        if not (step_down.any() or step_up.any()):
            return first, suffix[:, 0]
        first = first - step_down + step_up
    lo, hi = np.zeros_like(first), np.full_like(first, width)  # estimate far off: binary search
    while True:
        active = lo < hi
        if not active.any():
            return lo, suffix[:, 0]
        mid = (lo + hi) // 2
        on = switched(np.minimum(mid, width - 1))
        hi = np.where(active & on, mid, hi)
        lo = np.where(active & ~on, mid + 1, lo)


def _row_intervals(first: np.ndarray, suffix: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``start .. end-1`` of each row where all the tests of :func:`_row_thresholds` hold."""
    start = np.where(suffix[:, None], first, 0).max(axis=0)
    end = np.where(suffix[:, None], width, first).min(axis=0)
    return start, end
