"""`stabbench eval`, `merge`, `gate` and `leaderboard` facing broken models, hostile entries,
failing disks and incomparable results: one line, a documented exit code, nothing lost."""

from __future__ import annotations

import csv
import errno
import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stabbench.cli import main
from stabbench.cli.evaluate import default_out_name
from stabbench.fileio import locked_dir

HOSTILE = '''
import numpy as np

class Nan:
    def predict(self, frames):
        out = np.zeros((len(frames), 3, *frames.shape[1:3]), np.float32)
        out[:, 1] = 1.0
        out[0, 0, 0, 0] = np.nan
        return out

class ExitInPredict:
    def predict(self, frames):
        raise SystemExit(0)

class ExitInReset:
    def reset(self):
        raise SystemExit(0)
    def predict(self, frames):
        return np.zeros(frames.shape[:3], np.uint8)

class Oracle:
    def predict(self, frames):
        return np.zeros(frames.shape[:3], np.uint8)

def exit_factory():
    raise SystemExit(3)
'''


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def one_line(result, code: int, *words) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    for word in words:
        assert word in line, line
    return line


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evtrust") / "set"
    assert run("synth", "--dataset", "shapes", "--num-images", "1", "--frames", "3", "--severities", "2", "--out", out,
               "-q").exit_code == 0
    return out


@pytest.fixture(scope="module")
def other_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evtrust2") / "set2"
    assert run("synth", "--dataset", "shapes", "--num-images", "1", "--frames", "3", "--severities", "2", "--seed", "1",
               "--out", out, "-q").exit_code == 0
    return out


@pytest.fixture()
def hostile(tmp_path: Path, monkeypatch) -> str:
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "hostile_models.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("hostile_models", None)
    return "hostile_models"


def ev(shapes: Path, out: Path, model: str, *extra, **kw):
    return run("eval", "--model", model, "--set", shapes, "--out", out, "--no-plot", "-q", *extra, **kw)


# ----------------------------------------------------------------------------- broken models


def test_nan_outputs_are_an_error_by_default(shapes, tmp_path, hostile) -> None:
    result = ev(shapes, tmp_path / "ev", f"{hostile}:Nan", "--no-leaderboard")
    one_line(result, 5, "seq_00000", "frames 0..2", "NaN", "--allow-nonfinite")
    assert not (tmp_path / "ev").exists()


def test_allowed_nan_outputs_are_recorded_and_fail_the_gate(shapes, tmp_path, hostile) -> None:
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "ev", f"{hostile}:Nan", "--allow-nonfinite", "--leaderboard", board).exit_code == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["model_outputs"]["non_finite"] == 1 and any("NaN" in w for w in results["warnings"])
    gate = run("gate", tmp_path / "ev", "--min", "S_global=0")
    assert gate.exit_code == 1 and "FAIL finite" in gate.output
    row_gate = run("gate", board, "--model", f"{hostile}:Nan", "--min", "S_global=0")
    assert row_gate.exit_code == 1


@pytest.mark.parametrize("entry", ["ExitInPredict", "ExitInReset", "exit_factory"])
def test_a_model_that_exits_is_a_bad_model(shapes, tmp_path, hostile, entry) -> None:
    result = ev(shapes, tmp_path / "ev", f"{hostile}:{entry}", "--no-leaderboard")
    line = one_line(result, 5, "SystemExit")
    assert entry == "exit_factory" or "seq_00000" in line or "predict" in line or "reset" in line
    assert entry == "exit_factory" or "sequence seq_00000" in line
    assert not (tmp_path / "ev").exists()


def test_python_entries_do_not_shadow_installed_packages(tmp_path, monkeypatch, shapes) -> None:
    """A local filelock.py in the working directory is found after the installed packages."""
    (tmp_path / "filelock.py").write_text("raise RuntimeError('the local filelock.py was imported')\n")
    (tmp_path / "my_local_model.py").write_text(HOSTILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("filelock", "my_local_model"):
        sys.modules.pop(name, None)
    result = ev(shapes, tmp_path / "ev", "my_local_model:Oracle", "--no-leaderboard")
    assert result.exit_code == 0, result.output
    import filelock

    assert "site-packages" in filelock.__file__
    assert sys.path.index(str(tmp_path)) > min(i for i, p in enumerate(sys.path) if "site-packages" in p)


# ----------------------------------------------------------------------------- names and rows


def test_name_names_the_row_and_the_leaderboard_shows_the_set(shapes, tmp_path) -> None:
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "a", "builtin:oracle", "--name", "main", "--leaderboard", board).exit_code == 0
    rows = list(csv.DictReader(open(board)))
    assert rows[0]["model"] == "main" and rows[0]["model_id"] == "builtin:oracle" and rows[0]["set"] == "set"
    shown = run("leaderboard", board)
    assert shown.exit_code == 0 and "main" in shown.output and rows[0]["set_sha256"][:8] in shown.output
    gate = run("gate", tmp_path / "a", "--baseline", board, "--baseline-model", "main", "--tolerance", "0")
    assert gate.exit_code == 0, gate.output  # a result passes against its own row at tolerance 0 (full precision)


