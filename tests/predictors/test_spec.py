"""stabbench.predictors.spec: the preprocessing spec (file beside the model, CLI overrides,
sources) and how frames are prepared from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stabbench.errors import ModelError, UsageError
from stabbench.predictors import ModelSpec, load_predictor, prepare_frames, spec_file_for
from tests import fixtures_models as fm
from tests.helpers import run_model as run

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


def test_spec_file_beside_model_and_cli_override(tmp_path, frames):
    torch.jit.save(torch.jit.script(fm.TinyNet().eval()), tmp_path / "net.pt")
    spec_file = spec_file_for(tmp_path / "net.pt")
    assert spec_file.name == "net.stabbench.json"
    spec_file.write_text(json.dumps({"_comment": "x", "input_size": [12, 16], "mean": [0.5, 0.5, 0.5], "num_classes": 3}))
    info = load_predictor(str(tmp_path / "net.pt"), overrides={"mean": "0.1", "channels": "bgr", "std": None}).info
    spec = info["preprocess"]
    assert spec["input_size"] == [12, 16] and spec["mean"] == [0.1, 0.1, 0.1] and spec["channels"] == "bgr"
    assert spec["std"] == [1.0, 1.0, 1.0] and info["preprocess_file"] == str(spec_file)
    src = info["preprocess_sources"]
    assert (src["input_size"], src["mean"], src["channels"], src["std"]) == (str(spec_file), "cli", "cli", "default")
    assert ModelSpec.from_dict(spec).to_dict() == spec  # round trip for the results
    labels, _, _ = run(str(tmp_path / "net.pt"), frames)  # 12x16 model input, labels back at 24x32
    assert labels.shape == (5, 24, 32)

    with pytest.raises(UsageError, match="activation"):
        load_predictor(str(tmp_path / "net.pt"), overrides={"activation": "relu"})
    spec_file.write_text(json.dumps({"colour": "rgb"}))
    with pytest.raises(ModelError, match="unknown setting 'colour'"):
        load_predictor(str(tmp_path / "net.pt"))


def test_prepare_frames_conventions():
    f = np.zeros((1, 2, 4, 3), np.uint8)
    f[..., 0] = 255  # pure red
    spec = ModelSpec(channels="bgr", layout="nhwc", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=(4, 8))
    x = prepare_frames(f, spec)
    assert x.shape == (1, 4, 8, 3) and np.allclose(x[..., 2], 1.0) and np.allclose(x[..., 0], -1.0)
    assert prepare_frames(f, ModelSpec(input_size=(4, 8), resize="none")).shape == (1, 3, 2, 4)
