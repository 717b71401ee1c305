"""perturbations.warp: the exact fixed-point warp of the protocol.

Checked against a straightforward pure-Python version of the definition in
``docs/protocol.md`` (one pixel at a time, Python integers), between its two code paths
(separable and general), against OpenCV (within one intensity level: the same warp, up to
OpenCV's 1/32-pixel rounding), and on hand-computed cases.
"""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import pytest

import perturbations as P
from perturbations.geometry import about_centre, compose, invert, power
from perturbations.noise import _rounded_gaussian_table
from perturbations.render import warp_pair
from perturbations.warp import (
    COEF_BITS,
    MAX_SIDE,
    PackedSource,
    covered_by,
    fixed_point_coverage,
    fixed_point_inverse,
    source_coordinates,
    unpack_rgb,
)


def reference_warp(image: np.ndarray, label: np.ndarray, affine: np.ndarray, ignore: int = 255):
    """The protocol's definition, literally: Python integers, one pixel at a time."""
    height, width = label.shape
    (a, b, c), (d, e, f) = fixed_point_inverse(affine, height, width)
    shift = COEF_BITS - 8
    frame = np.zeros_like(image)
    mask = np.full_like(label, ignore)
    for y in range(height):
        for x in range(width):
            ux = (a * x + b * y + c + (1 << (shift - 1))) >> shift
            uy = (d * x + e * y + f + (1 << (shift - 1))) >> shift
            if not (0 <= ux <= (width - 1) * 256 and 0 <= uy <= (height - 1) * 256):
                continue
            x0, fx, y0, fy = ux >> 8, ux & 255, uy >> 8, uy & 255
            x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
            for ch in range(3):
                p = image[:, :, ch].astype(int)
                r0 = (p[y0, x0] * (256 - fx) + p[y0, x1] * fx + 128) >> 8
                r1 = (p[y1, x0] * (256 - fx) + p[y1, x1] * fx + 128) >> 8
                frame[y, x, ch] = (r0 * (256 - fy) + r1 * fy + 128) >> 8
            mask[y, x] = label[(uy + 128) >> 8, (ux + 128) >> 8]
    return frame, mask


def random_affine(rng: np.random.Generator, height: int, width: int, kind: str) -> np.ndarray:
    if kind == "translation":
        return np.array([[1.0, 0.0, rng.uniform(-3, 3)], [0.0, 1.0, rng.uniform(-3, 3)]])
    if kind == "scaling":
        s = rng.uniform(0.7, 1.4)
        return about_centre(np.diag([s, s]), width, height) + np.array([[0, 0, rng.uniform(-2, 2)], [0, 0, 0]])
    theta = rng.uniform(-0.5, 0.5)
    linear = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    if kind == "shear":
        linear = linear @ np.array([[1.0, rng.uniform(-0.3, 0.3)], [0.0, rng.uniform(0.8, 1.2)]])
    return about_centre(linear, width, height) + np.array([[0, 0, rng.uniform(-2, 2)], [0, 0, rng.uniform(-2, 2)]])


