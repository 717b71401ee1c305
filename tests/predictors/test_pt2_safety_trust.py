"""Hostile torch.export archives: nothing in a .pt2 runs, evaluates or unpickles without --trust-model."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from stabbench.errors import ModelError
from stabbench.predictors import UnsafeLoadWarning, load_predictor
from stabbench.predictors.pt2_safety import is_guard, is_safe_target, is_shape_expression, unsafe_members


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x)[:, :, : x.shape[2] // 2 * 2]


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory) -> Path:
    """A real export with a dynamic batch and height: it has expr_str, guards and targets."""
    path = tmp_path_factory.mktemp("pt2") / "good.pt2"
    dims = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO}
    program = torch.export.export(Net().eval(), (torch.rand(2, 3, 10, 8),), dynamic_shapes=(dims,))
    torch.export.save(program, path)
    return path


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a .pt2, passing ``models/model.json`` (parsed) through ``change``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("models/model.json"):
                model = json.loads(data)
                change(model)
                data = json.dumps(model).encode()
            zout.writestr(item, data)
    return dst


def first_key(value, key):
    """The first object in a JSON value holding ``key``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if key in item:
                return item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise KeyError(key)


def test_a_real_export_is_plain_data_and_loads(good_pt2: Path) -> None:
    assert unsafe_members(good_pt2) == []
    model = json.loads(zipfile.ZipFile(good_pt2).read("good/models/model.json"))
    assert first_key(model, "expr_str") and model["guards_code"]  # the checks below have something to check
    loaded = load_predictor(str(good_pt2))
    assert loaded.info["format"] == "torch-export"


PAYLOAD = "__import__('pathlib').Path({marker!r}).touch()"


@pytest.mark.parametrize("where", ["expr_str", "guards_code", "target", "range_constraints"])
def test_hostile_json_is_refused_before_anything_runs(good_pt2: Path, tmp_path: Path, where: str) -> None:
    marker = tmp_path / "ran"
    code = PAYLOAD.format(marker=str(marker))

    def change(model):
        if where == "expr_str":
            first_key(model, "expr_str")["expr_str"] = code
        elif where == "guards_code":
            model["guards_code"].append(code)
        elif where == "target":
            node = first_key(model["graph_module"]["graph"], "target")
            node["target"] = "torch.hub.load"
        else:
            model["range_constraints"]["__import__('os')"] = {"min_val": 0, "max_val": None}

    bad = rewrite(good_pt2, tmp_path / "bad.pt2", change)
    with pytest.raises(ModelError, match=r"good/models/model\.json \(.*--trust-model") as err:
        load_predictor(str(bad))
    assert err.value.exit_code == 5 and not marker.exists()


def test_the_threat_is_real_and_the_opt_in_is_loud(good_pt2: Path, tmp_path: Path) -> None:
    """With --trust-model the same archive is loaded (with a warning): torch evaluates the string."""
    marker = tmp_path / "ran"
    bad = rewrite(good_pt2, tmp_path / "bad.pt2",
                  lambda m: first_key(m, "expr_str").__setitem__("expr_str", PAYLOAD.format(marker=str(marker))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.warns(UnsafeLoadWarning, match="can run code"):
            try:
                load_predictor(str(bad), allow_pickle=True)
            except ModelError:
                pass  # the load may fail after the code ran
    assert marker.exists()  # sympify evaluated it: the refusal above is what protects users


def test_member_names_and_kinds(good_pt2: Path, tmp_path: Path) -> None:
    def copy_with(extra_name: str, symlink: bool = False) -> Path:
        dst = tmp_path / f"x{abs(hash(extra_name))}.pt2"
        with zipfile.ZipFile(good_pt2) as zin, zipfile.ZipFile(dst, "w") as zout:
            for item in zin.infolist():
                zout.writestr(item, zin.read(item))
            info = zipfile.ZipInfo(extra_name)
            if symlink:
                info.external_attr = (0o120777 << 16)
            zout.writestr(info, b"x")
        return dst

    assert any("unexpected member name" in u for u in unsafe_members(copy_with("good/../../etc/passwd")))
    assert any("unexpected member name" in u for u in unsafe_members(copy_with("good/data/aotinductor/model.so")))
    assert any("not a plain file" in u for u in unsafe_members(copy_with("good/extra/link", symlink=True)))
    assert any("top folders" in u for u in unsafe_members(copy_with("other/archive_format")))


@pytest.mark.parametrize("text", [
    "Symbol('s0', positive=True, integer=True)",
    "Add(FloorDiv(Add(Symbol('s53', positive=True, integer=True), Integer(-1)), Integer(2)), Integer(1))",
    "2*s0 + 1", "Max(s0, 2)", "Eq(Mod(s1, 2), 0)",
])
def test_shape_grammar_accepts_shape_arithmetic(text: str) -> None:
    assert is_shape_expression(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('id')", "Symbol.__init__", "open('/etc/passwd')", "(lambda: 1)()", "s0.__class__",
    "Symbol('s0; import os')", "[x for x in ()]", "Add(*[1, 2])", "eval('1')", 3, None,
])
def test_shape_grammar_refuses_code(text) -> None:
    assert not is_shape_expression(text)


def test_guard_grammar() -> None:
    assert is_guard("2*(((-1) + L['x'].size()[2]) // 2) < L['x'].size()[2]")
    assert is_guard("1 + (((-1) + L['x'].size()[3]) // 4) >= 2 and L['x'].stride()[0] != 0")
    for code in ("__import__('os')", "L['x'].size().__class__", "L['x'].numpy()", "L[__import__('os')]",
                 "L['x'].size(print(1))", "exec('1')", "L['x;'].size()[0] > 1"):
        assert not is_guard(code), code


def test_target_allow_list() -> None:
    for ok in ("torch.ops.aten.conv2d.default", "torch.ops.prims.convert_element_type.default", "_operator.getitem",
               "torch.sym_max", "math.ceil"):
        assert is_safe_target(ok)
    for bad in ("torch.hub.load", "torch.save", "builtins.exec", "_operator.attrgetter", "#my_ext.op", "os.system",
                "torch.ops.myns.evil.default"):
        assert not is_safe_target(bad)
