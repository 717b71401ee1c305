"""perturbations.noise: the rounded Gaussian draws and the noise ladder of ``gaussian_noise``."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

import perturbations as P
from perturbations.noise import GAUSSIAN_NOISE_STEP, rounded_gaussian, uniform16
from tests.helpers import rounded_std

H, W = 120, 160
MINUTE = rounded_std(P.MINUTE_NOISE_STD)  # about 1.04 (rounding adds ~1/12 of variance)


def test_noise_std_grows_with_severity_and_frames() -> None:
    """On a flat mid-gray image, frame k - source has std sqrt(k s_step^2 + s_minute^2)."""
    image = np.full((H, W, 3), 128, np.uint8)
    label = np.ones((H, W), np.uint8)
    previous = 0.0
    for sev in P.SEVERITIES:
        rng = np.random.default_rng(100 + sev)
        traj = P.make_trajectory("gaussian_noise", sev, rng, H, W, 11)
        assert traj.noise_step == GAUSSIAN_NOISE_STEP[sev]
        frames = [f for f, _ in P.render_sequence(image, label, traj, rng)]
        step = rounded_std(GAUSSIAN_NOISE_STEP[sev])
        for k in (1, 4, 10):
            diff = frames[k].astype(np.float64) - 128.0
            expected = math.sqrt(k * step**2 + MINUTE**2)
            assert diff.std() == pytest.approx(expected, rel=0.03), (sev, k)
            assert abs(diff.mean()) < 0.05 * expected
        std10 = float((frames[10].astype(np.float64) - 128).std())
        assert std10 > previous
        previous = std10
    assert previous == pytest.approx(41.1, rel=0.03)  # docs/protocol.md: std 41 at frame 10, severity 6


@pytest.mark.parametrize("std", [1.0, 2.0, 3.5, 5.0, 13.0, 41.0])
def test_rounded_gaussian_statistics(std: float) -> None:
    rng = np.random.default_rng(int(std * 10))
    draw = rounded_gaussian(rng, (400_000,), std)
    assert draw.dtype == np.int16 and draw.shape == (400_000,)
    values = draw.astype(np.float64)
    exact = rounded_std(std)
    assert abs(values.mean()) < 4 * exact / math.sqrt(values.size)
    assert values.std() == pytest.approx(exact, rel=0.01)
    if std >= 2.0:
        assert values.std() == pytest.approx(std, rel=0.03)
    else:
        # round(N(0, 1)) has std 1.04: rounding adds ~1/12 of variance (Sheppard)
        assert values.std() == pytest.approx(std, rel=0.05)
    # the distribution, not only its moments: probabilities of -2..2 std
    cdf = NormalDist(0.0, std).cdf
    for k in sorted({0, 1, int(std), int(2 * std)}):
        expected = cdf(k + 0.5) - cdf(k - 0.5)
        assert (draw == k).mean() == pytest.approx(expected, abs=0.004)
        assert (draw == -k).mean() == pytest.approx(expected, abs=0.004)
    assert np.abs(values).max() <= math.ceil(4.5 * std)  # table truncated at ~4.3 std


def test_rounded_gaussian_zero_and_determinism() -> None:
    z = rounded_gaussian(np.random.default_rng(0), (3, 4), 0.0)
    assert z.dtype == np.int16 and not z.any()
    a = rounded_gaussian(np.random.default_rng(5), (50, 3), 7.0)
    b = rounded_gaussian(np.random.default_rng(5), (50, 3), 7.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 3)


def _same_state(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    return bool(np.array_equal(a, b))


def _generator(seed: int, bit_generator=np.random.PCG64) -> np.random.Generator:
    return np.random.Generator(bit_generator(seed))


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_uniform16_is_numpys_integers_bit_for_bit(bit_generator) -> None:
    """The fast draw gives NumPy's values and leaves the generator where NumPy would, for every
    parity of the count and of the buffered 32-bit half, over a chain of calls."""
    shapes = [(0,), (1,), (2,), (3,), (4,), (5,), (7, 3), (2, 2, 2), (480, 854, 3), (9, 11), (1,), (6,)]
    for seed, buffered in itertools.product(range(3), (False, True)):
        fast, slow = _generator(seed, bit_generator), _generator(seed, bit_generator)
        if buffered:  # leave one 32-bit half in PCG64's buffer
            fast.integers(0, 1 << 32, dtype=np.uint32)
            slow.integers(0, 1 << 32, dtype=np.uint32)
        for shape in shapes:
            got = uniform16(fast, shape)
            want = slow.integers(0, 1 << 16, size=shape, dtype=np.uint16)
            assert got.dtype == np.uint16 and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=str((seed, buffered, shape)))
            assert _same_state(fast.bit_generator.state, slow.bit_generator.state), (seed, buffered, shape)
        # and the streams go on identically through other kinds of draws
        np.testing.assert_array_equal(fast.integers(0, 1000, 17), slow.integers(0, 1000, 17))
        np.testing.assert_array_equal(fast.random(5), slow.random(5))
