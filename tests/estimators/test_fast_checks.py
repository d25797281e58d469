"""The estimators' input shortcuts agree with the general routes they replace."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.estimators._checks import (
    _far_from_fits,
    _pinv_symmetric,
    check_exact_fit,
    check_fixed_effects,
    check_response_not_among_features,
    column_kinds,
)
from sklmixed.exceptions import DataError, PerfectFitWarning


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


# ------------------------------------------- the fixed effects' screen


def _report(check):
    """What ``check()`` raises or warns, as text (None if nothing)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectFitWarning)
            check()
    except (DataError, PerfectFitWarning) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _full_checks(X, y, random_effects=True, names=None):
    """What check_response_not_among_features and check_exact_fit report."""
    names = names or [f"x{j}" for j in range(X.shape[1])]

    def both():
        if random_effects:
            check_response_not_among_features(X, names, y, None, affine=True)
        check_exact_fit(X, names, y, None, random_effects)

    return _report(both)


def _hard_case(rng):
    """Data near the checks' thresholds: copies of columns, exact and nearly exact
    combinations, columns and responses far from zero against their spread."""
    n = int(rng.choice([3, 10, 40, 300]))
    p = int(rng.integers(1, 5))
    X = np.ones((n, p))
    for j in range(1, p):
        centre = 10.0 ** rng.uniform(-3, 9) * rng.choice([-1, 0, 1])
        spread = 10.0 ** rng.uniform(-6, 3)
        X[:, j] = centre + spread * (
            rng.standard_normal(n) if rng.random() < 0.5 else rng.integers(0, 3, n)
        )
        if j > 1 and rng.random() < 0.3:  # nearly collinear with the previous column
            X[:, j] = X[:, j - 1] * 1.5 + 10.0 ** rng.uniform(-16, 0) * rng.standard_normal(n)
    noise = 10.0 ** rng.uniform(-17, 0) * rng.choice([0.0, 1.0])
    kind = rng.integers(3)
    if kind == 0:  # a combination of the columns, nearly exact
        mean = X @ (rng.standard_normal(p) * 10.0 ** rng.uniform(-3, 3, p))
    elif kind == 1:  # a copy of one column, shifted and rescaled
        mean = rng.uniform(-5, 5) * X[:, rng.integers(p)] + 10.0 ** rng.uniform(-3, 9)
    else:  # unrelated
        mean = 10.0 ** rng.uniform(-3, 9) + np.zeros(n)
        noise = 1.0
    y = mean + noise * np.abs(mean).max() * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("seed", range(4))
def test_the_screen_never_passes_data_the_checks_report(seed):
    rng = np.random.default_rng(seed)
    passed = reported = 0
    for _ in range(1500):
        X, y = _hard_case(rng)
        if np.ptp(y) == 0:
            continue
        report = _full_checks(X, y)
        reported += report is not None
        if _far_from_fits(X, y):
            passed += 1
            assert report is None, report
    assert passed > 100 and reported > 100  # both sides of the screen are exercised


@pytest.mark.parametrize(
    "name, formula",
    [
        ("dyestuff2", "yield ~ 1 + (1|batch)"),
        ("penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
        ("sleepstudy", "reaction ~ 1 + days + (1 + days|subj)"),
    ],
)
def test_the_screen_passes_the_usual_data(name, formula):
    design, y = MixedLMRegressor(formula=formula)._design(load_dataset(name), None)
    assert _far_from_fits(design.X, np.asarray(y, dtype=float))


def test_the_screen_leaves_what_it_cannot_judge_to_the_checks():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(50), rng.standard_normal(50)])
    y = rng.standard_normal(50)
    assert _far_from_fits(X, y)
    assert not _far_from_fits(X[:, ::-1].copy(), y)  # no intercept first
    assert not _far_from_fits(X, 2.0 * X[:, 1] + 1.0)  # y reproduced
    assert not _far_from_fits(X, y * 1e120)  # beyond the bounds' range
    assert not _far_from_fits(np.column_stack([X, 2000 + X[:, 1] * 1e-4]), y)  # ill-conditioned


@pytest.mark.parametrize(
    "y_of, random_effects, reported",
    [
        (lambda X, r: X[:, 1].copy(), True, True),  # the response among the features
        (lambda X, r: 3.0 * X[:, 1] - 7.0, True, True),  # a linear function of it
        (lambda X, r: X[:, 1] - 2.0 * X[:, 2], True, True),  # an exact combination
        (lambda X, r: X[:, 1] - 2.0 * X[:, 2], False, True),  # the same, warned
        (lambda X, r: r, True, False),  # random numbers: nothing to report
    ],
)
def test_the_combined_check_reports_as_the_two_checks(y_of, random_effects, reported):
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(30), rng.standard_normal(30), rng.integers(0, 4, 30)])
    y = y_of(X, rng.standard_normal(30))
    names = ["(Intercept)", "a", "b"]
    got = _report(lambda: check_fixed_effects(X, names, y, None, random_effects))
    assert got == _full_checks(X, y, random_effects, names)
    assert (got is not None) == reported


def test_copies_of_the_response_are_found_beyond_the_first_row():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 40).astype(float)
    X = np.column_stack([np.ones(40), y, y[::-1], np.r_[y[:1], 1 - y[1:]]])
    with pytest.raises(DataError, match="'b' is the response"):
        check_response_not_among_features(X, ["(Intercept)", "b", "c", "d"], y, None, affine=False)


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
