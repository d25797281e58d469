"""Prediction uncertainty against independent dense computations.

LMM: the standard error of a conditional mean x'beta + z'b is checked against
Henderson's mixed-model equations, built here from the data frame with no code
shared with sklmixed: with R = sigma^2 W^{-1} and G = Cov(b) (block diagonal from
the fitted standard deviations and correlations), the prediction error variance
of k'(beta, b) is k' C^{-1} k for C = [X'R^{-1}X, X'R^{-1}Z; Z'R^{-1}X,
Z'R^{-1}Z + G^{-1}]; an unseen level adds z' Sigma z. This is the same quantity
as sigma^2 ||L^{-1} [Lambda'z; x]||^2 from the factor, reached by another route,
so agreement is to rounding (1e-8 relative).

GLMM: the marginal probability for unseen levels is checked against adaptive
numerical integration (scipy's quad) and, for the probit link, against its closed
form Phi(eta / sqrt(1 + s^2)).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError


def _cov(model, group):
    vc = next(v for v in model.result_.varcomps if v.group == group)
    corr = np.nan_to_num(vc.corr)
    return corr * np.outer(vc.sd, vc.sd)


def _mme_std(model, train, new, X_train, X_new, terms, weights=None):
    """Standard errors by Henderson's equations. ``terms``: (group name, key
    function, z function) per random-effects term."""
    sigma2 = model.sigma_**2
    w = np.ones(len(train)) if weights is None else np.asarray(weights, float)
    Zs, Gs, knew, extra = [], [], [], np.zeros(len(new))
    for name, key, zfun in terms:
        levels = sorted(pd.unique(key(train)))
        pos = {lev: i for i, lev in enumerate(levels)}
        ztr, znew = zfun(train), zfun(new)
        k = ztr.shape[1]
        Z = np.zeros((len(train), len(levels) * k))
        for i, lev in enumerate(key(train)):
            Z[i, pos[lev] * k : pos[lev] * k + k] = ztr[i]
        Kn = np.zeros((len(new), len(levels) * k))
        S = _cov(model, name)
        for i, lev in enumerate(key(new)):
            if lev in pos:
                Kn[i, pos[lev] * k : pos[lev] * k + k] = znew[i]
            else:
                extra[i] += znew[i] @ S @ znew[i]
        Zs.append(Z)
        Gs.append(np.kron(np.eye(len(levels)), S))
        knew.append(Kn)
    Z = np.hstack(Zs)
    Ginv = np.linalg.inv(
        np.block(
            [
                [
                    Gs[i] if i == j else np.zeros((Gs[i].shape[0], Gs[j].shape[1]))
                    for j in range(len(Gs))
                ]
                for i in range(len(Gs))
            ]
        )
    )
    Rinv = w / sigma2
    XR, ZR = X_train.T * Rinv, Z.T * Rinv
    C = np.block([[XR @ X_train, XR @ Z], [ZR @ X_train, ZR @ Z + Ginv]])
    K = np.hstack([X_new] + knew)
    pev = np.einsum("ij,ji->i", K, np.linalg.solve(C, K.T))
    return np.sqrt(pev + extra)


def _sleep_terms():
    return [("subj", lambda d: d["subj"], lambda d: np.column_stack([np.ones(len(d)), d["days"]]))]


def _sleep_new():
    return pd.DataFrame(
        {"subj": ["S308", "S309", "S372", "NEW", "NEW2"], "days": [0.0, 4.5, 9.0, 3.0, -2.0]}
    )


@pytest.mark.parametrize("reml", [False, True])
def test_sleepstudy_vector_term(reml):
    df = load_dataset("sleepstudy")
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)", reml=reml).fit(df)
    new = _sleep_new()
    mean, std = model.predict(new, return_std=True)
    np.testing.assert_array_equal(mean, model.predict(new))
    X = np.column_stack([np.ones(len(df)), df["days"]])
    Xn = np.column_stack([np.ones(len(new)), new["days"]])
    ref = _mme_std(model, df, new, X, Xn, _sleep_terms())
    np.testing.assert_allclose(std, ref, rtol=1e-8)


def test_weighted_fit():
    df = load_dataset("sleepstudy")
    w = 1 + (df["days"] % 3) / 2
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)")
    model.fit(df, sample_weight=w)
    new = _sleep_new()
    _, std = model.predict(new, return_std=True)
    X = np.column_stack([np.ones(len(df)), df["days"]])
    Xn = np.column_stack([np.ones(len(new)), new["days"]])
    ref = _mme_std(model, df, new, X, Xn, _sleep_terms(), weights=w)
    np.testing.assert_allclose(std, ref, rtol=1e-8)


def test_crossed_terms_with_unseen_levels():
    df = load_dataset("penicillin")
    model = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(df)
    new = pd.DataFrame(
        {"plate": ["a", "b", "zz", "c", "zz"], "sample": ["A", "F", "B", "QQ", "QQ"]}
    )
    _, std = model.predict(new, return_std=True)
    terms = [(g, lambda d, g=g: d[g], lambda d: np.ones((len(d), 1))) for g in ("plate", "sample")]
    ref = _mme_std(model, df, new, np.ones((len(df), 1)), np.ones((len(new), 1)), terms)
    np.testing.assert_allclose(std, ref, rtol=1e-8)
    # both levels unseen: the population mean's variance plus both prior variances
    assert std[4] > std[2] and std[4] > std[3]


def test_nested_terms():
    """pastes: cask within batch (a sparse off-diagonal block of the factor)."""
    df = load_dataset("pastes")
    model = MixedLMRegressor(formula="strength ~ 1 + (1|batch/cask)").fit(df)
    new = df.head(7).copy()
    new.loc[new.index[5], "cask"] = "zz"
    new.loc[new.index[6], "batch"] = "zz"
    _, std = model.predict(new, return_std=True)
    terms = [
        ("batch", lambda d: d["batch"], lambda d: np.ones((len(d), 1))),
        (
            "batch & cask",
            lambda d: d["batch"].astype(str) + "/" + d["cask"].astype(str),
            lambda d: np.ones((len(d), 1)),
        ),
    ]
    ref = _mme_std(model, df, new, np.ones((len(df), 1)), np.ones((len(new), 1)), terms)
    np.testing.assert_allclose(std, ref, rtol=1e-8)


def test_no_random_effects():
    """With no random effects the standard error is that of OLS's fitted mean."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    y = X @ [1.0, -2.0] + rng.normal(size=50)
    model = MixedLMRegressor().fit(X, y)
    Xn = rng.normal(size=(4, 2))
    _, std = model.predict(Xn, return_std=True)
    D = np.column_stack([np.ones(50), X])
    Dn = np.column_stack([np.ones(4), Xn])
    ref = model.sigma_ * np.sqrt(np.einsum("ij,ji->i", Dn, np.linalg.solve(D.T @ D, Dn.T)))
    np.testing.assert_allclose(std, ref, rtol=1e-8)


