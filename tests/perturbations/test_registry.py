"""perturbations.registry: the perturbation names, tags, severities and protocol version,
choices named in errors, and the generator that ``make_trajectory`` draws from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import perturbations as P

H, W = 120, 160
NAMES = P.PERTURBATION_NAMES


def test_registry_contents() -> None:
    assert P.PERTURBATION_NAMES == ("translation", "rotation", "scaling", "occlusion", "gaussian_noise")
    assert set(P.PERTURBATIONS) == set(P.PERTURBATION_NAMES)
    assert all(callable(fn) for fn in P.PERTURBATIONS.values())
    assert P.TAGS["geometric"] == ("translation", "rotation", "scaling")
    assert P.TAGS["corruption"] == ("gaussian_noise",)
    assert set(P.TAGS["motion"]) == {"translation", "rotation", "scaling", "occlusion"}
    for names in P.TAGS.values():
        assert set(names) <= set(P.PERTURBATION_NAMES)
    assert P.SEVERITIES == (1, 2, 3, 4, 5, 6)
    assert P.PROTOCOL_VERSION == "v2"
    for name in NAMES:
        assert P.check_name(name) == name


@pytest.mark.parametrize("bad", ["blur", "Rotation", "", "translation "])
def test_bad_name_names_the_choices(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        P.make_trajectory(bad, 1, np.random.default_rng(0), H, W)
    message = str(info.value)
    assert repr(bad) in message
    for name in NAMES:
        assert name in message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0, 7, -1, 2.5, "3", "high", None])
def test_bad_severity_names_the_choices(name: str, bad) -> None:
    with pytest.raises(ValueError) as info:
        P.make_trajectory(name, bad, np.random.default_rng(0), H, W)
    assert "(1, 2, 3, 4, 5, 6)" in str(info.value) and repr(bad) in str(info.value)


def test_bad_num_frames() -> None:
    with pytest.raises(ValueError, match="num_frames"):
        P.make_trajectory("rotation", 1, np.random.default_rng(0), H, W, num_frames=1)


# ----------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", ["translation", "occlusion"])
def test_different_seeds_draw_different_params(name: str) -> None:
    keys = {json.dumps(P.make_trajectory(name, 3, np.random.default_rng(s), H, W).params) for s in range(10)}
    assert len(keys) == 10


def test_coin_flips_take_both_values() -> None:
    signs = {np.sign(P.make_trajectory("rotation", 2, np.random.default_rng(s), H, W).params["step_deg"]) for s in range(20)}
    assert signs == {-1.0, 1.0}
    zooms = {P.make_trajectory("scaling", 2, np.random.default_rng(s), H, W).params["zoom_in"] for s in range(20)}
    assert zooms == {True, False}
    angles = [P.make_trajectory("translation", 2, np.random.default_rng(s), H, W).params["angle_rad"] for s in range(200)]
    assert 0 <= min(angles) < 0.3 and 2 * math.pi - 0.3 < max(angles) < 2 * math.pi


def test_rng_advances_between_draws() -> None:
    rng = np.random.default_rng(0)
    a = P.make_trajectory("occlusion", 3, rng, H, W)
    b = P.make_trajectory("occlusion", 3, rng, H, W)
    assert a.params != b.params
