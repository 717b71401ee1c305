"""Fixtures shared by the whole suite: the real DAVIS sample (or a skip), the small synthetic
``shapes`` sets several modules read, and the settings of the property tests.

Layout: ``tests/<subpackage>/test_<module>.py`` mirrors ``stabbench/<subpackage>/<module>.py``
(and ``perturbations/<module>.py``); the top-level stabbench modules are under ``tests/core``;
end-to-end CLI tests are in ``tests/cli/test_<command module>.py``. Helpers shared by the
test modules (the ``cli`` runner among them) are in ``tests/helpers.py``; the tiny models
loaded as Python entries (``tests.fixtures_models:build``) in ``tests/fixtures_models.py``.
Tests that run for more than a few seconds are marked ``slow`` (``-m 'not slow'`` skips them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.helpers import DAVIS_SAMPLE, cli, ok

# evaluations in the suite run in-process unless a test asks for workers (starting worker
# processes for every small eval would only slow the suite; tests/evaluation/test_parallel.py
# covers them)
os.environ.setdefault("STABBENCH_WORKERS", "0")

# property tests: reproducible (no random seed, no example database)
settings.register_profile("stabbench", database=None, derandomize=True, deadline=None, max_examples=60)
settings.load_profile("stabbench")
# Hypothesis caches the constants it reads in the code under test (from collection on): in the
# system's temporary folder, not in a ``.hypothesis`` folder of the checkout
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "stabbench-hypothesis")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny tensors everywhere: one torch thread is faster and much steadier on a shared
    machine than several (a gradcheck of many small ops runs ~10x slower with 2 threads
    spinning against another process)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def davis_sample() -> Path:
    """The real DAVIS-2016 sample (``../shared/data/davis-sample``); skips the test when absent."""
    if not DAVIS_SAMPLE.is_dir():
        pytest.skip(f"real DAVIS sample not found at {DAVIS_SAMPLE}")
    return DAVIS_SAMPLE


@pytest.fixture(scope="session")
def shapes_set(tmp_path_factory) -> Path:
    """``stabbench synth`` of 1 generated 320x240 image, seed 0, paper protocol: 6 sequences of
    11 frames, 3 classes. Read only: copy it before changing anything."""
    out = tmp_path_factory.mktemp("shapes-set") / "set"
    ok(cli("synth", "-q", "--dataset", "shapes", "--num-images", "1", "--seed", "0", "--out", out))
    return out


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> Path:
    """``stabbench synth`` of 1 generated image, seed 3: 6 sequences of 4 frames. Read only."""
    out = tmp_path_factory.mktemp("small-set") / "set"
    ok(cli("synth", "-q", "--dataset", "shapes", "--num-images", "1", "--frames", "4", "--seed", "3", "--out", out))
    return out
