"""stabbench.report.plot: short names, NaN gaps at missing severities, the shared fixed y axis,
the counts beside the points, deterministic PNG bytes."""

from __future__ import annotations

import math

import pytest

from stabbench.report.plot import (
    Y_HEADROOM,
    _figure,
    render_stability_vs_severity,
    severity_series,
    short_model_name,
    y_limits,
)

ROWS = [
    {"perturbation": "rotation", "severity": 1, "S_global": 99.0, "S_boundary": 95.0, "sequences": 3,
     "boundary_sequences": 3},
    {"perturbation": "rotation", "severity": 2, "S_global": 98.5, "S_boundary": 93.0, "sequences": 3,
     "boundary_sequences": 2},
    # severity 3 missing for rotation; severity 4 without an S_boundary
    {"perturbation": "rotation", "severity": 4, "S_global": 97.0, "S_boundary": None, "sequences": 3,
     "boundary_sequences": 0},
    {"perturbation": "occlusion", "severity": 3, "S_global": 99.5, "S_boundary": 85.2, "sequences": 1,
     "boundary_sequences": 1},
]


@pytest.mark.parametrize("name, short", [
    ("runs/2024/base/model.pt2", "model.pt2"),
    ("C:\\models\\net.onnx", "net.onnx"),
    ("mypkg.models.unet:build", "unet:build"),
    ("builtin:flicker,rate=0.1", "builtin:flicker,rate=0.1"),
    ("arch:tiny_unet", "arch:tiny_unet"),
    ("x" * 50, "x" * 19 + "..." + "x" * 18),
])
def test_short_model_name(name, short):
    assert short_model_name(name) == short
    assert len(short_model_name(name)) <= 40


def test_a_missing_severity_is_a_gap():
    values, counts = severity_series(ROWS, "rotation", "S_boundary", [1, 2, 3, 4])
    assert values[:2] == [95.0, 93.0] and math.isnan(values[2]) and math.isnan(values[3])
    assert counts == [3, 2, 0, 0]
    values, counts = severity_series(ROWS, "rotation", "S_global", [1, 2, 3, 4])
    assert math.isnan(values[2]) and values[3] == 97.0 and counts == [3, 3, 0, 3]


def test_y_axis_is_fixed_from_the_floor_to_100():
    assert y_limits(ROWS) == (84, 100 + Y_HEADROOM)  # 85.2 - 1, floored
    high = [{**r, "S_boundary": 99.0} for r in ROWS]
    assert y_limits(high) == (90, 100 + Y_HEADROOM)  # never narrower than the floor


def test_figure_shares_the_axis_breaks_lines_and_annotates_counts():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = _figure(plt, ROWS, "runs/base/model.pt2")
    try:
        left, right = fig.axes
        assert left.get_ylim() == right.get_ylim() == (84, 100 + Y_HEADROOM)
        assert fig._suptitle.get_text() == "model.pt2"
        rotation = next(line for line in right.get_lines() if line.get_label() == "rotation")
        assert list(rotation.get_xdata()) == [1, 2, 3, 4]
        assert [math.isnan(v) for v in rotation.get_ydata()] == [False, False, True, True]
        texts = sorted(t.get_text() for t in right.texts)
        assert texts == ["1", "2", "3"]  # one count per drawn point (boundary sequences)
        assert sorted(t.get_text() for t in left.texts) == ["1", "3", "3", "3"]
    finally:
        plt.close(fig)


def test_png_bytes_are_deterministic():
    png = render_stability_vs_severity(ROWS, "model")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == render_stability_vs_severity(ROWS, "model")
