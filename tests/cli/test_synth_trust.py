"""`stabbench synth` interrupted anywhere, or run twice at once: every state a kill can leave is
taken up by re-running the command, and the advice printed is true."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import stabbench.synth.writer as writer
from stabbench.cli import main
from stabbench.fileio import locked_dir

ARGS = ("--dataset", "shapes", "--num-images", "1", "--frames", "3", "--severities", "1,2", "-q", "--materialize")


def synth(out: Path, *extra):
    return CliRunner().invoke(main, ["synth", *ARGS, "--out", str(out), *extra])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref") / "set"
    assert synth(out).exit_code == 0
    return tree(out)


def test_a_kill_while_overwrite_clears_is_recovered(tmp_path: Path, monkeypatch, reference) -> None:
    out = tmp_path / "set"
    assert synth(out, "--seed", "5").exit_code == 0
    calls = {"n": 0}
    real = shutil.rmtree

    def dying_rmtree(path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second sequence folder: half the old set is gone
            raise KeyboardInterrupt
        return real(path, *a, **kw)

    monkeypatch.setattr(writer.shutil, "rmtree", dying_rmtree)
    interrupted = synth(out, "--overwrite")
    assert interrupted.exit_code == 130 and "re-run the same command" in interrupted.output
    monkeypatch.setattr(writer.shutil, "rmtree", real)
    assert (out / "run.json").is_file() and not (out / "manifest.json").exists()
    again = synth(out, "--overwrite")  # the printed advice: re-run the same command
    assert again.exit_code == 0, again.output
    assert tree(out) == reference


def test_a_kill_before_the_first_run_json_is_recovered(tmp_path: Path, reference) -> None:
    out = tmp_path / "set"
    out.mkdir()
    (out / ".run.json.12345.tmp").write_text('{"half": ')  # what a kill inside the first write leaves
    result = synth(out)
    assert result.exit_code == 0, result.output
    assert tree(out) == reference


def test_two_runs_into_one_out_do_not_collide(tmp_path: Path) -> None:
    out = tmp_path / "set"
    out.mkdir()
    with locked_dir(out):  # another synth is writing there
        result = synth(out)
    assert result.exit_code == 4 and "another stabbench synth" in result.output
    assert synth(out).exit_code == 0  # and once it is done, the set is written


def test_a_tampered_resumed_record_is_rewritten_not_trusted(tmp_path: Path, reference) -> None:
    """A partial set whose sequence.json points outside: resuming rewrites that sequence."""
    out = tmp_path / "set"
    assert synth(out).exit_code == 0
    (out / "manifest.json").unlink()  # an interrupted run
    record_path = out / "seq_00000" / "sequence.json"
    record = json.loads(record_path.read_text())
    record["frames"][0]["frame"] = "../../../etc/hostname"
    record_path.write_text(json.dumps(record))
    assert synth(out).exit_code == 0
    assert tree(out) == reference
