"""stabbench.predictors.output: what a predictor returns becomes labels of the frame size.

Scores, one foreground channel and integer labels; shape errors and NaN/Inf warnings; integer
labels of every dtype against the module's definition (range check, nearest-neighbour
resize with aligned pixel centres, uint8 / int32), and its properties.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stabbench.errors import ModelError
from stabbench.predictors import check_finite, normalize_output
from tests.helpers import assert_same, outcome
from tests.helpers import run_model as run


def test_normalize_output_forms():
    probs = np.zeros((2, 3, 4, 5), np.float32)
    probs[:, 2, :, 3:] = 1
    labels, issues = normalize_output(probs, 2, 8, 10, num_classes=3)
    assert labels.shape == (2, 8, 10) and labels.dtype == np.uint8 and issues is None
    assert (labels[:, :, 7:] == 2).all() and (labels[:, :, :5] == 0).all()
    single = np.full((1, 1, 2, 2), 0.7, np.float32)
    assert (normalize_output(single, 1, 4, 4, num_classes=2, threshold=0.5)[0] == 1).all()
    assert (normalize_output(single, 1, 4, 4, threshold=0.8)[0] == 0).all()
    lab = np.array([[[0, 1], [2, 3]]], np.int64)
    np.testing.assert_array_equal(normalize_output(lab, 1, 4, 4)[0][0], np.kron(lab[0], np.ones((2, 2), int)))
    with pytest.raises(ModelError, match=r"labels must lie in \[0, 3\)"):
        normalize_output(lab, 1, 4, 4, num_classes=3)
    with pytest.raises(ModelError, match="5 channels but num_classes is 3"):
        normalize_output(np.zeros((1, 5, 2, 2), np.float32), 1, 4, 4, num_classes=3)


def test_wrong_shape_is_model_error_naming_both_shapes(frames):
    with pytest.raises(ModelError) as err:
        run("tests.fixtures_models:BadShapePredictor", frames)
    message = str(err.value)
    assert "expected (2, C, h, w) float scores or (2, h, w) integer labels" in message
    assert "received shape (2, 2, 32)" in message and err.value.exit_code == 5
    with pytest.raises(ModelError, match=r"expected \(3, .*received shape \(2, 3, 4, 4\)"):
        normalize_output(np.zeros((2, 3, 4, 4), np.float32), 3, 4, 4)
    with pytest.raises(ModelError, match="float64"):  # float labels are ambiguous
        normalize_output(np.zeros((1, 4, 4)), 1, 4, 4)


def test_nan_and_inf_give_warnings(frames):
    out = np.ones((1, 2, 2, 2), np.float32)
    assert check_finite(out) is None
    out[0, 0, 0, 0], out[0, 1, 1, 1] = np.nan, -np.inf
    found = check_finite(out)
    assert (found.nan, found.inf, found.values) == (1, 1, 8)
    assert str(found).startswith("model output has 1 NaN and 1 Inf of 8 values")
    labels, issues, _ = run("tests.fixtures_models:NanPredictor", frames)
    assert len(issues) == 3 and str(issues[0]).startswith("frames 0..1: model output has 1 NaN and 1 Inf")  # one per call
    assert issues[0].frames == (0, 1) and str(issues[2]).startswith("frame 4: ")
    assert labels.shape == (5, 24, 32)


# ----------------------------------------------------------------------------- integer labels


def labels_by_definition(out: np.ndarray, height: int, width: int, num_classes: int | None):
    """``normalize_output`` on integer labels ``(B, h, w)`` as the module documents it, or the
    type of the error: values must lie in ``[0, num_classes)`` (read as int64: uint64 above
    2**63 is negative); output pixel ``i`` takes input pixel ``floor((i + 0.5) h / H)`` (exact
    integer arithmetic here); ``uint8`` when ``C <= 255``, else ``int32`` (``C``: ``num_classes``,
    or the largest label + 1)."""
    values = out.astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        return ModelError
    h, w = out.shape[1:]
    rows = [(2 * i + 1) * h // (2 * height) for i in range(height)]
    cols = [(2 * j + 1) * w // (2 * width) for j in range(width)]
    classes = num_classes if num_classes is not None else high + 1
    return values[:, rows][:, :, cols].astype(np.uint8 if classes <= 255 else np.int32)


DTYPES = (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64, np.uint64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_labels_match_their_definition(dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    for (h, w), num_classes in itertools.product(((12, 16), (5, 7), (24, 32)), (None, 2, 3, 300)):
        top = 2 if dtype is np.bool_ else min(int(info.max), 400) + 1
        for values in (rng.integers(0, min(top, num_classes or top), (2, h, w)), rng.integers(0, top, (2, h, w))):
            out = values.astype(dtype)
            want = labels_by_definition(out, 12, 16, num_classes)
            got = outcome(lambda *a: normalize_output(*a)[0], out, 2, 12, 16, num_classes)
            assert_same(got, want, (dtype, h, w, num_classes))
            if isinstance(got, np.ndarray):
                assert not np.shares_memory(got, out)  # never the predictor's own buffer
            else:  # the error names the range and the values received
                with pytest.raises(ModelError, match=rf"lie in \[0, {num_classes}\); received values "
                                                     rf"{values.min()}\.\.{values.max()} "):
                    normalize_output(out, 2, 12, 16, num_classes)
        if info is not None and info.min < 0:  # negative labels: an error naming the range and the values
            out = np.full((2, h, w), -1, dtype)
            bound = num_classes if num_classes is not None else "C"
            with pytest.raises(ModelError) as err:
                normalize_output(out, 2, 12, 16, num_classes)
            assert f"model output labels must lie in [0, {bound}); received values -1..-1 (" in str(err.value)
            assert labels_by_definition(out, 12, 16, num_classes) is ModelError
    if dtype is np.uint64:  # above 2**63: read as negative through int64, rejected
        out = np.full((1, 4, 4), 2**64 - 1, np.uint64)
        with pytest.raises(ModelError, match=r"received values -1\.\.-1"):
            normalize_output(out, 1, 4, 4)


label_maps = st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 7))
)


@given(labels=label_maps, k=st.integers(1, 4), dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.uint32]))
def test_nearest_resize_properties(labels, k, dtype):
    """Pixel centres aligned: the same size keeps every label, an integer factor up repeats
    each pixel ``k x k`` times, an integer factor down takes the centre pixel of each ``k x k``
    block; values and the uint8 result do not depend on the input dtype; never the input buffer."""
    out = labels.astype(dtype)
    b, h, w = out.shape
    same = normalize_output(out, b, h, w)[0]
    assert same.dtype == np.uint8 and np.array_equal(same, labels) and not np.shares_memory(same, out)
    up = normalize_output(out, b, h * k, w * k, num_classes=8)[0]
    assert np.array_equal(up, np.repeat(np.repeat(labels, k, axis=1), k, axis=2))
    big = np.repeat(np.repeat(out, k, axis=1), k, axis=2)
    big[:, (np.arange(h * k) % k) != k // 2] = 0  # only the centre row and column of each block
    big[:, :, (np.arange(w * k) % k) != k // 2] = 0  # may matter
    down = normalize_output(big, b, h, w, num_classes=8)[0]
    assert np.array_equal(down, labels)


@given(high=st.integers(0, 5000))
def test_label_dtype_is_uint8_up_to_255_classes(high):
    out = np.array([[[0, high]]], np.int64)
    labels = normalize_output(out, 1, 1, 2)[0]
    assert labels.dtype == (np.uint8 if high + 1 <= 255 else np.int32)
    assert labels.tolist() == [[[0, high]]]
    with pytest.raises(ModelError):
        normalize_output(out, 1, 1, 2, num_classes=high)
