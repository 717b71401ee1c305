"""A compact set made once (stabbench 0.2.0, OpenCV 5.1.0, NumPy 2.4.6, x86-64) and committed:
it must verify and give the same metrics on every CI run, whatever the installed versions
(CI runs the suite at the newest and at the minimum versions of every dependency).

Made with ``stabbench synth --dataset shapes --num-images 1 --seed 0 --protocol grid
--severities 1,6 --frames 5 --out tests/data/compact-set-v3`` (10 sequences, every type).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stabbench.synth import open_set
from tests.helpers import cli, ok

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "compact-set-v3"

#: Metrics of built-in predictors on the fixture (counts exact, rates to 1e-9 points).
PINNED = {
    "builtin:flicker,rate=0.1": {"S_boundary": 82.16409772200727, "S_global": 98.21798658073837},
    "builtin:random-flip,rate=0.05": {"S_boundary": 90.46810189168754, "S_global": 90.51469044783768},
    "builtin:shifted": {"S_boundary": 98.51616022647181, "S_global": 99.824134447685},
}
BOUNDARY_TRACKED = 293214

#: sha256 over every rendered frame and mask of the fixture, in order (the manifest's checksums
#: already pin each one; this pins the manifest too).
RENDERED_SHA256 = "648a5e758a2a2cb7d9606ac6c1ccc04c9cccd7c4765500b6e9cfe9743c536acd"


def test_the_fixture_is_a_compact_set_of_the_current_format() -> None:
    ds = open_set(FIXTURE)
    assert ds.format_version == 3 and ds.protocol_version == "v2" and len(ds) == 10
    assert {s.perturbation for s in ds} == {"translation", "rotation", "scaling", "occlusion", "gaussian_noise"}


def test_the_fixture_verifies_here() -> None:
    digest = hashlib.sha256()
    for seq in open_set(FIXTURE):
        frames, masks = seq.frames(), seq.masks()  # each checked against the manifest as rendered
        digest.update(frames.tobytes())
        digest.update(masks.tobytes())
        for _, flow, valid in seq.pairs():
            assert np.isfinite(flow).all() and valid.any()
    assert digest.hexdigest() == RENDERED_SHA256
    result = ok(cli("info", FIXTURE, "--verify"))
    assert "verified" in result.output


@pytest.mark.parametrize("model", sorted(PINNED))
def test_pinned_metrics(model: str, tmp_path: Path) -> None:
    ok(cli("eval", "-q", "--model", model, "--set", FIXTURE, "--out", tmp_path / "ev", "--no-leaderboard", "--no-plot"))
    metrics = json.loads((tmp_path / "ev" / "results.json").read_text())["metrics"]
    assert metrics["boundary_tracked"] == BOUNDARY_TRACKED
    for key, value in PINNED[model].items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key


def test_a_changed_frame_checksum_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "set"
    shutil.copytree(FIXTURE, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sequences"][4]["frames"][2]["frame_pixels_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = cli("info", copy, "--verify")
    assert result.exit_code == 3 and "seq_00004, frame 2" in result.output


def test_a_set_of_the_old_compact_format_gets_a_clear_message(tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(FIXTURE, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 2
    manifest["versions"]["stabbench"] = "0.1.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = cli("eval", "--model", "builtin:oracle", "--set", copy, "--out", tmp_path / "ev", "--no-leaderboard")
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 3
    assert "format 2" in line and "stabbench 0.1.0" in line and "re-create" in line.lower() and "stabbench export" in line
    assert not (tmp_path / "ev").exists()


def test_identity_is_the_content_not_where_or_with_what_it_was_made(tmp_path: Path) -> None:
    """``set_sha256``: the same set made from another folder, or with other NumPy / OpenCV versions
    (the renderer is exact), is the same set; any change of content is another set."""
    from stabbench.synth.reader import content_sha256

    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    same = json.loads(json.dumps(manifest))
    same["versions"].update({"numpy": "1.26.4", "opencv": "4.8.1"})
    same["config"]["root"] = "/elsewhere/data"
    assert content_sha256(same) == content_sha256(manifest) == open_set(FIXTURE).content_sha256
    for change in (("frames", 0, "mask_pixels_sha256"), ("trajectory", "noise_step")):
        other = json.loads(json.dumps(manifest))
        target = other["sequences"][1]
        for key in change[:-1]:
            target = target[key]
        target[change[-1]] = "0" * 64 if "sha256" in change[-1] else 1.5
        assert content_sha256(other) != content_sha256(manifest), change
    # end to end: a copy whose manifest records other library versions gives the same set_sha256
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURE, copy)
    (copy / "manifest.json").write_text(json.dumps(same, indent=2))
    rows = []
    for name, root in (("a", FIXTURE), ("b", copy)):
        ok(cli("eval", "-q", "--model", "builtin:oracle", "--set", root, "--out", tmp_path / name, "--no-plot",
               "--leaderboard", tmp_path / f"{name}.csv"))
        rows.append(json.loads((tmp_path / name / "results.json").read_text())["set"])
    assert rows[0]["sha256"] == rows[1]["sha256"] and rows[0]["manifest_sha256"] != rows[1]["manifest_sha256"]
