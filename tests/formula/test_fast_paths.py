"""The design's shortcuts give what the general code gives.

Small fits skip pandas' general routes where they cost more than the model: each
column is looked up once, Arrow text columns are coded by Arrow, present columns
are found by the Index's hash lookup, and the fitting data's Categoricals are
built from the codes found with their levels. Each must agree with the route it
replaces, including on the inputs where that route behaves unusually.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sklmixed import load_dataset
from sklmixed.exceptions import MissingColumnError
from sklmixed.formula import build_design
from sklmixed.formula._design import _Columns, _levels_and_codes


def _pandas_levels_and_codes(series: pd.Series) -> tuple[list, np.ndarray]:
    codes, levels = pd.factorize(series.to_numpy(), sort=True)
    return list(levels), np.asarray(codes, dtype=np.int64)


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]"])
def test_arrow_text_codes_are_pandas_codes(dtype):
    rng = np.random.default_rng(3)
    # code points from ASCII to astral planes, empty strings, case and prefixes
    alphabet = [*"abcXYZ09 _", "é", "中", "😀", "aa", "B", ""]
    for trial in range(100):
        n = int(rng.integers(1, 60))
        values = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 3)))) for _ in range(n)]
        series = pd.Series(values, dtype=dtype)
        if trial % 3 == 0:  # several Arrow chunks
            series = pd.concat([series, pd.Series(values[:5], dtype=dtype)], ignore_index=True)
        levels, codes = _levels_and_codes(series)
        want_levels, want_codes = _pandas_levels_and_codes(series)
        assert levels == want_levels
        assert all(type(v) is str for v in levels)
        assert codes.dtype == np.int64
        np.testing.assert_array_equal(codes, want_codes)


def test_arrow_text_with_missing_values_codes_them_minus_one():
    levels, codes = _levels_and_codes(pd.Series(["b", None, "a"], dtype="str"))
    assert levels == ["a", "b"]
    np.testing.assert_array_equal(codes, [1, -1, 0])


def test_each_column_is_looked_up_once():
    frame = load_dataset("sleepstudy")
    looked_up: list = []

    class Counting(pd.DataFrame):
        def __getitem__(self, key):
            looked_up.append(key)
            return super().__getitem__(key)

    fetched: dict = {}
    design = build_design("reaction ~ 1 + days + (1 + days|subj)", Counting(frame), fetched=fetched)
    assert sorted(looked_up) == ["days", "reaction", "subj"]
    assert sorted(fetched) == ["days", "reaction", "subj"]
    np.testing.assert_array_equal(design.X[:, 1], frame["days"].to_numpy(dtype=float))


def test_columns_cache_reads_the_frame_once_per_column():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    cols = _Columns(frame)
    assert cols["a"] is cols["a"]
    assert cols.levels_and_codes("b") is cols.levels_and_codes("b")
    with pytest.raises(KeyError):
        cols["c"]


@pytest.mark.parametrize(
    "columns",
    [
        pd.MultiIndex.from_tuples([("y", "a"), ("x", "a"), ("g", "a")]),
        pd.Index(["y", "x", np.nan], dtype="str"),
        pd.Index(["y", "x", 1], dtype=object),
    ],
    ids=["multiindex", "nan-label", "mixed-labels"],
)
def test_missing_columns_are_named_for_every_kind_of_index(columns):
    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=columns)
    with pytest.raises(MissingColumnError, match="'g' not found"):
        build_design("y ~ 1 + (1|g)", frame)


@pytest.mark.parametrize("ordered", [False, True])
def test_categorical_predictor_with_unused_categories(ordered):
    rng = np.random.default_rng(0)
    n = 60
    text = rng.choice(["lo", "mid", "hi"], n)
    base = pd.DataFrame({"y": rng.normal(size=n), "g": np.repeat(list("abcdef"), 10)})
    as_text = base.assign(c=text)
    as_categorical = base.assign(
        c=pd.Categorical(text, categories=["none", "hi", "lo", "mid"], ordered=ordered)
    )
    want = build_design("y ~ 1 + c + (1|g)", as_text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing from pandas about unused categories
        got = build_design("y ~ 1 + c + (1|g)", as_categorical)
    # the Categorical's own order of the categories, without the unused one
    assert got.coef_names == ["(Intercept)", "c: lo", "c: mid"]
    reorder = [want.coef_names.index(name) for name in got.coef_names]
    np.testing.assert_array_equal(got.X, want.X[:, reorder])
    assert isinstance(as_categorical["c"].dtype, pd.CategoricalDtype)  # not modified
