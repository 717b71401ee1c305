"""stabbench.predictors.resolver: ``--model`` strings: Python entries, and the ones that fail; a
model's identity (fingerprint and default name) is what it computes."""

from __future__ import annotations

import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

from stabbench.errors import ModelError, UsageError
from stabbench.predictors import load_predictor
from tests.helpers import OVERRIDES, sha256
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


# ----------------------------------------------------------------------------- identity: what a model computes

TWO_FACTORIES = '''
import torch
from torch import nn


def small():
    torch.manual_seed(0)
    return nn.Conv2d(3, 2, 1)


def large():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
'''


@pytest.fixture()
def zoo(tmp_path, monkeypatch) -> str:
    """A module ``identity_zoo`` with two factories, and a byte-identical copy ``identity_zoo_copy``."""
    for name in ("identity_zoo", "identity_zoo_copy"):
        (tmp_path / f"{name}.py").write_text(TWO_FACTORIES)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "identity_zoo"


def info(model: str, **kw) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an architecture without weights warns
        return load_predictor(model, **kw).info


def test_two_factories_of_one_module_are_two_models(zoo):
    small, large, again = info(f"{zoo}:small"), info(f"{zoo}:large"), info(f"{zoo}:small")
    assert small["sha256"] == large["sha256"]  # one module file ...
    assert small["fingerprint"] != large["fingerprint"] and small["name"] != large["name"]  # ... two models
    assert (again["fingerprint"], again["name"]) == (small["fingerprint"], small["name"]) == (
        small["fingerprint"], f"{zoo}:small")
    assert info(f"{zoo}_copy:small")["fingerprint"] == small["fingerprint"]  # the same code and factory
    assert len(small["fingerprint"]) == 64 and small["fingerprint"] != small["sha256"]


def test_builtin_options_are_part_of_the_identity():
    low, high = info("builtin:flicker,rate=0.1"), info("builtin:flicker,rate=0.2")
    assert low["fingerprint"] != high["fingerprint"] and low["name"] != high["name"]
    spelled = info("builtin:flicker?band=15&rate=0.1&seed=0")  # the defaults, spelled out
    assert (spelled["fingerprint"], spelled["name"]) == (low["fingerprint"], low["name"])
    assert info("builtin:oracle")["fingerprint"] != info("builtin:constant")["fingerprint"]


def test_arch_options_and_weights_are_part_of_the_identity(tmp_path):
    from stabbench.models import build_model

    torch.manual_seed(1)
    state = build_model("tiny_unet", 2, base=8).state_dict()
    torch.save(state, tmp_path / "a.pt")
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "b.pt")
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(tmp_path / "a.pt", tmp_path / "elsewhere" / "a.pt")
    arch = "arch:tiny_unet,base=8,num_classes=2"
    fresh, wider = info(arch), info("arch:tiny_unet,base=16,num_classes=2")
    a, b = info(arch, weights=tmp_path / "a.pt"), info(arch, weights=tmp_path / "b.pt")
    moved = info(arch, weights=tmp_path / "elsewhere" / "a.pt")
    assert len({fresh["fingerprint"], wider["fingerprint"], a["fingerprint"], b["fingerprint"]}) == 4
    assert len({fresh["name"], wider["name"], a["name"], b["name"]}) == 4
    assert a["id"] == b["id"] == fresh["id"] == fresh["name"]  # the id is --model; the name adds the weights
    assert a["name"] == f"{a['id']}+weights=a.pt@{a['weights_sha256'][:8]}"
    assert (moved["fingerprint"], moved["name"]) == (a["fingerprint"], a["name"])  # the same weights elsewhere


@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
def test_the_same_model_file_under_two_paths_is_one_model(tmp_path):
    from tests import fixtures_models as fm

    net = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(fm.TinyNet().eval()), str(net))
    (tmp_path / "copy").mkdir()
    shutil.copy(net, tmp_path / "copy" / "renamed.pt")
    first, second = info(str(net)), info(str(tmp_path / "copy" / "renamed.pt"))
    assert first["id"] != second["id"]
    assert first["fingerprint"] == second["fingerprint"] == sha256(net)  # a bare file: its bytes
    torch.save(fm.TinyNet(seed=1).state_dict(), tmp_path / "w.pt")
    assert info(str(net), weights=tmp_path / "w.pt")["fingerprint"] != first["fingerprint"]
