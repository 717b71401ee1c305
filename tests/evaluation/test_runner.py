"""stabbench.evaluation.runner: reading the next sequence ahead on a thread gives the same
states as reading serially, sharded or not, and the same errors in the same place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stabbench.errors import DataError, ModelError
from stabbench.evaluation import evaluate
from stabbench.predictors.registry import make_builtin
from stabbench.synth import open_set


def state_json(state) -> str:
    return json.dumps(state.state_dict(), sort_keys=True)


def test_prefetch_same_results_and_errors(small_set: Path, tmp_path: Path) -> None:
    ds = open_set(small_set)
    for name in ("oracle", "flicker,rate=0.3", "constant"):
        predictor = make_builtin(name).predictor
        serial = evaluate(predictor, ds, prefetch=False)
        ahead = evaluate(predictor, ds, prefetch=True, batch_size=3)
        assert state_json(ahead) == state_json(serial)
        assert state_json(evaluate(predictor, ds, shard=(1, 2))) == state_json(evaluate(predictor, ds, shard=(1, 2),
                                                                                           prefetch=False))

    copy = tmp_path / "set"  # sequence 3 cannot be rendered: sequences 0-2 are scored first, then its DataError
    shutil.copytree(small_set, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sequences"][3]["frames"][1]["frame_pixels_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for prefetch in (True, False):
        seen = []
        with pytest.raises(DataError, match="seq_00003, frame 1") as info:
            evaluate(make_builtin("constant").predictor, open_set(copy), prefetch=prefetch,
                     progress=lambda done, total, seen=seen: seen.append(done))
        assert "changed" in str(info.value) and seen == [1, 2, 3]

    class FailsOnSecond:  # a model error while the next sequence is being read ahead
        calls = 0

        def predict(self, frames):
            FailsOnSecond.calls += 1
            if FailsOnSecond.calls == 2:
                raise RuntimeError("boom")
            return np.zeros(frames.shape[:3], np.uint8)

    with pytest.raises(ModelError, match="boom"):
        evaluate(FailsOnSecond(), ds)
