"""stabbench.fileio's CSV cells: a cell a spreadsheet would run as a formula is written with a
``'`` before it, numbers are left alone, and reading gives back every original text."""

from __future__ import annotations

import pytest

from stabbench.fileio import csv_cell, csv_value

HOSTILE = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "=HYPERLINK(1).pt2",
           "\t=1+1", "\r=1+1", "-", "+", "@", "=", "-x", "-1-", "--name", "-1e", "+inf+1"]
NUMBERS = ["-0.5", "-1", "+3", "0", "12.25", "-1e-05", "1e+30", "-.5", "5.", "nan", "inf", "-inf", "-Infinity"]
PLAIN = ["model", "builtin:flicker,rate=0.2", "a=b", "x-1", "", " =1", "1+1", "net.onnx"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_cell_is_quoted(text: str) -> None:
    assert csv_cell(text) == "'" + text
    assert csv_value(csv_cell(text)) == text


@pytest.mark.parametrize("text", NUMBERS + PLAIN)
def test_numbers_and_plain_text_are_left_alone(text: str) -> None:
    assert csv_cell(text) == text
    assert csv_value(text) == text


@pytest.mark.parametrize("text", ["'", "'quoted", "''", "'=1+1", "'-0.5"])
def test_a_leading_quote_round_trips(text: str) -> None:
    assert csv_cell(text) == "'" + text  # escaped, so reading removes exactly the one added
    assert csv_value(csv_cell(text)) == text


def test_non_text_values() -> None:
    assert [csv_cell(v) for v in (-0.5, -3, 1e-05, float("-inf"), None)] == ["-0.5", "-3", "1e-05", "-inf", ""]


def test_every_csv_writer_neutralises_its_cells(tmp_path) -> None:
    import csv

    from stabbench.report.results import rows_to_csv
    from stabbench.training.outputs import CsvLog

    # per_sequence.csv, per_class.csv, per_perturbation_severity.csv, per_video.csv, overall.csv
    text = rows_to_csv([{"sequence": "=HYPERLINK(1)", "model": "'q", "S_global": -0.5, "pairs": -3, "d": "-2+3"}])
    assert next(csv.DictReader(text.splitlines())) == {"sequence": "'=HYPERLINK(1)", "model": "''q",
                                                       "S_global": "-0.5000", "pairs": "-3", "d": "'-2+3"}
    # train_log.csv, eval_log.csv
    log = CsvLog(tmp_path / "log.csv", ("step", "lr", "note"))
    log.append({"step": 1, "lr": "-1e-05", "note": "@SUM(1)"})
    assert (tmp_path / "log.csv").read_text() == "step,lr,note\n1,-1e-05,'@SUM(1)\n"
