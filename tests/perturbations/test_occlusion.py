"""perturbations.occlusion: the occluder's size and speed ladders, its path through the focus."""

from __future__ import annotations

import math

import numpy as np
import pytest

import perturbations as P
from perturbations.occlusion import OCCLUSION_AREA, OCCLUSION_SPEED
from tests.helpers import trajectory_key

H, W = 120, 160


def test_occlusion_ladder() -> None:
    short = min(H, W)
    prev_area = prev_speed = prev_raster = 0.0
    for sev in P.SEVERITIES:
        traj = P.make_trajectory("occlusion", sev, np.random.default_rng(5), H, W, 11)
        occs = traj.occluders
        area = math.pi * occs[0].ax * occs[0].ay
        assert area == pytest.approx(OCCLUSION_AREA[sev] * H * W, rel=1e-9)
        assert 0.5 - 1e-9 <= occs[0].ax / occs[0].ay <= 2.0 + 1e-9
        speeds = [math.hypot(b.cx - a.cx, b.cy - a.cy) for a, b in zip(occs, occs[1:])]
        assert speeds == pytest.approx([OCCLUSION_SPEED[sev] * short] * 10, rel=1e-9)
        # a straight line through the focus (default: the image centre) at the middle frame
        assert (occs[5].cx, occs[5].cy) == pytest.approx(((W - 1) / 2, (H - 1) / 2), abs=1e-9)
        assert all(o.ax == occs[0].ax and o.ay == occs[0].ay and o.color == occs[0].color for o in occs)
        raster = float(occs[5].raster(H, W).mean())
        assert raster == pytest.approx(OCCLUSION_AREA[sev], rel=0.15)
        assert area > prev_area and speeds[0] > prev_speed and raster > prev_raster
        prev_area, prev_speed, prev_raster = area, speeds[0], raster
        np.testing.assert_array_equal(traj.affines, np.repeat(np.eye(2, 3)[None], 11, axis=0))


def test_occlusion_passes_through_focus() -> None:
    traj = P.make_trajectory("occlusion", 4, np.random.default_rng(0), H, W, 11, focus=(20.5, 90.0))
    assert (traj.occluder(5).cx, traj.occluder(5).cy) == pytest.approx((20.5, 90.0))
    traj = P.make_trajectory("occlusion", 4, np.random.default_rng(0), H, W, 4, focus=(20.0, 90.0))
    mid = ((traj.occluder(1).cx + traj.occluder(2).cx) / 2, (traj.occluder(1).cy + traj.occluder(2).cy) / 2)
    assert mid == pytest.approx((20.0, 90.0))
    # other types ignore focus
    a = P.make_trajectory("rotation", 4, np.random.default_rng(0), H, W, 4, focus=(1.0, 2.0))
    b = P.make_trajectory("rotation", 4, np.random.default_rng(0), H, W, 4)
    assert trajectory_key(a) == trajectory_key(b)
