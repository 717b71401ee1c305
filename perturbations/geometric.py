"""Translation, rotation and scaling: a constant per-frame step, composed ``k`` times.

Frame ``k`` is the source under ``step^k`` (one resampling per frame, never a re-warp of the
previous frame). Steps are relative to the image's short side so a ladder means the same
at every resolution. See ``docs/protocol.md`` for the reasoning behind each ladder.
"""

from __future__ import annotations

import math

import numpy as np

from perturbations.geometry import about_centre, power
from perturbations.trajectory import Trajectory, check_severity

#: Translation per frame, as a fraction of the short side (854x480: 0.96 .. 7.2 px/frame).
TRANSLATION_STEP = {1: 0.002, 2: 0.004, 3: 0.006, 4: 0.009, 5: 0.012, 6: 0.015}

#: Rotation per frame, degrees, about the image centre (after 10 steps: 2.5 .. 20 deg).
ROTATION_STEP_DEG = {1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 5: 1.5, 6: 2.0}

#: Relative zoom per frame about the centre, in or out (after 10 steps: 1.02 .. 1.16).
SCALING_STEP = {1: 0.002, 2: 0.004, 3: 0.006, 4: 0.009, 5: 0.012, 6: 0.015}


def _trajectory(name, severity, height, width, num_frames, step, params) -> Trajectory:
    affines = np.stack([power(step, k) for k in range(num_frames)])
    return Trajectory(name, severity, height, width, params, affines)


def translation(rng: np.random.Generator, severity: int, height: int, width: int, num_frames: int) -> Trajectory:
    """Shift by a constant step per frame in a direction drawn uniformly from ``rng``."""
    severity = check_severity(severity)
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    step_px = TRANSLATION_STEP[severity] * min(height, width)
    dx, dy = step_px * math.cos(angle), step_px * math.sin(angle)
    step = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    params = {"angle_rad": angle, "step_px": step_px, "dx": dx, "dy": dy}
    return _trajectory("translation", severity, height, width, num_frames, step, params)


def rotation(rng: np.random.Generator, severity: int, height: int, width: int, num_frames: int) -> Trajectory:
    """Rotate about the image centre by a constant angle per frame, sign drawn from ``rng``."""
    severity = check_severity(severity)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    theta = math.radians(sign * ROTATION_STEP_DEG[severity])
    c, s = math.cos(theta), math.sin(theta)
    step = about_centre(np.array([[c, -s], [s, c]]), width, height)
    params = {"step_deg": math.degrees(theta)}
    return _trajectory("rotation", severity, height, width, num_frames, step, params)


def scaling(rng: np.random.Generator, severity: int, height: int, width: int, num_frames: int) -> Trajectory:
    """Zoom in or out (drawn from ``rng``) about the centre by a constant factor per frame."""
    severity = check_severity(severity)
    zoom_in = bool(rng.random() < 0.5)
    factor = 1.0 + SCALING_STEP[severity]
    factor = factor if zoom_in else 1.0 / factor
    step = about_centre(np.diag([factor, factor]), width, height)
    params = {"factor": factor, "zoom_in": zoom_in}
    return _trajectory("scaling", severity, height, width, num_frames, step, params)
