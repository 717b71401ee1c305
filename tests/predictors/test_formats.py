"""stabbench.predictors.formats: every model file format (TorchScript, torch.export, ONNX,
pickled modules, state dicts) gives the hand-computed reference labels; pickle safety."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from stabbench.errors import EXIT_BAD_MODEL, ModelError
from stabbench.predictors import UnsafeLoadWarning, load_predictor
from tests import fixtures_models as fm
from tests.helpers import OVERRIDES
from tests.helpers import run_model as run

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


def test_torchscript_script_and_trace_match_reference(tmp_path, frames, reference):
    net = fm.TinyNet().eval()
    torch.jit.save(torch.jit.script(net), tmp_path / "scripted.pt")
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 24, 32)), tmp_path / "traced.ts")
    for name in ("scripted.pt", "traced.ts"):
        labels, issues, info = run(str(tmp_path / name), frames, overrides=OVERRIDES)
        assert info["format"] == "torchscript" and len(info["sha256"]) == 64
        np.testing.assert_array_equal(labels, reference)
        assert issues == []


def test_torch_export_matches_reference_and_reads_static_shape(tmp_path, frames, reference):
    from torch.export import Dim

    net = fm.TinyNet().eval()
    dynamic = torch.export.export(net, (torch.rand(2, 3, 24, 32),), dynamic_shapes={"x": {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}})
    torch.export.save(dynamic, tmp_path / "dynamic.pt2")
    labels, _, info = run(str(tmp_path / "dynamic.pt2"), frames, overrides=OVERRIDES)
    assert info["format"] == "torch-export" and info["preprocess"]["input_size"] is None
    np.testing.assert_array_equal(labels, reference)

    # static (1, 3, 24, 32): input size read from the program, batches of 1 fed internally
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 24, 32),)), tmp_path / "static.pt2")
    labels, _, info = run(str(tmp_path / "static.pt2"), frames, overrides=OVERRIDES)
    assert info["preprocess"]["input_size"] == [24, 32] and info["preprocess_sources"]["input_size"] == "model"
    np.testing.assert_array_equal(labels, reference)


def test_torch_export_with_pickled_payload_refused(tmp_path):
    """torch.export.load would unpickle sample inputs that fail weights_only: refused by default."""
    import io
    import zipfile

    torch.export.save(torch.export.export(fm.TinyNet().eval(), (torch.rand(1, 3, 8, 8),)), tmp_path / "ok.pt2")
    payload = io.BytesIO()
    torch.save((fm.ThresholdPredictor(),), payload)  # an arbitrary Python object
    with zipfile.ZipFile(tmp_path / "ok.pt2") as src, zipfile.ZipFile(tmp_path / "bad.pt2", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, payload.getvalue() if "/data/sample_inputs/" in item.filename else data)
    load_predictor(str(tmp_path / "ok.pt2"))
    with pytest.raises(ModelError, match=r"data/sample_inputs/model.pt \(pickled object\).*--trust-model"):
        load_predictor(str(tmp_path / "bad.pt2"))


def test_onnx_matches_reference(tmp_path, frames, reference):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra stabbench[onnx])")
    pytest.importorskip("onnx", reason="onnx not installed (torch.onnx.export needs it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated; dynamo needs onnxscript
        torch.onnx.export(
            fm.TinyNet().eval(), (torch.rand(1, 3, 24, 32),), str(tmp_path / "net.onnx"), dynamo=False,
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
        )
        torch.onnx.export(fm.TinyNet().eval(), (torch.rand(1, 3, 24, 32),), str(tmp_path / "static.onnx"), dynamo=False)
    labels, _, info = run(str(tmp_path / "net.onnx"), frames, overrides=OVERRIDES)
    assert info["format"] == "onnx" and info["preprocess"]["layout"] == "nchw" and info["runtime"]["onnxruntime"]
    assert info["preprocess"]["input_size"] is None
    np.testing.assert_array_equal(labels, reference)
    labels, _, info = run(str(tmp_path / "static.onnx"), frames, overrides=OVERRIDES)  # batch 1, fed 1 by 1
    assert info["preprocess"]["input_size"] == [24, 32] and info["preprocess_sources"]["input_size"] == "model"
    np.testing.assert_array_equal(labels, reference)


def test_pickled_module_refused_by_default_and_loaded_with_flag(tmp_path, frames, reference):
    path = tmp_path / "whole.pt"
    torch.save(fm.TinyNet(), path)
    with pytest.raises(ModelError, match="--trust-model") as err:
        load_predictor(str(path))
    assert err.value.exit_code == EXIT_BAD_MODEL == 5
    with pytest.warns(UnsafeLoadWarning, match="arbitrary|runs any code"):
        labels, _, info = run(str(path), frames, overrides=OVERRIDES, allow_pickle=True)
    assert info["format"] == "torch-pickle" and info["allow_pickle"] is True
    np.testing.assert_array_equal(labels, reference)


def test_state_dict_refused_with_explanation(tmp_path):
    torch.save(fm.TinyNet().state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ModelError, match="state dict.*package.module:factory"):
        load_predictor(str(tmp_path / "weights.pth"), allow_pickle=True)
