"""Offsets (formula terms and the routable parameter) and the families with a
dispersion as estimators: equivalences, scikit-learn plumbing and bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.model_selection import GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError, FormulaError

DATA = Path(__file__).resolve().parents[1] / "reference" / "lme4" / "data"
OWLS = "SiblingNegotiation ~ 1 + FoodTreatment + ArrivalTime + (1|Nest)"
OWLS_OFFSET = OWLS.replace("(1|Nest)", "offset(log(BroodSize)) + (1|Nest)")


def owls() -> pd.DataFrame:
    return pd.read_csv(DATA / "owls.csv")


def gamma_data() -> pd.DataFrame:
    return pd.read_csv(DATA / "gamma.csv")


# ------------------------------------------------------------------ offsets


def test_lmm_offset_is_subtracted_from_the_response():
    df = load_dataset("sleepstudy")
    df["o"] = np.sin(np.arange(df.shape[0]))
    with_offset = MixedLMRegressor(formula="reaction ~ 1 + days + offset(o) + (1 + days|subj)")
    with_offset.fit(df)
    shifted = df.assign(reaction=df["reaction"] - df["o"])
    plain = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(shifted)
    np.testing.assert_allclose(with_offset.coef_, plain.coef_, rtol=1e-9)
    assert with_offset.objective_ == pytest.approx(plain.objective_, rel=1e-12)
    # predictions and fitted values include the offset of the rows
    np.testing.assert_allclose(with_offset.predict(df), plain.predict(df) + df["o"], rtol=1e-9)
    np.testing.assert_allclose(
        with_offset.fitted_values() + with_offset.residuals(), df["reaction"]
    )
    # the parameter form gives the same fit; predict takes the new rows' offsets
    param = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)")
    param.fit(df, offset=df["o"])
    np.testing.assert_allclose(param.coef_, plain.coef_, rtol=1e-9)
    np.testing.assert_allclose(param.predict(df, offset=df["o"]), with_offset.predict(df))
    np.testing.assert_allclose(param.predict(df), plain.predict(df))  # default offset 0
    assert param.score(df, df["reaction"], offset=df["o"]) == pytest.approx(
        with_offset.score(df, df["reaction"])
    )


def test_formula_and_parameter_offsets_add_up():
    df = owls()
    half = np.log(df["BroodSize"]) / 2
    both = MixedGLMRegressor(
        formula=OWLS.replace("(1|Nest)", "offset(log(BroodSize)/2) + (1|Nest)")
    )
    both.fit(df, offset=half)
    one = MixedGLMRegressor(formula=OWLS_OFFSET).fit(df)
    np.testing.assert_allclose(both.coef_, one.coef_, rtol=1e-7)
    np.testing.assert_allclose(both.predict(df, offset=half), one.predict(df), rtol=1e-7)


def test_constant_offset_shifts_the_intercept_of_a_log_link_model():
    df = owls()
    a = MixedGLMRegressor(formula=OWLS, family="negative_binomial").fit(df)
    b = MixedGLMRegressor(formula=OWLS, family="negative_binomial").fit(
        df, offset=np.full(df.shape[0], 1.5)
    )
    # the same optimum reached along another path: equal to a small fraction of
    # a standard error
    assert np.all(np.abs(b.coef_ + [1.5, 0, 0] - a.coef_) < 1e-3 * a.stderror_)
    assert b.dispersion_ == pytest.approx(a.dispersion_, rel=1e-4)
    assert b.loglik_ == pytest.approx(a.loglik_, abs=1e-6)


def test_classifier_takes_an_offset():
    df = load_dataset("contra")
    off = np.where(df["urban"] == "Y", 0.3, -0.3)
    clf = MixedGLMClassifier(formula="use ~ 1 + age + (1|dist)", fast=True).fit(df, offset=off)
    eta = clf.decision_function(df, offset=off)
    np.testing.assert_allclose(clf.predict_proba(df, offset=off)[:, 1], 1 / (1 + np.exp(-eta)))
    assert 0.5 < clf.score(df, df["use"], offset=off) < 1


def test_offset_routes_through_pipeline_and_cross_validation():
    df = owls()
    off = np.log(df["BroodSize"].to_numpy(float))
    cv = GroupKFold(3)
    with config_context(enable_metadata_routing=True):
        est = MixedGLMRegressor(formula=OWLS, family="negative_binomial", fast=True)
        est = est.set_fit_request(offset=True).set_score_request(offset=True)
        pipe = Pipeline([("identity", FunctionTransformer()), ("model", est)])
        routed = cross_validate(
            pipe,
            df,
            df["SiblingNegotiation"],
            cv=cv,
            params={"offset": off, "groups": df["Nest"]},
        )
    manual = []
    for train, test in cv.split(df, groups=df["Nest"]):
        m = MixedGLMRegressor(formula=OWLS, family="negative_binomial", fast=True)
        m.fit(df.iloc[train], offset=off[train])
        manual.append(m.score(df.iloc[test], df["SiblingNegotiation"].iloc[test], offset=off[test]))
    np.testing.assert_allclose(routed["test_score"], manual, rtol=1e-10)


# ---------------------------------------------------------------- families


def test_case_weights_equal_repeated_rows():
    df = owls()
    w = np.where(np.arange(df.shape[0]) % 3 == 0, 2.0, 1.0)
    repeated = pd.concat([df, df[w == 2]], ignore_index=True)
    kw = dict(formula=OWLS_OFFSET, family="negative_binomial")
    weighted = MixedGLMRegressor(**kw).fit(df, sample_weight=w)
    rep = MixedGLMRegressor(**kw).fit(repeated)
    # the same likelihood, optimized along other paths: equal to 1e-3 of a
    # standard error
    assert np.all(np.abs(weighted.coef_ - rep.coef_) < 1e-3 * rep.stderror_)
    assert weighted.dispersion_ == pytest.approx(rep.dispersion_, rel=1e-4)
    assert weighted.loglik_ == pytest.approx(rep.loglik_, abs=1e-6)


def test_fast_is_close_to_the_joint_optimum_and_not_below_it():
    df = owls()
    full = MixedGLMRegressor(formula=OWLS_OFFSET, family="negative_binomial").fit(df)
    fast = MixedGLMRegressor(formula=OWLS_OFFSET, family="negative_binomial", fast=True).fit(df)
    assert full.objective_ - 1e-6 <= fast.objective_ <= full.objective_ + 0.5
    np.testing.assert_allclose(fast.coef_, full.coef_, rtol=0.02)
    assert fast.dispersion_ == pytest.approx(full.dispersion_, rel=0.02)


def test_quadrature_for_a_single_scalar_term_only():
    df = gamma_data()
    lap = MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family="gamma").fit(df)
    agq = MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family="gamma", nagq=9).fit(df)
    assert "(nAGQ = 9)" in str(agq.summary())
    assert abs(agq.loglik_ - lap.loglik_) < 0.5  # the Laplace approximation is good here
    np.testing.assert_allclose(agq.coef_, lap.coef_, rtol=0.01)
    slope = pd.read_csv(DATA / "gamma_slope.csv")
    with pytest.raises(ValueError, match="single scalar random-effects term"):
        MixedGLMRegressor(formula="y ~ 1 + x + (1 + x|g)", family="gamma", nagq=5).fit(slope)


def test_score_is_d2_with_the_fitted_family_deviance():
    df = owls()
    m = MixedGLMRegressor(formula=OWLS_OFFSET, family="negative_binomial").fit(df)
    y = df["SiblingNegotiation"].to_numpy(float)
    mu = m.predict(df)
    k = m.dispersion_

    def dev(mu):
        mu = np.broadcast_to(mu, y.shape)
        from scipy.special import xlogy

        return np.sum(2 * (xlogy(y, y / mu) - (y + k) * np.log((y + k) / (mu + k))))

    assert m.score(df, y) == pytest.approx(1 - dev(mu) / dev(y.mean()), rel=1e-10)
    g = MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family="gamma").fit(gamma_data())
    assert 0 < g.score(gamma_data(), gamma_data()["y"]) < 1


def test_pickle_roundtrip_rebuilds_the_problem_with_offset_and_dispersion():
    df = owls()
    m = MixedGLMRegressor(formula=OWLS, family="negative_binomial").fit(
        df, offset=np.log(df["BroodSize"])
    )
    m2 = pickle.loads(pickle.dumps(m))
    assert "_problem" not in m2.__dict__
    np.testing.assert_allclose(m2.condvar()["Nest"], m.condvar()["Nest"], rtol=1e-8)
    np.testing.assert_array_equal(m2.predict(df), m.predict(df))
    assert m2.dispersion_ == m.dispersion_


def test_families_without_dispersion_report_none():
    df = owls()
    m = MixedGLMRegressor(formula=OWLS_OFFSET).fit(df)
    assert m.dispersion_ is None and m.sigma_ is None
    assert "Shape" not in str(m.summary()) and "Dispersion" not in str(m.summary())


def test_inverse_gaussian_and_identity_links_fit():
    df = pd.read_csv(DATA / "invgauss.csv")
    m = MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family="inverse_gaussian").fit(df)
    assert m.converged_ and m.dispersion_ > 0
    g = MixedGLMRegressor(formula="y ~ 1 + (1|g)", family="gamma", link="identity")
    g.fit(gamma_data())
    assert g.coef_[0] == pytest.approx(gamma_data()["y"].mean(), rel=0.2)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "family, response, message",
    [
        ("negative_binomial", -1.0, r"non-negative integer counts; found \[-1.0\]"),
        ("negative_binomial", 2.5, r"integer counts; found \[2.5\]"),
        ("gamma", 0.0, r"gamma response must be positive; found 1 values <= 0"),
        ("inverse_gaussian", -3.0, r"inverse_gaussian response must be positive"),
    ],
)
def test_response_outside_the_family_support(family, response, message):
    df = gamma_data()
    df["y"] = df["y"].round(0) + 1  # positive integers: valid for every family
    df.loc[5, "y"] = response
    with pytest.raises(DataError, match=message):
        MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family=family).fit(df)


@pytest.mark.parametrize(
    "offset, message",
    [
        (np.zeros(10), "offset has 10 values but X has 599 rows"),
        (np.r_[np.nan, np.zeros(598)], "offset has 1 NaN or infinite value .first at row 0"),
        (np.r_[np.zeros(598), -np.inf], "first at row 598"),
        (np.array(["a"] * 599), "offset must be numeric"),
        (np.zeros((599, 2)), "offset must be one-dimensional"),
    ],
)
@pytest.mark.parametrize("estimator", [MixedGLMRegressor, MixedLMRegressor])
def test_bad_offset(offset, message, estimator):
    with pytest.raises(DataError, match=message):
        estimator(formula=OWLS).fit(owls(), offset=offset)


def test_bad_offset_in_formula_or_predict():
    df = owls()
    zero = df.assign(BroodSize=np.where(np.arange(599) == 7, 0, df["BroodSize"]))
    with pytest.raises(DataError, match=r"offset\(log\(BroodSize\)\) has 1 NaN or infinite"):
        MixedGLMRegressor(formula=OWLS_OFFSET).fit(zero)
    with pytest.raises(FormulaError, match=r"offset\(Nest\): column 'Nest' is not numeric"):
        MixedGLMRegressor(formula=OWLS.replace("(1|Nest)", "offset(Nest) + (1|Nest)")).fit(df)
    m = MixedGLMRegressor(formula=OWLS_OFFSET).fit(df)
    with pytest.raises(DataError, match="first at row 7"):
        m.predict(zero)
    with pytest.raises(DataError, match="offset has 3 values but X has 599 rows"):
        m.predict(df, offset=[0, 1, 2])
