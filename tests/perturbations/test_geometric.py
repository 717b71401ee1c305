"""perturbations.geometric: translation, rotation and scaling follow their severity ladders."""

from __future__ import annotations

import math

import numpy as np
import pytest

import perturbations as P
from perturbations.geometric import ROTATION_STEP_DEG, SCALING_STEP, TRANSLATION_STEP
from perturbations.geometry import about_centre

H, W = 120, 160
GEOMETRIC = ("translation", "rotation", "scaling")


def test_geometric_steps_match_their_ladders() -> None:
    short = min(H, W)
    centre = ((W - 1) / 2.0, (H - 1) / 2.0)
    for sev in P.SEVERITIES:
        for seed in range(4):
            tr = P.make_trajectory("translation", sev, np.random.default_rng(seed), H, W)
            step = np.hypot(tr.affines[1, 0, 2], tr.affines[1, 1, 2])
            assert step == pytest.approx(TRANSLATION_STEP[sev] * short, rel=1e-12)
            for k in range(11):
                np.testing.assert_allclose(tr.affines[k, :, :2], np.eye(2), atol=1e-12)
                np.testing.assert_allclose(tr.affines[k, :, 2], k * tr.affines[1, :, 2], atol=1e-9)

            ro = P.make_trajectory("rotation", sev, np.random.default_rng(seed), H, W)
            for k in range(11):
                a = ro.affines[k]
                angle = math.degrees(math.atan2(a[1, 0], a[0, 0]))
                assert abs(angle) == pytest.approx(k * ROTATION_STEP_DEG[sev], abs=1e-9)
                assert np.linalg.det(a[:, :2]) == pytest.approx(1.0, abs=1e-12)
                np.testing.assert_allclose(a[:, :2] @ centre + a[:, 2], centre, atol=1e-9)

            sc = P.make_trajectory("scaling", sev, np.random.default_rng(seed), H, W)
            factor = 1.0 + SCALING_STEP[sev]
            factor = factor if sc.params["zoom_in"] else 1.0 / factor
            for k in range(11):
                a = sc.affines[k]
                np.testing.assert_allclose(a[:, :2], np.eye(2) * factor**k, atol=1e-12)
                np.testing.assert_allclose(a[:, :2] @ centre + a[:, 2], centre, atol=1e-9)


def mean_displacement(traj: P.Trajectory, t: int) -> float:
    flow, valid = P.pair_correspondence(traj, t)
    return float(np.hypot(flow[..., 0], flow[..., 1])[valid].mean())


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("t", [0, 9])
def test_displacement_strictly_increases_with_severity(name: str, t: int) -> None:
    """Mean |flow| over valid pixels: every draw at severity s+1 moves more than any at s."""
    per_sev = []
    for sev in P.SEVERITIES:
        per_sev.append([mean_displacement(P.make_trajectory(name, sev, np.random.default_rng(s), H, W), t) for s in range(6)])
    per_sev = np.array(per_sev)
    assert (per_sev > 0).all()
    assert (np.diff(per_sev, axis=0) > 0).all()  # same seed, severity up
    assert (per_sev[1:].min(axis=1) > per_sev[:-1].max(axis=1)).all()  # across seeds too


def test_translation_displacement_hand_computed() -> None:
    for sev in P.SEVERITIES:
        traj = P.make_trajectory("translation", sev, np.random.default_rng(sev), H, W)
        assert mean_displacement(traj, 4) == pytest.approx(TRANSLATION_STEP[sev] * min(H, W), rel=1e-5)


def test_about_centre_rotation_is_what_rotation_uses() -> None:
    traj = P.make_trajectory("rotation", 2, np.random.default_rng(0), H, W)
    theta = math.radians(traj.params["step_deg"])
    expected = about_centre(np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]), W, H)
    np.testing.assert_allclose(traj.affines[1], expected, atol=1e-12)
