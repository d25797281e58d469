"""Designs for data read in chunks: levels of all rows from one chunk's design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklmixed.exceptions import FormulaError
from sklmixed.formula import build_design
from sklmixed.formula._chunks import (
    build_chunked_design,
    collect_levels,
    combine_levels,
    formula_columns,
)


def _frame():
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "c": np.repeat(["p", "q", "r"], 20),
            "g": np.tile([f"g{i}" for i in range(6)], 10),
            "h": np.repeat([3, 1, 2, 5, 4, 6], 10),
        }
    )


def test_columns_and_categoricals_before_any_row():
    cols = formula_columns("y ~ 1 + x + C(h) + (1 + fulldummy(c)|g) + (1|g & h)", {"x": "dummy"})
    assert cols.used == ["y", "x", "h", "c", "g"]
    assert cols.groupings == [("g",), ("g", "h")]
    assert {"h", "c", "x"} <= cols.categorical


def test_stateful_transforms_are_refused():
    with pytest.raises(FormulaError, match="scale"):
        formula_columns("y ~ 1 + scale(x) + (1|g)")


@pytest.mark.parametrize("size", [1, 7, 25])
def test_the_chunked_design_codes_every_chunk_as_the_whole_frame(size):
    df = _frame()
    formula = "y ~ 1 + x * c + (1 + x|g) + (1|g & h)"
    whole = build_design(formula, df)
    cols = formula_columns(formula)
    check = None
    for start in range(0, len(df), size):
        part = collect_levels(df.iloc[start : start + size], cols)
        check = part if check is None else combine_levels(check, part)
    assert check.n == len(df)
    design = build_chunked_design(formula, df.iloc[:size], check)
    assert design.coef_names == whole.coef_names
    assert [t.levels for t in design.reterms] == [t.levels for t in whole.reterms]
    for start in range(0, len(df), size):
        rows = slice(start, start + size)
        X, parts = design.transform(df.iloc[rows])
        np.testing.assert_array_equal(X, whole.X[rows])
        for (refs, z), t in zip(parts, whole.reterms):
            np.testing.assert_array_equal(refs, t.refs[rows])
            np.testing.assert_array_equal(z, t.z[rows])
