"""Gaussian noise: a static image with noise that accumulates frame after frame.

"Each next frame is the previous one perturbed again": frame ``k`` carries the sum of
``k`` independent draws of std ``GAUSSIAN_NOISE_STEP`` (a random walk, std
``step * sqrt(k)``), rendered from the source in one go, so noise never compounds with
resampling. Values are in 8-bit intensity units.

All noise is drawn as integers: frames are integers, so ``round(v + n) == v + round(n)``
and adding a *rounded* Gaussian is what adding a Gaussian and quantising to 8 bits gives.
It is drawn by table look-up from 16-bit uniform integers (about 4x faster than
``standard_normal``; see :func:`rounded_gaussian`).
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

from perturbations.trajectory import Trajectory, check_severity, static_affines

#: Resolution of the inverse-CDF table used to draw rounded Gaussian noise (16 bits: the
#: draw is exact up to probabilities of 2**-16 and truncated at about 4.3 std).
_TABLE_BITS = 16

#: Noise std added per frame (8-bit units); after 10 frames the std is 3.16x this
#: (severity 6: 41, comparable to ImageNet-C gaussian_noise severity 3).
GAUSSIAN_NOISE_STEP = {1: 2.0, 2: 3.5, 3: 5.0, 4: 7.0, 5: 10.0, 6: 13.0}


def gaussian_noise(rng: np.random.Generator, severity: int, height: int, width: int, num_frames: int) -> Trajectory:
    """A static sequence whose noise std grows as ``step * sqrt(k)``; ``rng`` is unused here
    (the noise itself is drawn while rendering) but kept for a uniform signature."""
    severity = check_severity(severity)
    step = GAUSSIAN_NOISE_STEP[severity]
    params = {"noise_step": step}
    return Trajectory("gaussian_noise", severity, height, width, params, static_affines(num_frames), (), step)


@lru_cache(maxsize=32)
def _rounded_gaussian_table(std: float) -> np.ndarray:
    """``(2**16,)`` int16: entry ``u`` is ``round(std * Phi^-1((u + 0.5) / 2**16))``."""
    size = 1 << _TABLE_BITS
    inv_cdf = NormalDist(0.0, std).inv_cdf
    table = np.array([round(inv_cdf((u + 0.5) / size)) for u in range(size)], dtype=np.int16)
    table.flags.writeable = False
    return table


def rounded_gaussian(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Integer noise ``round(N(0, std^2))`` of ``shape``, as int16, drawn from ``rng``."""
    if std <= 0:
        return np.zeros(shape, np.int16)
    uniform = rng.integers(0, 1 << _TABLE_BITS, size=shape, dtype=np.uint16)
    return _rounded_gaussian_table(float(std))[uniform]
