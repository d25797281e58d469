"""``offset(expr)`` terms of the fixed part: recognised by the parser, evaluated on
the fitting data and re-evaluated on new data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklmixed.exceptions import DataError, FormulaError, MissingColumnError
from sklmixed.formula import build_design, parse_formula


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [1, 0, 3, 2, 5, 4],
            "x": [0.1, 0.5, 0.2, 0.9, 0.3, 0.7],
            "t": [1.0, 2.0, 4.0, 1.0, 2.0, 4.0],
            "c": list("ababab"),
            "g": list("ppqqrr"),
        }
    )


@pytest.mark.parametrize(
    "formula, fixed, exprs",
    [
        ("y ~ x + offset(log(t)) + (1|g)", "x", ["log(t)"]),
        ("y ~ offset(t) + x + offset(x) + (1|g)", "x", ["t", "x"]),
        ("y ~ offset(log(t)) + (1|g)", "1", ["log(t)"]),  # intercept only, as in R
        ("y ~ 0 + x + offset(t)", "0 + x", ["t"]),
        ("y ~ x + (1|g)", "x", []),
    ],
)
def test_parser_takes_offsets_out_of_the_fixed_part(formula, fixed, exprs):
    parsed = parse_formula(formula)
    assert parsed.fixed == fixed and [expr for expr, _ in parsed.offsets] == exprs
    # evaluated as Python inside I(), as R reads offset()'s argument
    assert [text for _, text in parsed.offsets] == [f"I({e})" for e in exprs]


def test_offset_expressions_are_read_as_r_writes_them():
    ((expr, text),) = parse_formula("y ~ x + offset(t^2 / 2)").offsets
    assert expr == "t^2 / 2" and text == "I(t**2 / 2)"
    with pytest.raises(FormulaError, match="unknown function 'lg'"):
        parse_formula("y ~ x + offset(lg(t))")
    with pytest.raises(FormulaError, match="one expression"):
        parse_formula("y ~ x + offset(t, 2)")


def test_offsets_are_evaluated_added_and_shown():
    df = frame()
    d = build_design("y ~ 1 + x + offset(log(t)) + offset(x / 2) + (1|g)", df)
    np.testing.assert_allclose(d.offset, np.log(df["t"]) + df["x"] / 2)
    assert d.coef_names == ["(Intercept)", "x"]
    assert d.formula_text == "y ~ 1 + x + offset(log(t)) + offset(x / 2) + (1 | g)"
    assert "t" in d.used_columns
    new = df.assign(t=[8.0, 8.0, 1.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(d.offset_for(new), np.log(new["t"]) + new["x"] / 2)
    assert build_design("y ~ 1 + x + (1|g)", df).offset_for(new) is None


def test_offset_errors_name_the_term():
    df = frame()
    with pytest.raises(DataError, match=r"offset\(log\(t\)\) has 1 NaN or infinite value"):
        build_design("y ~ x + offset(log(t)) + (1|g)", df.assign(t=[0.0, 1, 1, 1, 1, 1]))
    with pytest.raises(DataError, match="column 't' has 1 missing"):
        build_design("y ~ x + offset(log(t)) + (1|g)", df.assign(t=[np.nan, 1, 1, 1, 1, 1]))
    with pytest.raises(MissingColumnError, match="'exposure' not found"):
        build_design("y ~ x + offset(log(exposure)) + (1|g)", df)
    with pytest.raises(FormulaError, match=r"offset\(c\): column 'c' is not numeric"):
        build_design("y ~ x + offset(c) + (1|g)", df)
    with pytest.raises(FormulaError, match="one expression"):
        build_design("y ~ x + offset() + (1|g)", df)
    d = build_design("y ~ x + offset(log(t)) + (1|g)", df)
    with pytest.raises(DataError, match="first at row 2"):
        d.offset_for(df.assign(t=[1.0, 1, -1, 1, 1, 1]))


def test_integer_columns_do_not_wrap():
    # formulaic computes in the column's dtype: an int8 exposure times 1000 would
    # wrap around; the design evaluates it in doubles, as R does
    df = frame().assign(t=np.array([100, 120, 90, 100, 110, 127], dtype=np.int8))
    d = build_design("y ~ x + offset(t * 1000) + (1|g)", df)
    np.testing.assert_array_equal(d.offset, df["t"].to_numpy(dtype=float) * 1000)
    np.testing.assert_array_equal(d.offset_for(df), d.offset)


def test_offset_columns_are_predictors_but_not_needed_for_the_response():
    df = frame()
    d = build_design("log(y + 1) ~ x + offset(log(t)) + (1|g)", df)
    assert "t" in d.predictor_columns and "y" not in d.predictor_columns
    np.testing.assert_allclose(d.response(df[["y"]]), np.log(df["y"] + 1))
    with pytest.raises(MissingColumnError, match="'t' not found"):
        d.offset_for(df.drop(columns="t"))
    # with the response given elsewhere, the data need not hold it
    d = build_design("y ~ x + offset(log(t)) + (1|g)", df.drop(columns="y"), with_response=False)
    np.testing.assert_allclose(d.offset, np.log(df["t"]))
    # the user's frame is not modified
    assert df["t"].dtype == np.float64