def test_a_formula_name_is_text_in_the_file_and_itself_everywhere_else(shapes, tmp_path, monkeypatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    name = "=cmd|' /C calc'!A0"
    net = torch.nn.Conv2d(3, 3, 1).eval()
    dims = ({0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC},)
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 8, 8),), dynamic_shapes=dims), "=HYPERLINK(1).pt2")
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "a", "builtin:oracle", "--name", name, "--leaderboard", board).exit_code == 0
    assert ev(shapes, tmp_path / "b", "=HYPERLINK(1).pt2", "--leaderboard", board).exit_code == 0
    raw = list(csv.DictReader(open(board, newline="")))
    assert [r["model"] for r in raw] == ["'" + name, "'=HYPERLINK(1).pt2"]  # text to a spreadsheet
    assert not any(c.startswith(("=", "@")) for r in raw for c in r.values())
    shown = run("leaderboard", board, "--json")
    assert shown.exit_code == 0 and [r["model"] for r in json.loads(shown.output)] == [name, "=HYPERLINK(1).pt2"]
    gate = run("gate", tmp_path / "a", "--baseline", board, "--baseline-model", name)
    assert gate.exit_code == 0, gate.output
    assert run("gate", board, "--model", "=HYPERLINK(1).pt2", "--min", "S_global=0").exit_code == 0
    assert ev(shapes, tmp_path / "c", "=HYPERLINK(1).pt2", "--leaderboard", board).exit_code == 0  # the same row again
    assert run("report", "--leaderboard", board, "--out", tmp_path / "r").exit_code == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "=HYPERLINK(1).pt2" in page and "&#x27;=HYPERLINK" not in page and "'=HYPERLINK" not in page


def test_the_same_bytes_under_a_new_path_are_the_same_model(shapes, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    import shutil
    import warnings

    import torch

    net = torch.nn.Conv2d(3, 3, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 3, 8, 8),), str(tmp_path / "net.onnx"), dynamo=False,
                          dynamic_axes={"input.1": {0: "b", 2: "h", 3: "w"}})
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "net.onnx", tmp_path / "copy" / "renamed.onnx")
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "e1", tmp_path / "net.onnx", "--leaderboard", board).exit_code == 0
    again = ev(shapes, tmp_path / "e2", tmp_path / "copy" / "renamed.onnx", "--leaderboard", board)
    one_line(again, 4, "already has a row", "net.onnx")
    assert ev(shapes, tmp_path / "e2", tmp_path / "copy" / "renamed.onnx", "--leaderboard", board, "--replace").exit_code == 0
    assert len(list(csv.DictReader(open(board)))) == 1


ZOO = """
import numpy as np


class Constant:
    def __init__(self, label):
        self.label = label

    def predict(self, frames):
        return np.full(frames.shape[:3], self.label, np.uint8)


def small():
    return Constant(0)


def large():
    return Constant(1)
"""


def test_two_factories_of_one_module_are_two_models(shapes, tmp_path, monkeypatch) -> None:
    """Default names, folders and rows follow what a model computes, not its module file."""
    monkeypatch.chdir(tmp_path)  # the entry is found in the current folder; default outputs land here
    (tmp_path / "issue15_zoo.py").write_text(ZOO)
    monkeypatch.delitem(sys.modules, "issue15_zoo", raising=False)
    for factory in ("small", "large"):
        result = run("eval", "--model", f"issue15_zoo:{factory}", "--set", shapes, "--no-plot", "-q")
        assert result.exit_code == 0, result.output
        assert "row added" in result.stderr
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "leaderboard.csv"))}
    assert sorted(rows) == ["issue15_zoo:large", "issue15_zoo:small"]
    small, large = rows["issue15_zoo:small"], rows["issue15_zoo:large"]
    assert small["model_sha256"] == large["model_sha256"] and small["model_fingerprint"] != large["model_fingerprint"]
    assert small["S_global"] == large["S_global"] == "100.0"  # a constant is perfectly stable: names, not numbers, differ
    for factory in ("small", "large"):
        assert json.loads((tmp_path / f"eval-issue15_zoo_{factory}" / "results.json").read_text())["model"]["name"] == \
            f"issue15_zoo:{factory}"
    # the same factory again is the same model: its identical row is left as it is
    again = run("eval", "--model", "issue15_zoo:small", "--set", shapes, "--out", tmp_path / "again", "--no-plot", "-q")
    assert again.exit_code == 0 and "identical row is already there" in again.stderr, again.output
    assert len(list(csv.DictReader(open(tmp_path / "leaderboard.csv")))) == 2


