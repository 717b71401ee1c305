"""perturbations.trajectory: the Trajectory record (shape, serialisation), severities, and
how much content stays in frame after 10 steps (the protocol document's table)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perturbations as P
from perturbations.geometry import apply_affine, inside
from perturbations.noise import GAUSSIAN_NOISE_STEP
from perturbations.trajectory import check_severity
from tests.helpers import covered_fraction

H, W = 120, 160
NAMES = P.PERTURBATION_NAMES


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_shapes(name: str) -> None:
    traj = P.make_trajectory(name, 3, np.random.default_rng(0), H, W, 7)
    assert traj.name == name and traj.severity == 3 and traj.num_frames == 7
    assert (traj.height, traj.width) == (H, W)
    assert traj.affines.shape == (7, 2, 3) and traj.affines.dtype == np.float64
    np.testing.assert_array_equal(traj.affines[0], np.eye(2, 3))
    json.dumps(traj.to_dict())  # serialisable
    if name == "occlusion":
        assert len(traj.occluders) == 7 and all(isinstance(o, P.Occluder) for o in traj.occluders)
    else:
        assert all(traj.occluder(k) is None for k in range(7))
    assert traj.noise_step == (GAUSSIAN_NOISE_STEP[3] if name == "gaussian_noise" else 0.0)


def test_check_severity_accepts_integral_values() -> None:
    for s in P.SEVERITIES:
        assert check_severity(s) == s
        assert check_severity(np.int64(s)) == s
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4, 5, 6\)"):
        check_severity(7)


@pytest.mark.parametrize("name", P.PERTURBATION_NAMES)
def test_trajectory_dict_round_trip(name: str) -> None:
    traj = P.make_trajectory(name, 5, np.random.default_rng(10), 48, 64, 6)
    data = json.loads(json.dumps(traj.to_dict()))
    back = P.Trajectory.from_dict(data)
    assert (back.name, back.severity, back.height, back.width) == (name, 5, 48, 64)
    assert back.params == traj.params
    assert back.occluders == traj.occluders
    assert back.noise_step == traj.noise_step
    np.testing.assert_allclose(back.affines, traj.affines, atol=1e-12, rtol=0)
    for t in range(5):
        f0, v0 = P.pair_correspondence(traj, t)
        f1, v1 = P.pair_correspondence(back, t)
        np.testing.assert_allclose(f1, f0, atol=1e-6)
        assert (v0 != v1).sum() <= 2  # a pixel exactly on a border may flip with 1e-12 rounding


# ----------------------------------------------------------------------------- in frame after 10 steps


def in_frame_fraction(traj: P.Trajectory, k: int) -> float:
    """Fraction of source pixel centres still inside frame k (and not under its occluder)."""
    x, y = apply_affine(traj.affines[k], traj.height, traj.width)
    ok = inside(x, y, traj.width, traj.height)
    if traj.occluder(k) is not None:
        ok &= ~traj.occluder(k).contains(x, y)
    return float(ok.mean())


# Measured at 160x120 over seeds 0..7 (min): in frame / covered
SEV6_MIN = {"translation": 0.817, "rotation": 0.862, "scaling": 0.733, "occlusion": 0.899, "gaussian_noise": 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_most_content_stays_in_frame_at_severity_6(name: str) -> None:
    fractions = []
    for seed in range(8):
        traj = P.make_trajectory(name, 6, np.random.default_rng(seed), H, W, 11)
        fractions.append((in_frame_fraction(traj, 10), covered_fraction(traj, 10)))
    fractions = np.array(fractions)
    assert fractions.min() > 0.6
    assert fractions.min() == pytest.approx(SEV6_MIN[name], abs=0.005)


# docs/protocol.md, "in frame after 10 steps" (854x480, 8 seeds, min-max); measured here at
# 427x240 (same aspect ratio; steps are relative to the short side).
DOC_TABLE = {
    "translation": [(0.97, 0.99), (0.95, 0.97), (0.93, 0.96), (0.90, 0.94), (0.86, 0.92), (0.83, 0.90)],
    "rotation": [0.97, 0.95, 0.93, 0.91, 0.87, 0.84],
    "scaling": [0.96, 0.92, 0.89, 0.83, 0.79, 0.74],
    "occlusion": [0.99, 0.98, 0.965, 0.95, 0.925, 0.90],
}


@pytest.mark.parametrize("name", list(DOC_TABLE))
def test_in_frame_fractions_match_protocol_doc(name: str) -> None:
    h, w = 240, 427
    seeds = range(8) if name in ("translation", "scaling") else range(1)
    for sev, row in zip(P.SEVERITIES, DOC_TABLE[name]):
        got = [in_frame_fraction(P.make_trajectory(name, sev, np.random.default_rng(s), h, w, 11), 10) for s in seeds]
        if name == "translation":
            assert min(got) == pytest.approx(row[0], abs=0.01) and max(got) == pytest.approx(row[1], abs=0.01)
        elif name == "scaling":  # zoom in loses content; zoom out keeps all of it
            assert min(got) == pytest.approx(row, abs=0.01) and max(got) == 1.0
        else:
            assert got[0] == pytest.approx(row, abs=0.006)
