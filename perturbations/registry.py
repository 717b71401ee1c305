"""One registry mapping perturbation names to their trajectory functions.

Every function has the signature ``fn(rng, severity, height, width, num_frames) ->
Trajectory`` and draws all its randomness from the explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from perturbations.geometric import rotation, scaling, translation
from perturbations.noise import gaussian_noise
from perturbations.occlusion import occlusion
from perturbations.trajectory import Trajectory

PERTURBATIONS = {
    "translation": translation,
    "rotation": rotation,
    "scaling": scaling,
    "occlusion": occlusion,
    "gaussian_noise": gaussian_noise,
}

#: Tags select subsets by meaning (not by position in a tuple).
TAGS = {
    "geometric": ("translation", "rotation", "scaling"),
    "motion": ("translation", "rotation", "scaling", "occlusion"),
    "corruption": ("gaussian_noise",),
}

PERTURBATION_NAMES = tuple(PERTURBATIONS)


def check_name(name: str) -> str:
    """Validate a perturbation name; raises ``ValueError`` naming the choices."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; choose one of {', '.join(PERTURBATION_NAMES)}")
    return name


def make_trajectory(
    name: str,
    severity: int,
    rng: np.random.Generator,
    height: int,
    width: int,
    num_frames: int = 11,
    focus: tuple[float, float] | None = None,
) -> Trajectory:
    """Draw the trajectory of perturbation ``name`` at ``severity`` for a ``(H, W)`` source.

    ``focus`` (``(x, y)``, pixel centres) is where an occluder passes; other types ignore it.
    """
    fn = PERTURBATIONS[check_name(name)]
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if name == "occlusion":
        return fn(rng, severity, height, width, num_frames, focus=focus)
    return fn(rng, severity, height, width, num_frames)