def test_predict_interval():
    df = load_dataset("sleepstudy")
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    new = _sleep_new().set_index(pd.Index(list("vwxyz")))
    mean, std = model.predict(new, return_std=True)
    conf = model.predict_interval(new, level=0.9)
    assert list(conf.columns) == ["mean", "lower", "upper"]
    assert list(conf.index) == list("vwxyz")
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(conf["mean"], mean)
    np.testing.assert_allclose(conf["upper"] - conf["mean"], z * std)
    pred = model.predict_interval(new, level=0.9, kind="prediction")
    np.testing.assert_allclose(pred["upper"] - pred["mean"], z * np.sqrt(std**2 + model.sigma_**2))
    np.testing.assert_allclose(pred["mean"] - pred["lower"], pred["upper"] - pred["mean"])


def test_prediction_interval_coverage_of_training_data():
    """About 95% of the observations lie in their 95% prediction intervals."""
    df = load_dataset("sleepstudy")
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    pi = model.predict_interval(df, kind="prediction")
    inside = np.mean((df["reaction"] >= pi["lower"]) & (df["reaction"] <= pi["upper"]))
    assert 0.9 <= inside <= 0.99


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "credible"}, "kind must be 'confidence' or 'prediction'"),
        ({"level": 1.0}, "level must be a number in"),
        ({"level": 0}, "level must be a number in"),
    ],
)
def test_predict_interval_bad_arguments(kwargs, match):
    df = load_dataset("penicillin")
    model = MixedLMRegressor(formula="diameter ~ 1 + (1|plate)").fit(df)
    with pytest.raises(ValueError, match=match):
        model.predict_interval(df.head(2), **kwargs)


