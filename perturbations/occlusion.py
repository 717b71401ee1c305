"""Occlusion: a flat-coloured ellipse sliding across a static image.

The occluder's path passes through a *focus* point (the labelled objects' centroid, given
by the caller, or the image centre) at the middle frame, so it covers what matters.
Pixels under the occluder have no source content: their label is ignore (255) and they
have no correspondence in either direction.
"""

from __future__ import annotations

import math

import numpy as np

from perturbations.geometry import Occluder
from perturbations.trajectory import Trajectory, check_severity, static_affines

#: Occluder area as a fraction of the image area.
OCCLUSION_AREA = {1: 0.01, 2: 0.02, 3: 0.035, 4: 0.05, 5: 0.075, 6: 0.10}

#: Occluder speed per frame, as a fraction of the short side.
OCCLUSION_SPEED = {1: 0.004, 2: 0.008, 3: 0.012, 4: 0.016, 5: 0.020, 6: 0.025}


def occlusion(
    rng: np.random.Generator,
    severity: int,
    height: int,
    width: int,
    num_frames: int,
    focus: tuple[float, float] | None = None,
) -> Trajectory:
    """An ellipse of area ``OCCLUSION_AREA`` moving at ``OCCLUSION_SPEED`` through ``focus``.

    Convention: ``focus`` is ``(x, y)`` in pixel-centre coordinates; default the centre.
    """
    severity = check_severity(severity)
    fx, fy = focus if focus is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
    aspect = float(rng.uniform(0.5, 2.0))  # ax / ay
    area = OCCLUSION_AREA[severity] * height * width
    ay = math.sqrt(area / (math.pi * aspect))
    ax = aspect * ay
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    speed = OCCLUSION_SPEED[severity] * min(height, width)
    vx, vy = speed * math.cos(angle), speed * math.sin(angle)
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    middle = (num_frames - 1) / 2.0
    occluders = tuple(
        Occluder(fx + (k - middle) * vx, fy + (k - middle) * vy, ax, ay, color) for k in range(num_frames)
    )
    params = {
        "focus": [float(fx), float(fy)],
        "semi_axes": [ax, ay],
        "velocity": [vx, vy],
        "color": list(color),
    }
    return Trajectory("occlusion", severity, height, width, params, static_affines(num_frames), occluders)
