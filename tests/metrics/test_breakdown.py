"""stabbench.metrics.breakdown: summaries and per-sequence rows; shards merge to exactly the
single run, in any order, through their JSON states."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import perturbations as P
from stabbench.metrics import ConfusionMeter, StabilityMeter, sequence_rows, summarize
from tests.helpers import random_blobs


def same(a, b) -> bool:
    """Exact equality of nested results, NaN == NaN (repr of a float round-trips exactly)."""
    return repr(a) == repr(b)


def simulate(num_sequences: int = 6, h: int = 36, w: int = 52, frames: int = 4):
    """Sequences of (seq_id, flows, valids, gts, preds) from real trajectories and noisy labels."""
    rng = np.random.default_rng(11)
    out = []
    names = ["translation", "rotation", "scaling", "occlusion", "gaussian_noise"]
    for i in range(num_sequences):
        name = names[i % len(names)]
        traj = P.make_trajectory(name, 1 + i % 6, rng, h, w, frames)
        source = random_blobs(rng, h, w, (0, 1, 2))
        gts = [P.warp_label(source, traj.affines[k]) for k in range(frames)]
        preds = [
            np.where(rng.random((h, w)) < 0.05, rng.integers(0, 3, (h, w)), np.where(g == 255, 0, g)).astype(np.uint8)
            for g in gts
        ]
        if i == 2:
            gts = [np.zeros((h, w), np.uint8) for _ in gts]  # no band at all: S_boundary NaN
        pairs = [P.pair_correspondence(traj, t) for t in range(frames - 1)]
        out.append((f"seq{i:02d}", (name, traj.severity), pairs, gts, preds))
    return out


def run(sequences):
    stab, conf = StabilityMeter(), ConfusionMeter(3)
    for seq_id, _, pairs, gts, preds in sequences:
        for t, (flow, valid) in enumerate(pairs):
            stab.update(seq_id, t, preds[t], preds[t + 1], flow, valid, gts[t], gts[t + 1])
        for k in range(len(gts)):
            conf.update(seq_id, preds[k], gts[k])
    return stab, conf


def roundtrip(meter):
    return type(meter).from_state_dict(json.loads(json.dumps(meter.state_dict())))


@pytest.mark.parametrize("split", [[3, 3], [1, 2, 3], [4, 1, 1]])
def test_merged_shards_equal_a_single_run_exactly(split):
    sequences = simulate()
    groups = {seq_id: group for seq_id, group, *_ in sequences}
    single_s, single_c = run(sequences)
    expected = (summarize(single_s, single_c), summarize(single_s, single_c, groups), sequence_rows(single_s, single_c))
    bounds = np.cumsum([0, *split])
    shards = [run(sequences[a:b]) for a, b in itertools.pairwise(bounds)]
    shards = [(roundtrip(s), roundtrip(c)) for s, c in shards]
    for order in (list(range(len(shards))), list(reversed(range(len(shards))))):
        stab, conf = StabilityMeter(), ConfusionMeter(3)
        for i in order:
            stab.merge(shards[i][0])
            conf = conf + shards[i][1]
        got = (summarize(stab, conf), summarize(stab, conf, groups), sequence_rows(stab, conf))
        assert same(got, expected)
        assert stab.state_dict() == single_s.state_dict() and conf.state_dict() == single_c.state_dict()
    assert math.isnan(expected[2][2]["S_boundary"]) and not math.isnan(expected[0]["S_boundary"])
    # the ground-truth rule's diagnostics merge too, and are not trivially equal to S_boundary
    assert expected[0]["gt_rule_removed_fraction"] > 0
    assert expected[0]["S_boundary_no_gt_rule"] != expected[0]["S_boundary"]
    assert expected[0]["boundary_sequences"] == 5 and expected[0]["sequences"] == 6