def test_new_levels_error_still_raises():
    df = load_dataset("penicillin")
    model = MixedLMRegressor(formula="diameter ~ 1 + (1|plate)", new_levels="error").fit(df)
    new = pd.DataFrame({"plate": ["zz"], "sample": ["A"]})
    with pytest.raises(DataError, match="not seen in fit"):
        model.predict(new, return_std=True)


# -------------------------------------------------------------------- GLMMs


def _contra():
    df = load_dataset("contra")
    clf = MixedGLMClassifier(
        formula="use ~ 1 + age + I(age**2) + livch + urban + (1|dist)", fast=True
    ).fit(df)
    return df, clf


def test_marginal_probability_by_quadrature():
    df, clf = _contra()
    new = df.head(6).copy()
    new["dist"] = new["dist"].astype(object)
    new.iloc[3:, new.columns.get_loc("dist")] = "unseen"
    p0 = clf.predict_proba(new)[:, 1]
    p1 = clf.predict_proba(new, marginal=True)[:, 1]
    np.testing.assert_array_equal(p1[:3], p0[:3])  # seen levels: the modes, as before
    eta = clf.decision_function(new)
    s = next(v for v in clf.result_.varcomps if v.group == "dist").sd[0]
    for i in range(3, 6):
        ref, _ = integrate.quad(
            lambda x, i=i: special.expit(eta[i] + s * x) * stats.norm.pdf(x),
            -np.inf,
            np.inf,
            epsabs=1e-13,
            epsrel=1e-12,
        )
        assert p1[i] == pytest.approx(ref, abs=1e-10)
        # averaging over the random effect pulls the probability towards 1/2
        assert abs(p1[i] - 0.5) < abs(p0[i] - 0.5)
    np.testing.assert_allclose(clf.predict_proba(new, marginal=True).sum(axis=1), 1.0)


def test_marginal_probability_two_unseen_terms():
    """Two crossed terms, both unseen: the marginal is the double integral over the
    two random effects (scipy's dblquad); one unseen: the single integral."""
    rng = np.random.default_rng(11)
    n = 300
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.8 * x + rng.normal(0, 0.9, 12)[g] + rng.normal(0, 0.6, 8)[h]
    y = np.where(rng.random(n) < special.expit(eta), "Y", "N")
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MixedGLMClassifier(formula="y ~ 1 + x + (1|g) + (1|h)", fast=True).fit(df)
    new = pd.DataFrame(
        {"x": [0.5, -1.0, 2.0], "g": ["g1", "new", "new"], "h": ["new", "h2", "new"]}
    )
    sd = {v.group: v.sd[0] for v in clf.result_.varcomps}
    eta0 = clf.decision_function(new)
    got = clf.predict_proba(new, marginal=True)[:, 1]
    for i, s in ((0, sd["h"]), (1, sd["g"])):
        ref, _ = integrate.quad(
            lambda t, i=i, s=s: special.expit(eta0[i] + s * t) * stats.norm.pdf(t),
            -np.inf,
            np.inf,
            epsabs=1e-13,
        )
        assert got[i] == pytest.approx(ref, abs=1e-10)
    e2, sg, sh = float(eta0[2]), float(sd["g"]), float(sd["h"])

    def integrand(a, b):  # plain floats: dblquad calls it many thousand times
        return (
            math.exp(-0.5 * (a * a + b * b))
            / (2 * math.pi)
            / (1.0 + math.exp(-(e2 + sg * a + sh * b)))
        )

    ref, _ = integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-11, epsrel=1e-11)
    assert got[2] == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("sd", [0.05, 0.7, 5.0, 30.0])
@pytest.mark.parametrize("link", ["logit", "cauchit", "cloglog"])
def test_normal_average_accuracy(sd, link):
    """The quadrature is accurate from tiny to very large random-effect SDs."""
    from sklmixed._core._families import get_family, get_link
    from sklmixed.inference._predict import _normal_average

    inv = get_link(get_family("bernoulli"), link).inverse
    eta = np.array([-3.0, 0.4, 2.5])
    got = _normal_average(inv, eta, np.full(3, sd))
    for i, e in enumerate(eta):
        ref, _ = integrate.quad(
            lambda t, e=e: inv(np.array([e + sd * t]))[0] * stats.norm.pdf(t),
            -np.inf,
            np.inf,
            epsabs=1e-14,
            limit=500,
        )
        assert got[i] == pytest.approx(ref, abs=1e-11)
