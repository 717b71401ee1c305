"""perturbations.render: rendering a sequence and its ground truth.

The key test (:func:`test_warp_back_with_ground_truth_flow`) renders every perturbation
and checks that frame t+1 sampled at x + f(x) reproduces frame t on the valid pixels, down
to the noise that the protocol adds.
"""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import pytest

import perturbations as P
import perturbations.render as render_module
from perturbations.geometry import apply_affine
from perturbations.warp import fixed_point_coverage
from stabbench.datasets import list_sources
from tests.helpers import covered_fraction, rounded_std, trajectory_key

H, W = 120, 160
NAMES = P.PERTURBATION_NAMES
GEOMETRIC = ("translation", "rotation", "scaling")
IGNORE = 255
MINUTE = rounded_std(P.MINUTE_NOISE_STD)  # about 1.04 (rounding adds ~1/12 of variance)
MAD = math.sqrt(2.0 / math.pi)  # mean |z| / std of a Gaussian


@pytest.fixture(scope="module")
def shapes_sample():
    """A 160x120 smooth textured image with exact labels (classes 0..2)."""
    sample = list_sources("shapes", num_images=1, height=H, width=W, seed=3).sources[0].load()
    assert len(np.unique(sample.label)) >= 2
    return sample


def pixel_grid_f32(h: int = H, w: int = W):
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def render(sample, name: str, severity: int, seed: int, num_frames: int = 11):
    rng = np.random.default_rng(seed)
    traj = P.make_trajectory(name, severity, rng, H, W, num_frames)
    frames, masks = zip(*P.render_sequence(sample.image, sample.label, traj, rng))
    return traj, list(frames), list(masks)


# ----------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", NAMES)
def test_only_the_passed_generator_is_used(name: str, shapes_sample) -> None:
    outputs = []
    for global_seed in (1, 12345):
        np.random.seed(global_seed)
        state = np.random.get_state()[1].copy()
        traj, frames, masks = render(shapes_sample, name, 4, seed=7, num_frames=5)
        # the global state was neither used nor advanced
        np.testing.assert_array_equal(np.random.get_state()[1], state)
        outputs.append((trajectory_key(traj), np.stack(frames), np.stack(masks)))
    assert outputs[0][0] == outputs[1][0]
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    np.testing.assert_array_equal(outputs[0][2], outputs[1][2])


@pytest.mark.parametrize("name", NAMES)
def test_render_determinism_and_seed_dependence(name: str, shapes_sample) -> None:
    t1, f1, m1 = render(shapes_sample, name, 3, seed=11, num_frames=4)
    t2, f2, m2 = render(shapes_sample, name, 3, seed=11, num_frames=4)
    assert trajectory_key(t1) == trajectory_key(t2)
    np.testing.assert_array_equal(np.stack(f1), np.stack(f2))
    np.testing.assert_array_equal(np.stack(m1), np.stack(m2))
    _, f3, _ = render(shapes_sample, name, 3, seed=12, num_frames=4)
    if name != "occlusion":  # (the occluder of frame 0 depends on the seed)
        np.testing.assert_array_equal(f1[0], f3[0])  # frame 0 is noise-free
    assert not np.array_equal(np.stack(f1[1:]), np.stack(f3[1:]))  # the noise differs at least


# ----------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", NAMES)
def test_frame_zero_is_the_source(name: str, shapes_sample) -> None:
    traj, frames, masks = render(shapes_sample, name, 6, seed=1, num_frames=3)
    assert frames[0].dtype == np.uint8 and frames[0].shape == (H, W, 3)
    assert masks[0].dtype == np.uint8 and masks[0].shape == (H, W)
    if name != "occlusion":
        np.testing.assert_array_equal(frames[0], shapes_sample.image)
        np.testing.assert_array_equal(masks[0], shapes_sample.label)
    else:
        occ = traj.occluder(0).raster(H, W)
        assert occ.any()
        np.testing.assert_array_equal(frames[0][~occ], shapes_sample.image[~occ])
        np.testing.assert_array_equal(masks[0][~occ], shapes_sample.label[~occ])
        assert (frames[0][occ] == np.array(traj.occluder(0).color, np.uint8)).all()
        assert (masks[0][occ] == IGNORE).all()
    # the source is not modified in place
    assert not np.shares_memory(frames[0], shapes_sample.image)


def test_render_rejects_size_mismatch(shapes_sample) -> None:
    traj = P.make_trajectory("rotation", 1, np.random.default_rng(0), H + 1, W, 3)
    with pytest.raises(ValueError, match="sizes differ"):
        list(P.render_sequence(shapes_sample.image, shapes_sample.label, traj, np.random.default_rng(0)))
    traj = P.make_trajectory("rotation", 1, np.random.default_rng(0), H, W, 3)
    with pytest.raises(ValueError, match="sizes differ"):
        list(P.render_sequence(shapes_sample.image[:, :-1], shapes_sample.label, traj, np.random.default_rng(0)))


