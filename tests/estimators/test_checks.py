"""Input checks of the estimators (sklmixed/estimators/_checks.py): responses,
labels and weights validated as scikit-learn validates them, leaked responses,
and new data whose column types changed since fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import DataConversionWarning

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError, PerfectFitWarning, UnseenLevelsWarning

SLEEP1 = "reaction ~ 1 + days + (1|subj)"


def sleep():
    return load_dataset("sleepstudy")


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# Each estimator with a formula and data it fits, and the response as an array.
def _lmm():
    df = sleep()
    return MixedLMRegressor(formula=SLEEP1), df, df["reaction"].to_numpy()


def _clf():
    df = load_dataset("verbagg").head(1200)
    return MixedGLMClassifier(formula="r2 ~ 1 + anger + (1|item)", fast=True), df, df["r2"]


def _pois():
    df = sleep().assign(y=lambda d: (d["days"] + d["subj"].str[-1].astype(int)) % 4)
    return MixedGLMRegressor(formula="y ~ 1 + days + (1|subj)", fast=True), df, df["y"]


CASES = {"lmm": _lmm, "classifier": _clf, "poisson": _pois}


# --------------------------------------------------------------- response y


@pytest.mark.parametrize("case", list(CASES))
def test_y_shapes_as_scikit_learn(case):
    est, df, y = CASES[case]()
    y = np.asarray(y)
    with pytest.raises(DataError, match=r"y should be a 1d array, got an array of shape"):
        est.fit(df, np.column_stack([y, y]))
    with pytest.raises(DataError, match=f"y has 10 values but X has {len(df)} rows"):
        est.fit(df, y[:10])
    # a column vector is raveled, with scikit-learn's warning, to the same fit
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        col = _quiet_except(DataConversionWarning, est.fit, df, y.reshape(-1, 1)).objective_
    assert col == _quiet(est.fit, df, y).objective_


def _quiet_except(category, fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", category)
        return fn(*args)


MISSING = {
    "nan": lambda y: (
        np.r_[np.nan, y[1:].astype(float)]
        if y.dtype.kind in "iuf"
        else np.array([np.nan, *y[1:].tolist()], dtype=object)
    ),
    "None": lambda y: np.array([None, *y[1:].tolist()], dtype=object),
    "pd.NA": lambda y: np.array([pd.NA, *y[1:].tolist()], dtype=object),
    "pd.NaT": lambda y: np.array([pd.NaT, *y[1:].tolist()], dtype=object),
    "nullable": lambda y: (
        pd.array([None, *y[1:].tolist()], dtype="Float64")
        if y.dtype.kind in "iuf"
        else pd.array([None, *y[1:].tolist()], dtype="string")
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", list(MISSING))
def test_missing_values_in_y_of_every_kind(case, kind):
    est, df, y = CASES[case]()
    bad = MISSING[kind](np.asarray(y))
    with pytest.raises(DataError, match="y has 1 missing value .*at row 0"):
        est.fit(df, bad)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["None", "pd.NA", "nullable"])
def test_missing_values_in_the_response_column(case, kind):
    est, df, y = CASES[case]()
    col = est.formula.split("~")[0].strip()
    df = df.assign(**{col: MISSING[kind](np.asarray(y))})
    with pytest.raises(DataError, match=f"'{col}' has 1 missing"):
        est.fit(df)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", list(MISSING))
def test_missing_values_in_y_with_array_input(case, kind):
    est, df, y = CASES[case]()
    X = np.random.default_rng(0).normal(size=(len(df), 2))
    with pytest.raises(DataError, match="y has 1 missing value .*at row 0"):
        type(est)().fit(X, MISSING[kind](np.asarray(y)))


# ----------------------------------------------------------- sample weights


@pytest.mark.parametrize("case", list(CASES))
def test_sample_weight_shapes_and_missing_values(case):
    est, df, _ = CASES[case]()
    n = len(df)
    for w, message in [
        (np.ones(n + 1), f"{n + 1} values for {n} observations"),
        (np.ones((n, 1)), rf"1D array or scalar; sample_weight has shape \({n}, 1\)"),
        (np.ones((n // 2, 2)), "1D array or scalar"),
        (np.r_[np.nan, np.ones(n - 1)], "1 missing .* at row 0"),
        (np.array([None, *[1.0] * (n - 1)], dtype=object), "1 missing"),
        (np.array([pd.NaT, *[1.0] * (n - 1)], dtype=object), "1 missing"),
        (pd.array([None, *[1.0] * (n - 1)], dtype="Float64"), "1 missing"),
        (pd.Series([1.0] * (n - 1) + [pd.NA], dtype="Float64"), f"at row {n - 1}"),
        (np.r_[np.inf, np.ones(n - 1)], "infinite"),
        (np.r_[-1.0, np.ones(n - 1)], "negative"),
        (np.array(["a"] * n, dtype=object), "must be numeric"),
    ]:
        with pytest.raises(DataError, match=message):
            est.fit(df, sample_weight=w)


def test_scalar_sample_weight_is_a_weight_for_every_row():
    df = sleep()
    a = MixedLMRegressor(formula=SLEEP1).fit(df, sample_weight=1.0)
    b = MixedLMRegressor(formula=SLEEP1).fit(df)
    assert a.objective_ == b.objective_


# ------------------------------------------------------ zero-weight rows


def test_a_label_met_only_in_zero_weight_rows_is_no_class():
    df = load_dataset("verbagg").head(1200)
    labels = df["r2"].to_numpy(dtype=object).copy()
    labels[:5] = "Maybe"
    w = np.r_[np.zeros(5), np.ones(len(df) - 5)]
    est = MixedGLMClassifier(formula="r2 ~ 1 + anger + (1|item)", fast=True)
    m = est.fit(df.assign(r2=labels), sample_weight=w)
    assert m.classes_.tolist() == ["N", "Y"]
    ref = MixedGLMClassifier(formula="r2 ~ 1 + anger + (1|item)", fast=True).fit(df.iloc[5:])
    np.testing.assert_allclose(m.coef_, ref.coef_, rtol=1e-8)
    assert m.nobs_ == ref.nobs_ == len(df) - 5
    # two labels are needed among the rows that count
    one = np.where(df["r2"] == "Y", 0.0, 1.0)
    with pytest.raises(DataError, match="two classes .*positive sample_weight.*found 1 class"):
        est.fit(df, sample_weight=one)


@pytest.mark.parametrize("case", list(CASES))
def test_zero_weight_rows_count_nowhere(case):
    est, df, _ = CASES[case]()
    k = 10
    w = np.r_[np.zeros(k), np.ones(len(df) - k)]
    weighted = _quiet(est.fit, df, sample_weight=w)
    stats = {a: getattr(weighted, a) for a in ("nobs_", "dof_", "aic_", "aicc_", "bic_")}
    dropped = _quiet(est.fit, df.iloc[k:].reset_index(drop=True))
    assert stats["nobs_"] == dropped.nobs_ == len(df) - k
    assert stats["dof_"] == dropped.dof_
    for a in ("aic_", "aicc_", "bic_"):
        assert stats[a] == pytest.approx(getattr(dropped, a), rel=1e-9)


def test_constant_response_among_the_rows_that_count():
    df = sleep()
    y = np.where(np.arange(180) < 10, 1.0, 2.0)
    w = np.r_[np.zeros(10), np.ones(170)]
    with pytest.raises(DataError, match="response is constant"):
        MixedLMRegressor(formula=SLEEP1).fit(df, y, sample_weight=w)


# ------------------------------------------------------ leaked responses


def test_response_left_among_the_features_is_named():
    df = sleep()
    with pytest.raises(DataError, match="'reaction' is the response"):
        MixedLMRegressor(groups="subj").fit(df, df["reaction"])
    # a rescaled copy (a StandardScaler in a pipeline) is found too
    scaled = df.assign(r=(df["reaction"] - 300) / 56)
    with pytest.raises(DataError, match="'r' is the response or a linear function"):
        MixedLMRegressor(formula="reaction ~ 1 + days + r + (1|subj)").fit(scaled)
    counts = df.assign(y=np.arange(180) % 5)
    with pytest.raises(DataError, match="'y' is the response"):
        MixedGLMRegressor(groups="subj").fit(counts[["days", "subj", "y"]], counts["y"])
    vb = load_dataset("verbagg").head(1200)
    vb = vb.assign(yes=(vb["r2"] == "Y").astype(float))
    with pytest.raises(DataError, match="'yes' is the response"):
        MixedGLMClassifier(groups="item", fast=True).fit(vb[["anger", "item", "yes"]], vb["r2"])


def test_exact_fit_by_several_columns_is_an_error_with_random_effects():
    df = sleep().assign(x=np.arange(180) % 7)
    df["y"] = 2.0 * df["days"] - 3.0 * df["x"] + 1.0
    with pytest.raises(DataError, match="reproduce the response exactly"):
        MixedLMRegressor(formula="y ~ 1 + days + x + (1|subj)").fit(df)


def test_exact_fit_without_random_effects_warns_and_gives_the_exact_coefficients():
    X = np.column_stack([np.arange(10.0), np.arange(10.0) ** 2])
    y = 1.0 + 2.0 * X[:, 0] - 0.5 * X[:, 1]
    with pytest.warns(PerfectFitWarning, match="reproduce the response exactly"):
        m = MixedLMRegressor().fit(X, y)
    np.testing.assert_allclose(m.coef_, [1.0, 2.0, -0.5], atol=1e-9)
    np.testing.assert_allclose(m.predict(X), y, atol=1e-9)


# --------------------------------------------- new data with changed types


@pytest.mark.parametrize(
    "formula",
    [
        SLEEP1,  # plain columns
        "reaction ~ 1 + days + I(days**2) + (1|subj)",  # formulaic
        "reaction ~ 1 + days + (1 + days|subj)",  # random slope
    ],
)
def test_numbers_read_back_as_text_predict_the_same(formula):
    df = sleep()
    m = MixedLMRegressor(formula=formula).fit(df)
    new = df.assign(days=df["days"] + 0.5)
    expected = m.predict(new)
    as_text = new.assign(days=new["days"].astype(str))  # "0.5", "1.5", ...
    np.testing.assert_allclose(m.predict(as_text), expected, rtol=1e-12)
    as_object = new.assign(days=new["days"].astype(str).astype(object))
    np.testing.assert_allclose(m.predict(as_object), expected, rtol=1e-12)
    as_category = new.assign(days=new["days"].astype("category"))
    np.testing.assert_allclose(m.predict(as_category), expected, rtol=1e-12)
    with pytest.raises(DataError, match="'days' was numeric in fit .*'abc'"):
        m.predict(df.assign(days=["abc"] + ["1"] * 179))
    with pytest.raises(DataError, match="'days' was numeric in fit .*2020-01-01"):
        m.predict(df.assign(days=pd.Timestamp("2020-01-01")))


def test_csv_round_trip_predicts_the_same(tmp_path):
    df = sleep()
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    path = tmp_path / "new.csv"
    df.to_csv(path, index=False)
    back = pd.read_csv(path, dtype=str)  # every column as text
    np.testing.assert_allclose(m.predict(back), m.predict(df), rtol=1e-12)


def test_grouping_codes_int_at_fit_and_text_at_predict_and_back():
    df = sleep()
    as_int = df.assign(subj=df["subj"].str[1:].astype("int64"))
    as_text = df.assign(subj=df["subj"].str[1:])
    m_int = MixedLMRegressor(formula=SLEEP1).fit(as_int)
    m_text = MixedLMRegressor(formula=SLEEP1).fit(as_text)
    expected = m_int.predict(as_int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenLevelsWarning)
        np.testing.assert_allclose(m_int.predict(as_text), expected, rtol=1e-12)
        np.testing.assert_allclose(m_text.predict(as_int), expected, rtol=1e-12)
        np.testing.assert_allclose(m_int.predict(as_int.astype({"subj": "int16"})), expected)
        np.testing.assert_allclose(m_int.predict(as_int.astype({"subj": "float64"})), expected)
        small = as_int.assign(days=as_int["days"].astype("int64"))
        np.testing.assert_allclose(m_int.predict(small), expected)


def test_categorical_fixed_effect_int_at_fit_text_at_predict():
    df = sleep()
    m = MixedLMRegressor(formula=SLEEP1, contrasts={"days": "dummy"}).fit(df)
    expected = m.predict(df)
    np.testing.assert_allclose(m.predict(df.assign(days=df["days"].astype(str))), expected)
    text = df.assign(days=df["days"].astype(str))
    mt = MixedLMRegressor(formula=SLEEP1).fit(text)
    np.testing.assert_allclose(mt.predict(df), mt.predict(text))


def test_formula_none_and_classifier_predict_through_changed_types():
    df = sleep()
    m = MixedLMRegressor(groups="subj").fit(df[["days", "subj"]], df["reaction"])
    new = df[["days", "subj"]].assign(days=df["days"].astype(str))
    np.testing.assert_allclose(m.predict(new), m.predict(df[["days", "subj"]]))
    vb = load_dataset("verbagg").head(1200)
    clf = MixedGLMClassifier(formula="r2 ~ 1 + anger + btype + (1|item)", fast=True).fit(vb)
    np.testing.assert_allclose(
        clf.predict_proba(vb.assign(anger=vb["anger"].astype(str))), clf.predict_proba(vb)
    )


def test_every_level_unseen_warns():
    df = sleep()
    m = MixedLMRegressor(formula=SLEEP1).fit(df)
    codes = df.assign(subj=df["subj"].str[1:].astype(int))  # 308 for "S308"
    with pytest.warns(UnseenLevelsWarning, match=r"'subj' .*new: \['308'.*fit: \['S308'"):
        pred = m.predict(codes)
    np.testing.assert_allclose(pred, m.coef_[0] + m.coef_[1] * df["days"])
    with warnings.catch_warnings():  # some levels seen: no warning
        warnings.simplefilter("error", UnseenLevelsWarning)
        m.predict(df.assign(subj=np.where(df.index < 10, "new", df["subj"])))


def test_array_input_numbers_as_text_at_predict():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    y = X[:, 0] + rng.normal(size=40)
    m = MixedLMRegressor().fit(X, y)
    np.testing.assert_allclose(m.predict(X.astype(str)), m.predict(X), rtol=1e-12)
    with pytest.raises(DataError, match="X must be numeric"):
        m.predict(np.array([["a", "1"]]))
    with pytest.raises(DataError, match="X has 3 features"):
        m.predict(np.ones((2, 3)))


def test_predict_never_modifies_the_new_data():
    df = sleep()
    m = MixedLMRegressor(formula=SLEEP1).fit(df)
    new = df.assign(days=df["days"].astype(str), subj=df["subj"].str[1:].astype(int))
    before = new.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenLevelsWarning)
        m.predict(new)
    pd.testing.assert_frame_equal(new, before)


def test_zero_weight_rows_leave_the_same_summary_as_removed_rows():
    """Weighting a whole subject zero is removing it: the report is the same, the
    number of levels of the grouping factor included."""
    df = sleep()
    w = np.where(df["subj"] == "S308", 0.0, 1.0)
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    weighted = MixedLMRegressor(formula=formula).fit(df, sample_weight=w)
    removed = MixedLMRegressor(formula=formula).fit(df[w > 0])
    assert str(weighted.summary()) == str(removed.summary())
    assert "levels of grouping factors: 17" in str(weighted.summary())
    vb = load_dataset("verbagg")
    w = np.where(vb["item"] == vb["item"].iloc[0], 0.0, 1.0)
    formula = "r2 ~ 1 + anger + (1|item)"
    weighted = MixedGLMClassifier(formula=formula, fast=True).fit(vb, sample_weight=w)
    removed = MixedGLMClassifier(formula=formula, fast=True).fit(vb[w > 0])
    assert str(weighted.summary()) == str(removed.summary())
