"""Perturbations with exactly known motion, for synthetic video (NumPy only).

    >>> import numpy as np, perturbations as P
    >>> rng = np.random.default_rng(0)
    >>> traj = P.make_trajectory("rotation", 3, rng, height=480, width=854, num_frames=11)
    >>> flow, valid = P.pair_correspondence(traj, 0)          # (H, W, 2), (H, W)
    >>> frames = list(P.render_sequence(image, label, traj, rng))  # doctest: +SKIP

Conventions are in :mod:`perturbations.geometry`; ladders in each module and in
``docs/protocol.md``.
"""

from perturbations.correspondence import pair_correspondence
from perturbations.geometry import VALIDITY_MARGIN, Occluder
from perturbations.registry import PERTURBATION_NAMES, PERTURBATIONS, TAGS, check_name, make_trajectory
from perturbations.render import render_sequence, warp_image, warp_label
from perturbations.trajectory import MINUTE_NOISE_STD, PROTOCOL_VERSION, SEVERITIES, Trajectory

__all__ = [
    "MINUTE_NOISE_STD",
    "Occluder",
    "PERTURBATIONS",
    "PERTURBATION_NAMES",
    "PROTOCOL_VERSION",
    "SEVERITIES",
    "TAGS",
    "Trajectory",
    "VALIDITY_MARGIN",
    "check_name",
    "make_trajectory",
    "pair_correspondence",
    "render_sequence",
    "warp_image",
    "warp_label",
]
