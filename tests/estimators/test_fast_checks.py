"""The estimators' input shortcuts agree with the general routes they replace."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.estimators._checks import _pinv_symmetric, column_kinds


@pytest.mark.parametrize("p", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("dependent", [False, True])
def test_symmetric_pseudo_inverse_is_numpys(p, dependent):
    rng = np.random.default_rng(p)
    X = rng.standard_normal((40, p))
    if dependent and p > 1:
        X[:, -1] = 2 * X[:, 0] - X[:, 1] * (p > 2)
    G = X.T @ X
    d = np.sqrt(np.diag(G))
    Gs = G / np.outer(d, d)
    want = np.linalg.pinv(Gs, rcond=1e-12, hermitian=True)
    np.testing.assert_allclose(_pinv_symmetric(Gs, 1e-12), want, rtol=0, atol=1e-13)


def test_symmetric_pseudo_inverse_of_a_zero_column():
    G = np.diag([1.0, 0.0])
    np.testing.assert_array_equal(_pinv_symmetric(G, 1e-12), np.diag([1.0, 0.0]))


def test_column_kinds_from_looked_up_columns_as_from_the_frame():
    frame = load_dataset("sleepstudy").assign(c=lambda d: pd.Categorical(d["subj"]))
    columns = ["reaction", "days", "subj", "c", "absent"]
    fetched = {c: frame[c] for c in ["days", "subj"]}
    assert column_kinds(frame, columns, fetched) == column_kinds(frame, columns)


@pytest.mark.parametrize("dtype", ["str", object, "string"])
def test_feature_names_of_text_labels(dtype):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"y": rng.normal(size=40), "x": rng.normal(size=40), "g": np.repeat(list("abcd"), 10)}
    )
    frame.columns = pd.Index(["y", "x", "g"], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixedLMRegressor(formula="y ~ 1 + x + (1|g)").fit(frame)
    assert list(est.feature_names_in_) == ["y", "x", "g"]
    assert est.feature_names_in_.dtype == object


def test_no_feature_names_for_integer_labels():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({0: rng.normal(size=40), 1: np.repeat([0.0, 1.0, 2.0, 3.0], 10)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixedLMRegressor(groups=1).fit(X, rng.normal(size=40))
    assert not hasattr(est, "feature_names_in_")
    assert est.n_features_in_ == 2


@pytest.mark.parametrize(
    "labels",
    [
        pd.Index(["y", "x", "g"], dtype="str"),
        pd.Index(["y", "é", "中"], dtype="string[pyarrow]"),
        pd.Index(["y", "x"], dtype=object),
        pd.Index(["y", "x"], dtype="string[python]"),
        pd.Index([], dtype="str"),
    ],
)
def test_feature_names_are_numpys_object_array(labels):
    from sklmixed.estimators._checks import feature_names

    got, want = feature_names(labels), np.asarray(labels, dtype=object)
    assert got.dtype == object and got.shape == want.shape
    assert [(type(v), v) for v in got] == [(type(v), v) for v in want]


@pytest.mark.parametrize(
    "y",
    [
        np.array([1, 2, 3], dtype=np.int8),
        np.array([True, False, True]),
        np.array([1.5, 2.5, 3.5], dtype=np.float32),
        np.array([1.5, 2.5, 3.5]),
        np.array(["1.5", "2"], dtype=object),
    ],
)
def test_numeric_response_of_numbers_is_their_floats(y):
    from sklmixed.estimators._checks import numeric_response

    got = numeric_response(y, "the response")
    assert got.dtype == np.float64 and got.flags.writeable and not np.shares_memory(got, y)
    np.testing.assert_array_equal(got, y.astype(float))


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([1.0, np.nan, 2.0]), "missing value"),
        (np.array([1.0, np.inf, 2.0]), "NaN or infinite"),
    ],
)
def test_numeric_response_names_missing_and_infinite_values(y, message):
    from sklmixed.estimators._checks import numeric_response
    from sklmixed.exceptions import DataError

    with pytest.raises(DataError, match=message):
        numeric_response(y, "the response")
