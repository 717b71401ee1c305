"""Render the frames and ground-truth masks of a trajectory.

Frame ``k`` = source warped once by ``affines[k]`` (the exact bilinear warp of
:mod:`perturbations.warp`), uncovered pixels set to 0, occluder painted, then noise: the
cumulative perturbation noise (``gaussian_noise``) and an independent minute noise (std
``MINUTE_NOISE_STD``) on every frame after the first. Masks are the source labels warped by
nearest neighbour (labels are never interpolated); uncovered and occluded pixels get
``ignore_label``. Every step is integer arithmetic (or correctly rounded binary64 on the
trajectory's few numbers), so the bytes are the same on every machine and library build.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from perturbations.noise import rounded_gaussian
from perturbations.trajectory import MINUTE_NOISE_STD, Trajectory
from perturbations.warp import PackedSource, coordinates_of, covered_by, fixed_point_inverse, nearest_labels, unpack_rgb

IGNORE_LABEL = 255


def _is_identity(affine: np.ndarray) -> bool:
    return bool(np.array_equal(affine, np.eye(2, 3)))


def warp_image(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 source under ``affine`` (exact bilinear); uncovered pixels are 0.

    Convention: ``affine`` maps source to frame (see :mod:`perturbations.geometry`).
    """
    if _is_identity(affine):
        return image.copy()
    return warp_pair(image, None, affine)[0]


def warp_label(label: np.ndarray, affine: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``(H, W)`` uint8 labels under ``affine`` (nearest); uncovered pixels get ``ignore_label``."""
    if _is_identity(affine):
        return label.copy()
    return warp_pair(None, label, affine, ignore_label)[1]


#: Frame rows warped at a time: every temporary of a band stays in a core's cache (and small
#: enough to be reused by the allocator instead of fresh zeroed pages for every frame).
WARP_BAND_ROWS = 24


def warp_pair(
    image: np.ndarray | None,
    label: np.ndarray | None,
    affine: np.ndarray,
    ignore_label: int = IGNORE_LABEL,
    source: PackedSource | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(frame, mask)``: the image (bilinear) and the label (nearest) under one ``affine``,
    sharing its source coordinates and coverage (see :mod:`perturbations.warp`). Either input
    may be ``None`` (its output is then ``None``); ``source`` is ``PackedSource(image)``, if at hand.
    Computed a band of rows at a time (the bytes do not depend on the band size: tested).
    """
    height, width = (label.shape if label is not None else image.shape[:2])
    if image is not None and source is None:
        source = PackedSource(image)
    frame = np.empty((height, width, 3), np.uint8) if image is not None else None
    mask = np.empty((height, width), np.uint8) if label is not None else None
    q = fixed_point_inverse(affine, height, width)
    for r0 in range(0, height, WARP_BAND_ROWS):
        r1 = min(r0 + WARP_BAND_ROWS, height)
        ux, uy = coordinates_of(q, width, (r0, r1))
        covered = covered_by(ux, uy, height, width)
        if frame is not None:
            unpack_rgb(source.sample(ux, uy, covered), out=frame[r0:r1])
        if mask is not None:
            mask[r0:r1] = nearest_labels(label, ux, uy, covered, ignore_label)
    return frame, mask


def render_sequence(
    image: np.ndarray,
    label: np.ndarray,
    trajectory: Trajectory,
    rng: np.random.Generator,
    ignore_label: int = IGNORE_LABEL,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame, mask)`` for ``k = 0 .. N-1``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB source (frame 0 without occluder is exactly it).
        label: ``(H, W)`` uint8 class ids.
        rng: the generator the noise is drawn from, in frame order.

    Returns:
        frames ``(H, W, 3)`` uint8 and masks ``(H, W)`` uint8.
    """
    height, width = label.shape
    if image.shape != (height, width, 3) or (trajectory.height, trajectory.width) != (height, width):
        raise ValueError(
            f"image {image.shape}, label {label.shape} and trajectory "
            f"{(trajectory.height, trajectory.width)} sizes differ"
        )
    shape = (height, width, 3)
    accumulated = np.zeros(shape, np.int16) if trajectory.noise_step else None
    source = None
    for k in range(trajectory.num_frames):
        affine = trajectory.affines[k]
        if _is_identity(affine):
            frame, mask = image.copy(), label.copy()
        else:
            source = PackedSource(image) if source is None else source
            frame, mask = warp_pair(image, label, affine, ignore_label, source)
        occluder = trajectory.occluder(k)
        if occluder is not None:
            covered = occluder.raster(height, width)
            frame[covered] = occluder.color
            mask[covered] = ignore_label
        if k > 0:
            noise = rounded_gaussian(rng, shape, MINUTE_NOISE_STD)
            if accumulated is not None:
                accumulated += rounded_gaussian(rng, shape, trajectory.noise_step)
                noise += accumulated
            frame = add_noise(frame, noise)
        yield frame, mask


def add_noise(frame: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``frame + noise`` (int16 noise) clipped to uint8."""
    out = frame.astype(np.int16)
    out += noise
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
