"""Render the frames and ground-truth masks of a trajectory.

Frame ``k`` = source warped once by ``affines[k]`` (bilinear), uncovered pixels set to 0,
occluder painted, then noise: the cumulative perturbation noise (``gaussian_noise``) and an
independent minute noise (std ``MINUTE_NOISE_STD``) on every frame after the first.
Masks are the source labels warped by nearest neighbour (labels are never interpolated);
uncovered and occluded pixels get ``ignore_label``.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from perturbations.geometry import coverage
from perturbations.noise import rounded_gaussian
from perturbations.trajectory import MINUTE_NOISE_STD, Trajectory

IGNORE_LABEL = 255


def _is_identity(affine: np.ndarray) -> bool:
    return bool(np.array_equal(affine, np.eye(2, 3)))


def warp_image(image: np.ndarray, affine: np.ndarray, covered: np.ndarray | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 source under ``affine`` (bilinear); uncovered pixels are 0.

    ``covered`` (``(H, W)`` bool, from :func:`perturbations.geometry.coverage`) may be
    passed to save recomputing it.
    """
    if _is_identity(affine):
        return image.copy()
    height, width = image.shape[:2]
    out = cv2.warpAffine(image, affine, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~(coverage(affine, height, width) if covered is None else covered)] = 0
    return out


def warp_label(
    label: np.ndarray, affine: np.ndarray, ignore_label: int = IGNORE_LABEL, covered: np.ndarray | None = None
) -> np.ndarray:
    """``(H, W)`` uint8 labels under ``affine`` (nearest); uncovered pixels get ``ignore_label``."""
    if _is_identity(affine):
        return label.copy()
    height, width = label.shape
    out = cv2.warpAffine(
        label, affine, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=ignore_label
    )
    out[~(coverage(affine, height, width) if covered is None else covered)] = ignore_label
    return out


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
    for k in range(trajectory.num_frames):
        affine = trajectory.affines[k]
        covered = None if _is_identity(affine) else coverage(affine, height, width)
        frame = warp_image(image, affine, covered)
        mask = warp_label(label, affine, ignore_label, covered)
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
