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


@pytest.mark.parametrize("n", [5, 256, 257, 3000])
@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", object, "string[python]"])
def test_text_codes_of_short_and_long_columns_are_pandas_codes(n, dtype):
    # up to a few hundred values text is coded in Python, beyond by Arrow or pandas
    rng = np.random.default_rng(n)
    alphabet = np.array(["b", "a", "B", "é", "中", "😀", "a b", "", "10", "9"])
    values = list(alphabet[rng.integers(0, alphabet.shape[0], size=n)])
    series = pd.Series(values, dtype=dtype)
    levels, codes = _levels_and_codes(series)
    want_levels, want_codes = _pandas_levels_and_codes(series)
    assert levels == want_levels
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, want_codes)
    # the values alone code as their Series does
    values_levels, values_codes = _levels_and_codes(_Columns(series.to_frame("g"))["g"])
    assert values_levels == levels
    np.testing.assert_array_equal(values_codes, codes)


def test_object_columns_of_mixed_values_keep_pandas_codes():
    # not all str: pandas' factorize (and its text order for mixed types), as before
    for values in ([3, 1, 2, 1], [1.5, "a", 1.5], ["b", 2, "a"]):
        series = pd.Series(values, dtype=object)
        levels, codes = _levels_and_codes(series)
        if all(isinstance(v, (int, float)) for v in values):
            assert (levels, codes.tolist()) == _as_lists(_pandas_levels_and_codes(series))
        else:
            assert levels == sorted(set(values), key=str)
            assert [levels[c] for c in codes] == values


def _as_lists(found: tuple[list, np.ndarray]) -> tuple[list, list]:
    return found[0], found[1].tolist()


def test_column_values_are_the_frames_own_read_only():
    frame = pd.DataFrame(
        {"x": np.arange(4.0), "k": np.arange(4, dtype=np.int8), "g": list("abab")}
    ).astype({"g": "str"})
    cols = _Columns(frame)
    for col in frame.columns:
        np.testing.assert_array_equal(np.asarray(cols[col]), frame[col].to_numpy())
        assert cols[col].dtype == frame[col].dtype
    assert not cols["x"].flags.writeable  # nothing writes through to the user's data
    assert np.shares_memory(cols["x"], frame["x"].to_numpy())
    assert cols.series("g") is cols.series("g")


def test_a_subclass_lookup_goes_through_the_series():
    frame = load_dataset("sleepstudy")

    class Doubled(pd.DataFrame):
        def __getitem__(self, key):
            out = super().__getitem__(key)
            return out * 2 if key == "days" else out

    cols = _Columns(Doubled(frame))
    np.testing.assert_array_equal(cols["days"], frame["days"].to_numpy() * 2)


@pytest.mark.parametrize(
    "formula",
    [
        "reaction ~ 1 + days + (1 + days|subj)",
        "log(reaction) ~ 1 + C(days) + (days|subj)",
    ],
)
def test_design_without_pandas_column_accessor_is_the_same(monkeypatch, formula):
    # the column reader uses a pandas accessor that is not public API; should a
    # pandas release drop it, the Series route must give the same design
    from sklmixed.formula import _design
    from sklmixed.formula._design import build_design

    frame = load_dataset("sleepstudy")
    frame["subj"] = frame["subj"].astype(object)
    fast = build_design(formula, frame)
    monkeypatch.setattr(_design, "_COLUMN_ARRAY", None)
    slow = build_design(formula, frame)
    for a, b in [(fast.X, slow.X), (fast.y, slow.y)]:
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert fast.coef_names == slow.coef_names
    for s, t in zip(fast.reterms, slow.reterms):
        assert s.levels == t.levels and np.array_equal(s.refs, t.refs)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["a", None, "b", None], dtype="str"),
        pd.concat([pd.Series(["a", None], dtype="str"), pd.Series([None], dtype="str")]),
        pd.Series(["a", None], dtype="string[python]"),
        pd.Series([1.0, np.nan, np.inf, -np.inf]),
        pd.Series([1, None], dtype="Int64"),
        pd.Series([1, 2], dtype=np.int8),
        pd.Series([True, False]),
        pd.Series(["a", None, np.nan], dtype=object),
    ],
)
def test_missing_counts_of_values_and_series(values):
    from sklmixed.formula._design import missing_count

    want = int(values.isna().sum()) + int(
        np.isinf(values.to_numpy()).sum() if values.dtype.kind == "f" else 0
    )
    assert missing_count(values) == want
    assert missing_count(_Columns(values.to_frame("v"))["v"]) == want


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int64, np.float32, np.float64, bool, "Int64", "double[pyarrow]"]
)
def test_plain_columns_enter_x_and_z_as_their_floats(dtype):
    frame = load_dataset("sleepstudy")
    frame = frame.assign(d=(frame["days"] > 4) if dtype is bool else frame["days"].astype(dtype))
    design = build_design("reaction ~ 1 + d + (1 + d|subj)", frame)
    want = frame["d"].to_numpy(dtype=float)
    for matrix in (design.X, design.reterms[0].z):
        assert matrix.flags.c_contiguous and matrix.dtype == np.float64
        np.testing.assert_array_equal(matrix, np.column_stack([np.ones(len(want)), want]))
