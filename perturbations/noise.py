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

import math
import sys
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
    """Integer noise ``round(N(0, std^2))`` of ``shape``, as int16, drawn from ``rng``.

    The draw is the table entry at ``rng.integers(0, 2**16, size=shape, dtype=np.uint16)``
    (see :func:`uniform16` for how those integers are drawn faster, bit for bit the same).
    """
    if std <= 0:
        return np.zeros(shape, np.int16)
    return np.take(_rounded_gaussian_table(float(std)), uniform16(rng, shape))


def uniform16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``rng.integers(0, 2**16, size=shape, dtype=np.uint16)``: the same values and the same
    generator state afterwards, about twice as fast for a PCG64 generator.

    NumPy draws such integers 16 bits at a time from the generator's 32-bit stream (low half
    first, a leftover half discarded at the end of the call), and PCG64's 32-bit stream is
    its 64-bit outputs split low half first, with one half buffered across calls
    (``has_uint32``/``uinteger`` in its state). On a little-endian machine the 64-bit
    outputs (``random_raw``) viewed as uint16 are therefore that very stream; the buffered
    half is taken first and a new leftover half is buffered as NumPy would. Other bit
    generators and big-endian machines take ``rng.integers`` itself.
    """
    count = math.prod(shape)
    bit_generator = rng.bit_generator
    if type(bit_generator) is not np.random.PCG64 or sys.byteorder != "little" or count == 0:
        return rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    words32 = (count + 1) // 2
    state = bit_generator.state
    head = None
    if state["has_uint32"]:
        head = np.array([state["uinteger"]], np.uint32)
        words32 -= 1
        bit_generator.state = {**state, "has_uint32": 0}  # NumPy leaves the used half in `uinteger`
    words = bit_generator.random_raw((words32 + 1) // 2).view(np.uint32)
    if words.size:  # as NumPy: the high half of the last output is kept, buffered if unused
        bit_generator.state = {**bit_generator.state, "has_uint32": words32 % 2, "uinteger": int(words[-1])}
        words = words[:words32]
    if head is not None:
        words = np.concatenate([head, words])
    return words.view(np.uint16)[:count].reshape(shape)
