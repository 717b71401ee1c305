"""The description of a synthetic sequence: everything needed to render it and its truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perturbations.geometry import Occluder

#: Version of the generation protocol (ladders, rendering, validity rules). Any change to
#: any of them changes this string; every output records it.
PROTOCOL_VERSION = "v2"

#: Standard deviation (8-bit intensity units) of the independent "minute" Gaussian noise
#: added to every frame after the first (method.md, section 2).
MINUTE_NOISE_STD = 1.0

SEVERITIES = (1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Trajectory:
    """A perturbation sequence of ``num_frames`` frames of a ``(height, width)`` source.

    Attributes:
        name, severity: the perturbation and its severity (1..6).
        params: JSON-serialisable parameters drawn for this sequence (direction, ...).
        affines: ``(N, 2, 3)`` float64; ``affines[k]`` maps source pixel coordinates to
            frame ``k`` (see :mod:`perturbations.geometry` for the convention);
            ``affines[0]`` is the identity.
        occluders: length-``N`` tuple, an :class:`Occluder` or ``None`` per frame.
        noise_step: std (8-bit units) of the Gaussian noise added *cumulatively* at each
            step (frame ``k`` carries the sum of ``k`` independent draws); 0 for none.
    """

    name: str
    severity: int
    height: int
    width: int
    params: dict
    affines: np.ndarray
    occluders: tuple = field(default=())
    noise_step: float = 0.0

    @property
    def num_frames(self) -> int:
        return int(self.affines.shape[0])

    def occluder(self, k: int) -> Occluder | None:
        return self.occluders[k] if self.occluders else None

    def to_dict(self) -> dict:
        return {
            "perturbation": self.name,
            "severity": self.severity,
            "height": self.height,
            "width": self.width,
            "params": self.params,
            "affines": np.round(self.affines, 12).tolist(),
            "occluders": [None if o is None else o.to_dict() for o in self.occluders],
            "noise_step": self.noise_step,
        }

    @staticmethod
    def from_dict(data: dict) -> Trajectory:
        return Trajectory(
            name=data["perturbation"],
            severity=int(data["severity"]),
            height=int(data["height"]),
            width=int(data["width"]),
            params=dict(data["params"]),
            affines=np.asarray(data["affines"], dtype=np.float64),
            occluders=tuple(None if o is None else Occluder.from_dict(o) for o in data["occluders"]),
            noise_step=float(data["noise_step"]),
        )


def check_severity(severity: int) -> int:
    """Validate a severity (1..6); raises ``ValueError`` naming the choices."""
    try:
        ok = int(severity) == severity and severity in SEVERITIES
    except (TypeError, ValueError):  # None, "high", ...: still a ValueError naming the choices
        ok = False
    if not ok:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return int(severity)


def static_affines(num_frames: int) -> np.ndarray:
    """``(N, 2, 3)`` identity affines (no motion)."""
    return np.repeat(np.eye(2, 3, dtype=np.float64)[None], num_frames, axis=0)