def reference_nearest_labels(label: np.ndarray, affine: np.ndarray):
    """Labels of each frame pixel by nearest source pixel (inverse map, round half up), and a
    mask of pixels whose source point is not within 0.02 px of a rounding tie."""
    h, w = label.shape
    sx, sy = apply_affine(P.geometry.invert(affine), h, w)
    ix, iy = np.floor(sx + 0.5).astype(int), np.floor(sy + 0.5).astype(int)
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    ref = np.full((h, w), IGNORE, np.uint8)
    ref[ok] = label[iy[ok], ix[ok]]
    tie = (np.abs((sx % 1.0) - 0.5) < 0.02) | (np.abs((sy % 1.0) - 0.5) < 0.02)
    return ref, ~tie


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [2, 6])
def test_masks_are_nearest_neighbour_warps(name: str, severity: int, shapes_sample) -> None:
    traj, frames, masks = render(shapes_sample, name, severity, seed=2)
    source_labels = set(np.unique(shapes_sample.label).tolist())
    for k, (frame, mask) in enumerate(zip(frames, masks)):
        assert set(np.unique(mask).tolist()) <= source_labels | {IGNORE}
        covered = fixed_point_coverage(traj.affines[k], H, W)
        assert (mask[~covered] == IGNORE).all()
        assert (frame[~covered] <= 5).all()  # black (0) plus the minute noise (|n| <= 5)
        occluded = traj.occluder(k).raster(H, W) if traj.occluder(k) else np.zeros((H, W), bool)
        assert (mask[occluded] == IGNORE).all()
        if occluded.any():
            diff = np.abs(frame[occluded].astype(int) - np.array(traj.occluder(k).color))
            assert diff.max() <= 5
        # covered, un-occluded pixels carry a label (the source has no 255)
        assert (mask[covered & ~occluded] != IGNORE).all()
        ref, reliable = reference_nearest_labels(shapes_sample.label, traj.affines[k])
        check = covered & ~occluded & reliable
        assert check.sum() > 0.5 * H * W
        np.testing.assert_array_equal(mask[check], ref[check])


@pytest.mark.parametrize("name", ["rotation", "scaling", "translation"])
def test_multiclass_label_maps_survive(name: str) -> None:
    """19 classes (plus 255 ignore patches) in 12x10 blocks: no interpolated value appears and
    every class is still present after 10 frames."""
    rng = np.random.default_rng(0)
    blocks = rng.permutation(np.arange(12 * 16) % 19).reshape(12, 16).astype(np.uint8)
    label = np.kron(blocks, np.ones((10, 10), np.uint8))
    label[50:60, 70:90] = IGNORE
    lab = label.astype(np.int64)
    image = np.dstack([lab * 13 % 256, (255 - lab * 7) % 256, lab * 31 % 256]).astype(np.uint8)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        traj = P.make_trajectory(name, 6, rng, H, W, 11)
        for mask in (m for _, m in P.render_sequence(image, label, traj, rng)):
            values = set(np.unique(mask).tolist())
            assert values <= set(range(19)) | {IGNORE}
            assert set(range(19)) <= values
        # every class keeps roughly its area in the last frame (nearest neighbour, no bleeding)
        counts = np.bincount(mask.ravel(), minlength=256)[:19]
        expected = np.bincount(label.ravel(), minlength=256)[:19] * covered_fraction(traj, 10)
        assert np.abs(counts - expected).max() < 0.35 * expected.min()


def test_warp_label_and_image_identity_and_nearest() -> None:
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(P.warp_label(label, np.eye(2, 3)), label)
    shift = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # content moves right by 1 px
    out = P.warp_label(label, shift)
    np.testing.assert_array_equal(out[:, 0], IGNORE)
    np.testing.assert_array_equal(out[:, 1:], label[:, :-1])
    image = np.dstack([label * 10] * 3).astype(np.uint8)
    out = P.warp_image(image, shift)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_array_equal(out[:, 1:], image[:, :-1])
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    out = P.warp_image(image, half).astype(int)
    np.testing.assert_allclose(out[:, 1:, 0], (image[:, 1:, 0].astype(int) + image[:, :-1, 0]) / 2, atol=1)


def test_add_noise_clips() -> None:
    frame = np.array([[[0, 128, 255]]], np.uint8)
    noise = np.array([[[-5, 3, 7]]], np.int16)
    np.testing.assert_array_equal(render_module.add_noise(frame, noise), [[[0, 131, 255]]])


# ----------------------------------------------------------------------------- the key test


