"""stabbench.flow.dis: DIS optical flow (presets, working resolution, determinism, threads,
parameters), the bidirectional flow, and its error against the synthesizer's known flow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import perturbations as P
from stabbench.datasets import list_sources
from stabbench.flow import FlowParams, bidirectional_flow, compute_flow
from stabbench.flow.dis import working_size
from tests.helpers import shifted, texture


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_dis_recovers_translation(preset):
    a = texture(120, 160)
    b = shifted(a, 2.6, -1.4)
    flow = compute_flow(a, b, FlowParams(preset))
    assert flow.shape == (120, 160, 2) and flow.dtype == np.float32
    inner = flow[10:-10, 10:-10]
    assert abs(np.median(inner[..., 0]) - 2.6) < 0.3
    assert abs(np.median(inner[..., 1]) + 1.4) < 0.3
    if preset == "medium":
        assert abs(np.median(inner[..., 0]) - 2.6) < 0.1 and abs(np.median(inner[..., 1]) + 1.4) < 0.1


def test_dis_working_resolution_rescales_vectors():
    a = texture(160, 240, scale=5.0)
    b = shifted(a, 4.0, 2.0)
    params = FlowParams("medium", max_side=120)
    assert working_size(160, 240, 120) == (80, 120)
    assert working_size(160, 240, None) == working_size(160, 240, 240) == (160, 240)
    flow = compute_flow(a, b, params)
    assert flow.shape == (160, 240, 2)
    inner = flow[16:-16, 16:-16]
    assert abs(np.median(inner[..., 0]) - 4.0) < 0.3 and abs(np.median(inner[..., 1]) - 2.0) < 0.3


def test_dis_is_deterministic_and_accepts_gray():
    a = texture(64, 80)
    b = shifted(a, 1.0, 0.5)
    f1 = compute_flow(a, b)
    assert np.array_equal(f1, compute_flow(a, b))
    compute_flow(texture(96, 72, 4), texture(96, 72, 5))  # the reused DIS object keeps no state
    assert np.array_equal(f1, compute_flow(a, b))
    fresh = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(
        cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
    assert np.array_equal(f1, fresh)
    gray = compute_flow(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    assert np.array_equal(f1, gray)


def test_flow_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    a = texture(96, 128, 2)
    b = shifted(a, 2.0, 1.0)
    ref = bidirectional_flow(a, b)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: bidirectional_flow(a, b), range(8)))
    for res in results:
        for x, y in zip(ref, res):
            assert np.array_equal(x, y)


def test_flow_params_validation_and_canonical_json():
    with pytest.raises(ValueError, match="preset"):
        FlowParams("slow")
    with pytest.raises(ValueError, match="alpha"):
        FlowParams(alpha=-1)
    with pytest.raises(ValueError, match="max_side"):
        FlowParams(max_side=8)
    assert FlowParams(alpha=1, beta_fb=0).canonical_json() == FlowParams(alpha=1.0, beta_fb=0.0).canonical_json()
    assert FlowParams().canonical_json() == '{"alpha":0.01,"beta_fb":0.5,"max_side":null,"preset":"medium"}'
    with pytest.raises(ValueError, match="differ in size"):
        compute_flow(texture(32, 32), texture(32, 40))
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="at least"):
        compute_flow(np.zeros((8, 40, 3), np.uint8), np.zeros((8, 40, 3), np.uint8))


# ----------------------------------------------------------------------------- vs the synthesizer


@pytest.mark.parametrize("name, severity, max_mean_epe", [
    ("translation", 2, 0.2), ("rotation", 2, 0.2), ("scaling", 2, 0.2), ("occlusion", 2, 0.5)])
def test_dis_against_the_synthesizers_flow(name, severity, max_mean_epe):
    """Mean/median end-point error of DIS (medium) on ground-truth valid pixels of a small
    synthetic sequence (shapes source, 120x160) at low severity. Measured (seed 1):
    translation 0.034, rotation 0.037, scaling 0.039 px mean EPE, all kept by the check."""
    h, w = 120, 160
    src = list_sources("shapes", num_images=1, height=h, width=w).sources[0].load()
    traj = P.make_trajectory(name, severity, np.random.default_rng(1), h, w, num_frames=3, focus=(w / 2, h / 2))
    frames = [f for f, _ in P.render_sequence(src.image, src.label, traj, np.random.default_rng(2))]
    gt, valid = P.pair_correspondence(traj, 1)
    pf = bidirectional_flow(frames[1], frames[2], FlowParams("medium"))
    epe = np.linalg.norm(pf.flow_fw - gt, axis=2)[valid]
    kept = pf.valid_fw[valid]
    assert valid.mean() > 0.5
    assert epe.mean() < max_mean_epe and np.median(epe) < 0.1
    assert kept.mean() > 0.9
    assert np.linalg.norm(pf.flow_fw - gt, axis=2)[valid & pf.valid_fw].mean() <= epe.mean() + 1e-6


def test_a_flow_does_not_depend_on_the_sizes_computed_before():
    """OpenCV's DIS object keeps state from a smaller frame (its flow of a larger one then
    differs from a fresh object's): stabbench never reuses one across sizes."""
    a = texture(64, 80)
    b = shifted(a, 1.0, 0.5)
    gray_a, gray_b = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    fresh = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray_a, gray_b, None)
    for side in (16, 24, 40, 200):
        small = texture(side, side, 3)
        compute_flow(small, shifted(small, 1.0, 0.0))
        assert np.array_equal(compute_flow(a, b), fresh), side
