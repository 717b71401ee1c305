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
    """The ``(2, 3)`` affine that applies ``first`` then ``second``."""
    return (to_homogeneous(second) @ to_homogeneous(first))[:2]


def invert(affine: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine."""
    return np.linalg.inv(to_homogeneous(affine))[:2]


def power(step: np.ndarray, k: int) -> np.ndarray:
    """``step`` applied ``k`` times, as a ``(2, 3)`` affine (``k = 0`` gives identity)."""
    return np.linalg.matrix_power(to_homogeneous(step), k)[:2]


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
    sx, sy = apply_affine(invert(affine), height, width)
    return inside(sx, sy, width, height, margin)


def pair_affine(affine_t: np.ndarray, affine_t1: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` map from frame ``t`` to frame ``t+1``: ``A_{t+1} A_t^{-1}``."""
    return compose(affine_t1, invert(affine_t))


def affine_flow(affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """Dense ``(H, W, 2)`` float32 flow ``f(x) = affine(x) - x``."""
    x, y = pixel_grid(height, width, np.float64)
    flow = np.empty((height, width, 2), dtype=np.float32)
    flow[..., 0] = (affine[0, 0] - 1.0) * x + affine[0, 1] * y + affine[0, 2]
    flow[..., 1] = affine[1, 0] * x + (affine[1, 1] - 1.0) * y + affine[1, 2]
    return flow


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
    def from_dict(data: dict) -> "Occluder":
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
    """
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