def warp_back(frame_t1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame t+1 sampled at x + f(x) (bilinear): frame t as seen through the flow."""
    gx, gy = pixel_grid_f32(*frame_t1.shape[:2])
    return cv2.remap(frame_t1, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)


def pair_errors(traj, frames, t):
    flow, valid = P.pair_correspondence(traj, t)
    ft = frames[t].astype(np.float64)
    comp = np.abs(warp_back(frames[t + 1], flow) - ft)[valid].mean()
    none = np.abs(frames[t + 1] - ft)[valid].mean()
    wrong = np.abs(warp_back(frames[t + 1], -flow) - ft)[valid].mean()
    return comp, none, wrong, valid


WARP_ERRORS: dict = {}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 3, 6])
def test_warp_back_with_ground_truth_flow(name: str, severity: int, shapes_sample) -> None:
    traj, frames, _ = render(shapes_sample, name, severity, seed=severity)
    if name == "gaussian_noise":
        # frame t+1 - frame t: one new step draw plus two minute draws (one for t = 0)
        floor = MAD * math.sqrt(rounded_std(traj.noise_step) ** 2 + 2 * MINUTE**2)
    else:
        floor = MAD * math.sqrt(2) * MINUTE  # about 1.17 gray levels
    comps, nones = [], []
    for t in range(traj.num_frames - 1):
        comp, none, wrong, valid = pair_errors(traj, frames, t)
        assert valid.mean() > 0.6
        comps.append(comp)
        nones.append(none)
        # per pair: the noise floor plus bilinear-of-bilinear resampling error (worst at
        # half-pixel phases, up to ~1 gray level without noise on this texture)
        assert comp < floor + 0.6, (t, comp, floor)
        if name in GEOMETRIC:
            assert comp < none, (t, comp, none)
            if severity >= 3:
                assert wrong > comp + 1.0, (t, comp, wrong)  # the flow's sign / direction matters
    assert np.mean(comps) < floor + 0.3, (np.mean(comps), floor)
    if name in GEOMETRIC and severity >= 3:
        assert np.mean(comps) < (0.35 if severity == 6 else 0.7) * np.mean(nones)
    WARP_ERRORS[(name, severity)] = (float(np.mean(comps)), float(np.mean(nones)))
    if name == "gaussian_noise":
        assert np.mean(comps) > 0.85 * floor  # clipping at 0/255 lowers it a little, no more


@pytest.mark.parametrize("name", ["translation", "rotation", "scaling", "occlusion"])
def test_warp_back_without_noise_is_interpolation_only(name: str, shapes_sample, monkeypatch) -> None:
    """With the minute noise switched off, what is left is bilinear resampling error."""
    monkeypatch.setattr(render_module, "MINUTE_NOISE_STD", 0.0)
    traj, frames, masks = render(shapes_sample, name, 6, seed=0)
    gx, gy = pixel_grid_f32()
    comps = []
    for t in range(traj.num_frames - 1):
        comp, _, _, valid = pair_errors(traj, frames, t)
        assert comp < (0.01 if name == "occlusion" else 1.2), (t, comp)
        comps.append(comp)
        # masks: the label at the nearest pixel to x + f(x) in t+1 is the label at x in t
        flow = P.pair_correspondence(traj, t)[0]
        tx = np.rint(gx + flow[..., 0]).astype(int)
        ty = np.rint(gy + flow[..., 1]).astype(int)
        agree = (masks[t + 1][ty[valid], tx[valid]] == masks[t][valid]).mean()
        assert agree > 0.985, (t, agree)
    assert np.mean(comps) < (0.01 if name == "occlusion" else 0.8)


def test_rendered_bytes_are_pinned() -> None:
    """Every type at severities 1 and 6, frames and masks, hashed: a compact set stores only
    the checksums of what this code renders, so a change of a single rendered byte (a faster
    draw, a new warp) must be a deliberate protocol change, not an accident. The renderer is
    integer arithmetic, so the digest holds on every machine and every supported NumPy and
    OpenCV (CI checks it at the newest and the minimum versions)."""
    digest = hashlib.sha256()
    source = np.random.default_rng(7)
    image = source.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    label = (source.random((60, 90)) < 0.4).astype(np.uint8)
    for name in P.PERTURBATION_NAMES:
        for severity in (1, 6):
            rng = np.random.default_rng([severity, sum(map(ord, name))])
            traj = P.make_trajectory(name, severity, rng, 60, 90, num_frames=5)
            for frame, mask in P.render_sequence(image, label, traj, rng):
                digest.update(frame.tobytes())
                digest.update(mask.tobytes())
    assert digest.hexdigest() == "fd886917194e2de81cd78db04b6134a592bb10db49aaf8c6d7a5dc8fb3a017e3"
