"""stabbench.predictors.resolver: ``--model`` strings: Python entries, and the ones that fail."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from stabbench.errors import ModelError, UsageError
from stabbench.predictors import load_predictor
from tests.helpers import OVERRIDES
from tests.helpers import run_model as run


def test_python_entries(frames, reference):
    labels, _, info = run("tests.fixtures_models:build", frames, overrides=OVERRIDES)
    assert info["format"] == "python-module" and info["input_processing"] and info["sha256"]
    np.testing.assert_array_equal(labels, reference)

    labels, _, info = run("tests.fixtures_models:build_predictor", frames)
    assert info["format"] == "python" and not info["input_processing"]
    np.testing.assert_array_equal(labels, np.repeat(np.repeat(frames[:, ::2, ::2, 0] > 127, 2, 1), 2, 2))


def test_bad_model_strings(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="not found"):
        load_predictor(str(tmp_path / "missing.onnx"))
    with pytest.raises(UsageError, match="builtin:NAME"):
        load_predictor("no such thing")
    with pytest.raises(ModelError, match="cannot import"):
        load_predictor("no_such_module_xyz:build")
    (tmp_path / "m.onnx").write_bytes(b"not onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    with pytest.raises(ModelError, match=r"stabbench\[onnx\]"):
        load_predictor(str(tmp_path / "m.onnx"))