def test_arch_weights_are_part_of_the_name_the_same_weights_elsewhere_are_recognised(shapes, tmp_path, monkeypatch) -> None:
    import shutil

    import torch

    from stabbench.models import build_model

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    state = build_model("tiny_unet", 3, base=4, depth=1).state_dict()  # shapes: 3 classes
    for run_dir, shift in (("ft-a", 0.0), ("ft-b", 0.5)):
        (tmp_path / run_dir).mkdir()
        torch.save({k: v + shift if v.is_floating_point() else v for k, v in state.items()},
                   tmp_path / run_dir / "state_dict.pt")
    arch = "arch:tiny_unet,base=4,depth=1"
    for run_dir in ("ft-a", "ft-b"):
        result = run("eval", "--model", arch, "--weights", f"{run_dir}/state_dict.pt", "--set", shapes, "--no-plot", "-q")
        assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "leaderboard.csv")))
    assert len(rows) == 2 and len({r["model"] for r in rows}) == 2 and len({r["model_fingerprint"] for r in rows}) == 2
    assert {r["model_id"] for r in rows} == {"arch:tiny_unet,base=4,depth=1,num_classes=3"}
    assert len(list(tmp_path.glob("eval-arch_tiny_unet*weights=state_dict.pt*"))) == 2
    # the first weights under another path: the same model, its row's name, an identical row
    shutil.copytree(tmp_path / "ft-a", tmp_path / "copy")
    again = run("eval", "--model", arch, "--weights", "copy/state_dict.pt", "--set", shapes, "--out", "again",
                "--no-plot", "-q")
    assert again.exit_code == 0 and "identical row is already there" in again.stderr, again.output
    first = [r for r in rows if r["model_fingerprint"] == json.loads((tmp_path / "again" / "results.json").read_text())[
        "model"]["fingerprint"]]
    assert len(first) == 1 and json.loads((tmp_path / "again" / "results.json").read_text())["model"]["name"] == \
        first[0]["model"]
    assert len(list(csv.DictReader(open(tmp_path / "leaderboard.csv")))) == 2


def test_default_output_names_do_not_collide() -> None:
    assert default_out_name("base/model.pt2", None) != default_out_name("ft/model.pt2", None)
    assert default_out_name("base/model.pt2", None) == "eval-base-model.pt2"
    assert default_out_name("builtin:flicker,rate=0.1", "1/4") == "eval-builtin_flicker_rate=0.1-shard1of4"


# ----------------------------------------------------------------------------- arguments and outputs


def test_arguments_are_checked_before_refusing_an_existing_output(shapes, tmp_path) -> None:
    (tmp_path / "ev").mkdir()
    one_line(ev(tmp_path / "no-such-set", tmp_path / "ev", "builtin:oracle"), 3, "not found")
    one_line(ev(shapes, tmp_path / "ev", "builtin:oracle", "--input-size", "banana"), 2)
    one_line(ev(shapes, tmp_path / "ev", "builtin:oracle", "--shard", "3/2"), 2)
    one_line(ev(shapes, tmp_path / "ev", "builtin:oracle", "--no-leaderboard"), 4, "already exists")


def test_an_even_boundary_width_is_a_usage_error(shapes, tmp_path) -> None:
    result = ev(shapes, tmp_path / "ev", "builtin:oracle", "--boundary-width", "14")
    assert result.exit_code == 2 and "even" in result.output


