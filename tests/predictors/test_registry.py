"""stabbench.predictors.registry: built-in names, their parameters, canonical ids, errors."""

from __future__ import annotations

import pytest

from stabbench.errors import UsageError
from stabbench.predictors import load_predictor
from stabbench.predictors.registry import parse_builtin


def test_builtin_names():
    assert parse_builtin("flicker,rate=0.2") == parse_builtin("flicker?rate=0.2&band=15&seed=0")
    assert load_predictor("builtin:flicker?seed=3").info["id"] == "builtin:flicker,band=15,rate=0.1,seed=3"
    with pytest.raises(UsageError, match="known: .*oracle"):
        parse_builtin("orakel")
    with pytest.raises(UsageError, match=r"bad rate='2'.*\[0, 1\]"):
        parse_builtin("flicker,rate=2")
    with pytest.raises(UsageError, match="odd"):
        parse_builtin("flicker,band=14")
    with pytest.raises(UsageError, match="unknown parameter 'speed'"):
        parse_builtin("shifted,speed=1")