@pytest.mark.parametrize("kind", ["translation", "scaling", "rotation", "shear"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_the_definition_pixel_by_pixel(kind: str, seed: int) -> None:
    rng = np.random.default_rng([seed, len(kind)])
    height, width = 13, 17
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 5, (height, width), dtype=np.uint8)
    affine = random_affine(rng, height, width, kind)
    frame, mask = warp_pair(image, label, affine, 255)
    want_frame, want_mask = reference_warp(image, label, affine)
    np.testing.assert_array_equal(frame, want_frame)
    np.testing.assert_array_equal(mask, want_mask)


def test_separable_and_general_paths_give_the_same_bytes() -> None:
    rng = np.random.default_rng(5)
    height, width = 40, 57
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    source = PackedSource(image)
    for kind in ("translation", "scaling"):
        for _ in range(5):
            affine = random_affine(rng, height, width, kind)
            ux, uy = source_coordinates(affine, height, width)
            assert ux.shape == (1, width) and uy.shape == (height, 1)  # the separable path is taken
            covered = covered_by(ux, uy, height, width)
            full = [np.ascontiguousarray(np.broadcast_to(v, (height, width))) for v in (ux, uy, covered)]
            np.testing.assert_array_equal(source.sample(ux, uy, covered), source.sample(*full))


def test_hand_computed_cases() -> None:
    image = np.zeros((3, 4, 3), np.uint8)
    image[:, :, 0] = [[0, 100, 200, 255]] * 3
    image[:, :, 1] = [[10], [20], [40]]
    label = np.array([[1, 2, 3, 4]] * 3, np.uint8)
    identity = np.eye(2, 3)
    frame, mask = warp_pair(image, label, identity)
    np.testing.assert_array_equal(frame, image)
    np.testing.assert_array_equal(mask, label)
    # half a pixel to the right: the frame at x samples the source at x - 0.5
    frame, mask = warp_pair(image, label, np.array([[1.0, 0, 0.5], [0, 1.0, 0]]))
    assert frame[0, 0].tolist() == [0, 0, 0] and mask[0, 0] == 255  # source x = -0.5: uncovered
    assert frame[:, 1:, 0].tolist() == [[50, 150, 228]] * 3  # (0+100)/2, (100+200)/2, (200+255)/2 = 227.5 -> 228
    assert frame[:, 1, 1].tolist() == [10, 20, 40]
    assert mask[0].tolist() == [255, 2, 3, 4]  # nearest rounds half up: x - 0.5 + 0.5
    # a quarter pixel down: rows blend 3:1 (20 * 0.75 + 40 * 0.25 = 25), the last row is uncovered
    frame, _ = warp_pair(image, label, np.array([[1.0, 0, 0], [0, 1.0, -0.25]]))
    assert frame[:, 0, 1].tolist() == [13, 25, 0]  # (10*192 + 20*64 + 128) >> 8 = 13, 25.5 -> 25 (floor of +128)


def test_agrees_with_opencv_within_one_level() -> None:
    """The same bilinear warp as ``cv2.warpAffine`` up to sub-pixel rounding: a sanity check of
    the definition (bytes never depend on OpenCV)."""
    rng = np.random.default_rng(2)
    height, width = 120, 160
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0)
    for kind in ("translation", "scaling", "rotation", "shear"):
        affine = random_affine(rng, height, width, kind)
        frame, mask = warp_pair(image, np.zeros((height, width), np.uint8), affine)
        ref = cv2.warpAffine(image, affine, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        covered = mask != 255
        assert covered.mean() > 0.5
        # OpenCV 5: within one level; OpenCV 4, which quantises coordinates to 1/32 pixel: within two
        bound = 1 if int(cv2.__version__.split(".")[0]) >= 5 else 2
        assert np.abs(frame.astype(int) - ref.astype(int))[covered].max() <= bound, kind


def test_coverage_matches_the_float_definition_away_from_the_border() -> None:
    """Fixed-point coverage differs from the float64 one only within 1/256 px of the border."""
    rng = np.random.default_rng(9)
    height, width = 50, 70
    for kind in ("translation", "scaling", "rotation", "shear"):
        affine = random_affine(rng, height, width, kind)
        fixed = fixed_point_coverage(affine, height, width)
        assert np.array_equal(fixed & P.geometry.coverage(affine, height, width, margin=0.01),
                              P.geometry.coverage(affine, height, width, margin=0.01))
        assert not (fixed & ~P.geometry.coverage(affine, height, width, margin=-0.01)).any()


def test_pack_round_trip() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(unpack_rgb(PackedSource(image).grid[:5, :6]), image)


def test_range_errors() -> None:
    with pytest.raises(ValueError, match="outside the renderer's range"):
        fixed_point_inverse(np.array([[1e-3, 0, 0], [0, 1e-3, 0]]), 10, 10)
    with pytest.raises(ValueError, match="outside the renderer's range"):
        fixed_point_inverse(np.array([[1.0, 0, 1e7], [0, 1.0, 0]]), 10, 10)
    with pytest.raises(ValueError, match="size"):
        fixed_point_inverse(np.eye(2, 3), MAX_SIDE + 1, 10)
    with pytest.raises(ValueError, match="singular"):
        fixed_point_inverse(np.zeros((2, 3)), 10, 10)


def test_closed_form_inverse_and_compose() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = random_affine(rng, 480, 854, "shear")
        b = random_affine(rng, 480, 854, "rotation")
        np.testing.assert_allclose(invert(a), np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(compose(a, b), (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2],
                                   rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(compose(a, invert(a)), np.eye(2, 3), atol=1e-9)
    step = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, -0.7]])
    assert power(step, 0).tolist() == np.eye(2, 3).tolist()
    assert power(step, 3)[:, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]]  # translation stays exactly separable


def test_noise_tables_are_pinned() -> None:
    """The noise tables come from ``statistics.NormalDist`` (libm's log): pinned, so a platform
    whose libm rounds one entry differently fails here rather than rendering other bytes."""
    digest = hashlib.sha256()
    for std in sorted({P.MINUTE_NOISE_STD, *P.noise.GAUSSIAN_NOISE_STEP.values()}):
        digest.update(_rounded_gaussian_table(float(std)).tobytes())
    assert digest.hexdigest() == NOISE_TABLES_SHA256


NOISE_TABLES_SHA256 = "ee59f7a56630a9942e9975a0110b746375898eb57cf9bc5f36818975e2b79cf3"


@pytest.mark.parametrize("kind", ["scaling", "rotation"])
def test_band_size_does_not_change_the_bytes(kind: str, monkeypatch) -> None:
    import perturbations.render as render

    rng = np.random.default_rng(11)
    height, width = 50, 33
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 4, (height, width), dtype=np.uint8)
    affine = random_affine(rng, height, width, kind)
    outputs = []
    for rows in (1, 7, 24, 1000):
        monkeypatch.setattr(render, "WARP_BAND_ROWS", rows)
        outputs.append(warp_pair(image, label, affine))
    for frame, mask in outputs[1:]:
        np.testing.assert_array_equal(frame, outputs[0][0])
        np.testing.assert_array_equal(mask, outputs[0][1])