def test_out_below_a_regular_file_is_an_io_error(shapes, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    one_line(ev(shapes, tmp_path / "file" / "ev", "builtin:oracle", "--no-leaderboard"), 6, "file")


def test_a_full_disk_leaves_nothing_half_written(shapes, tmp_path, monkeypatch) -> None:
    import stabbench.report.results as results

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "atomic_write_text", full)
    one_line(ev(shapes, tmp_path / "ev", "builtin:oracle", "--no-leaderboard"), 6, "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary folder


def test_an_unwritable_leaderboard_is_an_io_error_and_the_result_is_kept(shapes, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    result = ev(shapes, tmp_path / "ev", "builtin:oracle", "--leaderboard", tmp_path / "file" / "lb.csv")
    one_line(result, 6)
    assert (tmp_path / "ev" / "results.json").is_file()


def test_a_stale_temporary_output_never_blocks(shapes, tmp_path) -> None:
    stale = tmp_path / ".ev.tmp-999999999"
    stale.mkdir()
    (stale / "results.json").write_text("{}")
    assert ev(shapes, tmp_path / "ev", "builtin:oracle", "--no-leaderboard").exit_code == 0
    assert not stale.exists()


def test_a_fifo_leaderboard_is_refused(shapes, tmp_path) -> None:
    os.mkfifo(tmp_path / "lb.csv")
    one_line(run("gate", tmp_path / "lb.csv", "--min", "S_global=1"), 3, "regular file")


def test_a_locked_leaderboard_folder_waits_for_the_writer(shapes, tmp_path) -> None:
    """The lock is on the folder; nothing named *.lock is ever created."""
    board = tmp_path / "boards" / "lb.csv"
    assert ev(shapes, tmp_path / "ev", "builtin:oracle", "--leaderboard", board).exit_code == 0
    assert [p.name for p in board.parent.iterdir()] == ["lb.csv"]
    with locked_dir(board.parent):
        pass  # free again once released


# ----------------------------------------------------------------------------- merge and gate


def test_merge_refuses_shards_with_other_preprocessing(shapes, tmp_path) -> None:
    assert ev(shapes, tmp_path / "s0", "builtin:oracle", "--shard", "0/2").exit_code == 0
    assert ev(shapes, tmp_path / "s1", "builtin:oracle", "--shard", "1/2", "--threshold", "0.3").exit_code == 0
    result = run("merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "m", "--no-leaderboard")
    one_line(result, 3, "preprocess")


def test_gate_refuses_an_incomparable_baseline(shapes, other_set, tmp_path) -> None:
    assert ev(shapes, tmp_path / "a", "builtin:oracle", "--no-leaderboard").exit_code == 0
    assert ev(other_set, tmp_path / "b", "builtin:oracle", "--no-leaderboard").exit_code == 0
    one_line(run("gate", tmp_path / "a", "--baseline", tmp_path / "b"), 3, "set_sha256")
    loud = run("gate", tmp_path / "a", "--baseline", tmp_path / "b", "--allow-different-set")
    assert loud.exit_code == 0 and "WARNING" in loud.output
    assert ev(shapes, tmp_path / "w", "builtin:oracle", "--no-leaderboard", "--boundary-width", "9").exit_code == 0
    one_line(run("gate", tmp_path / "a", "--baseline", tmp_path / "w"), 3, "boundary_width")


def test_gate_picks_the_row_of_the_result_set(shapes, other_set, tmp_path) -> None:
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "a", "builtin:flicker,rate=0.2", "--name", "main", "--leaderboard", board).exit_code == 0
    assert ev(other_set, tmp_path / "b", "builtin:oracle", "--name", "main", "--leaderboard", board).exit_code == 0
    # main's row on the result's set is the flicker one (S < 100): the oracle row (S = 100) of the other set is not taken
    result = run("gate", tmp_path / "a", "--baseline", board, "--baseline-model", "main")
    assert result.exit_code == 0, result.output
    assert "required >=  100.000" not in result.output


def test_gate_thresholds_must_be_numbers(shapes, tmp_path) -> None:
    assert ev(shapes, tmp_path / "a", "builtin:oracle", "--no-leaderboard").exit_code == 0
    for bad in ("S_global=nan", "S_global=inf", "S_global=high", "speed=3"):
        assert run("gate", tmp_path / "a", "--min", bad).exit_code == 2, bad


def test_a_non_numeric_leaderboard_cell_is_bad_data(shapes, tmp_path) -> None:
    board = tmp_path / "lb.csv"
    assert ev(shapes, tmp_path / "a", "builtin:oracle", "--leaderboard", board).exit_code == 0
    text = board.read_text().splitlines()
    header = text[0].split(",")
    cells = next(csv.reader([text[1]]))
    cells[header.index("S_global")] = "lots"
    board.write_text(text[0] + "\n" + ",".join(f'"{c}"' for c in cells) + "\n")
    one_line(run("gate", board, "--model", "builtin:oracle", "--min", "S_global=1"), 3, "non-numeric")
    assert run("leaderboard", board).exit_code == 0  # printing it still works


@pytest.mark.parametrize("content", ['{"format": "stabbench-results"}', "[1, 2]", "not json", ""])
def test_merge_of_malformed_results_is_bad_data(tmp_path, content) -> None:
    (tmp_path / "r.json").write_text(content)
    result = run("merge", tmp_path / "r.json", "--out", tmp_path / "m", "--no-leaderboard")
    one_line(result, 3, "r.json")
    assert not (tmp_path / "m").exists()


def test_a_garbage_weights_file_is_one_line(shapes, tmp_path) -> None:
    (tmp_path / "w.pt").write_text("garbage")
    line = one_line(ev(shapes, tmp_path / "ev", "arch:tiny_unet", "--weights", tmp_path / "w.pt", "--no-leaderboard"), 5,
                    "not a weights file")
    assert "weights_only` set to `False`" not in line  # never the advice to unpickle
