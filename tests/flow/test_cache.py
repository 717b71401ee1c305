"""stabbench.flow.cache: hits return identical arrays, any change of input or parameter is a
miss, corrupt files are recomputed, the file format round-trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stabbench.flow import FlowCache, FlowParams, PairFlow, bidirectional_flow, cache_key
from stabbench.flow import cache as cache_mod
from tests.helpers import shifted, texture


@pytest.fixture
def pair():
    a = texture(48, 64, 5)
    return a, shifted(a, 1.5, -0.5)


def test_cache_hit_returns_identical_arrays(tmp_path, pair):
    cache = FlowCache(tmp_path / "c")
    first = cache.get_or_compute(*pair, FlowParams("fast"))
    assert (cache.hits, cache.misses) == (0, 1)
    second = cache.get_or_compute(*pair, FlowParams("fast"))
    assert (cache.hits, cache.misses) == (1, 1) and cache.hit_rate == 0.5
    for x, y in zip(first, second):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    assert isinstance(second, PairFlow) and second.flow_fw.dtype == np.float32 and second.valid_fw.dtype == bool
    # the stored flow is the computed one to 1/64 px; the masks are exactly the computed ones
    direct = bidirectional_flow(*pair, FlowParams("fast"))
    assert np.abs(second.flow_fw - direct.flow_fw).max() <= 1 / 64 + 1e-6
    assert np.abs(second.flow_bw - direct.flow_bw).max() <= 1 / 64 + 1e-6
    assert np.array_equal(second.valid_fw, direct.valid_fw) and np.array_equal(second.valid_bw, direct.valid_bw)
    files = list((tmp_path / "c").rglob("*.flow"))
    assert len(files) == 1 and files[0].stat().st_size < 48 * 64 * 2 * 2 * 4
    assert not list((tmp_path / "c").rglob("*.tmp"))
    # a new cache object on the same folder (another process, another epoch) hits too
    other = FlowCache(tmp_path / "c")
    other.get_or_compute(*pair, FlowParams("fast"))
    assert other.stats() == {"hits": 1, "misses": 0, "corrupt": 0, "hit_rate": 1.0}


def test_cache_misses_on_a_changed_pixel_or_param(tmp_path, pair):
    cache = FlowCache(tmp_path)
    a, b = pair
    cache.get_or_compute(a, b, FlowParams("fast"))
    b2 = b.copy()
    b2[10, 20, 1] ^= 1
    cache.get_or_compute(a, b2, FlowParams("fast"))
    cache.get_or_compute(a, b, FlowParams("fast", alpha=0.02))
    cache.get_or_compute(a, b, FlowParams("fast", beta_fb=0.4))
    cache.get_or_compute(a, b, FlowParams("medium"))
    cache.get_or_compute(a, b, FlowParams("fast", max_side=32))
    cache.get_or_compute(b, a, FlowParams("fast"))  # the order of the frames matters
    assert (cache.hits, cache.misses) == (0, 7)
    assert len(list(tmp_path.rglob("*.flow"))) == 7
    cache.get_or_compute(a, b2, FlowParams("fast"))
    assert cache.hits == 1
    # the key covers shape and dtype, not just the bytes
    assert cache_key(a, b, FlowParams()) != cache_key(a.reshape(64, 48, 3), b, FlowParams())


def test_cache_recomputes_a_corrupt_file(tmp_path, pair):
    cache = FlowCache(tmp_path)
    good = cache.get_or_compute(*pair)
    path = cache.path(cache_key(*pair, FlowParams()))
    data = path.read_bytes()
    for bad in (b"", data[: len(data) // 2], b"garbage" * 10, data[:-10] + b"0123456789", data[:20] + b"x" + data[21:]):
        path.write_bytes(bad)
        before = cache.misses
        with pytest.warns(RuntimeWarning, match="recomputing"):
            again = cache.get_or_compute(*pair)
        assert cache.misses == before + 1
        for x, y in zip(good, again):
            assert np.array_equal(x, y)
        assert path.read_bytes() == data  # overwritten with a good file
    assert cache.corrupt == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get_or_compute(*pair)  # hit, no warning
    assert cache.hits == 1


def test_cache_file_round_trip_large_flow_uses_float32():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 1, (5, 7, 2)).astype(np.float32)
    flow[1, 2, 0] = 5000.25  # beyond the int16 fixed-point range
    valid = rng.random((5, 7)) < 0.5
    pf = PairFlow(flow, valid, -flow, ~valid)
    back = cache_mod.decode(cache_mod.encode("k", pf), "k", (5, 7))
    for x, y in zip(pf, back):
        assert np.array_equal(x, y)
    small = PairFlow(flow.clip(-100, 100), valid, flow.clip(-3, 3), valid)
    back = cache_mod.decode(cache_mod.encode("k", small), "k", (5, 7))
    assert np.abs(back.flow_fw - small.flow_fw).max() <= 1 / 64
    with pytest.raises(ValueError):
        cache_mod.decode(cache_mod.encode("k", small), "other", (5, 7))
    with pytest.raises(ValueError):
        cache_mod.decode(cache_mod.encode("k", small), "k", (7, 5))
