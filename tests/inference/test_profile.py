"""Profile confidence intervals against lme4 and an independent dense computation.

Reference values: ``tests/reference/lme4/make_profile_ddf_reference.R`` (lme4's
``confint(profile(m))``, recorded both with lme4's default profile and with one ten
times as fine).

Tolerance against lme4, and why: lme4 interpolates each profile with a spline
through points about 0.5 apart on the zeta scale; its default answer and its
ten-times-finer one differ by up to 5e-5 (relative) on these models, and the
finer one itself is off by up to 1e-5 where an independent optimizer checks it
(sleepstudy's sd(subj: (Intercept)) upper limit). sklmixed finds each crossing by
root finding to |zeta - z| < 1e-6, so it has no interpolation error; 2e-4 relative
is four times lme4's own interpolation error and far below the printed precision
of such intervals.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset
from sklmixed.exceptions import RankDeficientWarning, SingularFitWarning
from sklmixed.inference import profile_confint

HERE = Path(__file__).resolve().parents[1] / "reference" / "lme4"
REF = json.loads((HERE / "profile_ddf_reference.json").read_text())["models"]
RTOL = 2e-4

# lme4's row names -> sklmixed's
NAMES = {
    "sleepstudy": {
        ".sig01": "sd(subj: (Intercept))",
        ".sig02": "corr(subj: (Intercept), days)",
        ".sig03": "sd(subj: days)",
        ".sigma": "sigma",
        "(Intercept)": "(Intercept)",
        "Days": "days",
        "days": "days",  # the weighted fit's data use sklmixed's column names
    },
    "penicillin": {
        ".sig01": "sd(plate: (Intercept))",
        ".sig02": "sd(sample: (Intercept))",
        ".sigma": "sigma",
        "(Intercept)": "(Intercept)",
    },
    "machines": {
        ".sig01": "sd(Worker & Machine: (Intercept))",
        ".sig02": "sd(Worker: (Intercept))",
        ".sigma": "sigma",
        "(Intercept)": "(Intercept)",
        "MachineB": "Machine: B",
        "MachineC": "Machine: C",
    },
}

_CACHE: dict = {}


def _data(ref):
    if ref["data"].endswith(".csv"):
        return pd.read_csv(HERE / "data" / ref["data"])
    return load_dataset(ref["data"])


def fitted(name):
    if name not in _CACHE:
        ref = REF[name]
        model = MixedLMRegressor(formula=ref["sklmixed_formula"], reml=ref["fit"]["reml"])
        df = _data(ref)
        _CACHE[name] = model.fit(df, sample_weight=df["w"] if "weighted" in name else None)
    return _CACHE[name]


def _lme4_table(name, level="0.95", which="profile"):
    tab = REF[name][which][level]
    names = NAMES[name.split("_", 1)[0]]
    return pd.DataFrame(
        {"lower": tab["lower"], "upper": tab["upper"]},
        index=[names[n] for n in tab["names"]],
    )


ML_CASES = [
    ("sleepstudy_ml", "0.95"),
    ("sleepstudy_ml", "0.8"),
    ("penicillin_ml", "0.95"),
    ("machines_ml", "0.95"),
]


@pytest.mark.parametrize("name,level", ML_CASES)
def test_ml_fits_match_lme4(name, level):
    ours = profile_confint(fitted(name), level=float(level))
    ref = _lme4_table(name, level)
    assert sorted(ours.index) == sorted(ref.index)
    ref = ref.loc[ours.index]
    np.testing.assert_allclose(ours["lower"], ref["lower"], rtol=RTOL)
    np.testing.assert_allclose(ours["upper"], ref["upper"], rtol=RTOL)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "penicillin_reml", "machines_reml"])
def test_reml_fixed_effects_match_lme4(name):
    """lme4 profiles a REML fit's fixed effects on the ML deviance, as we do."""
    model = fitted(name)
    ours = profile_confint(model).loc[model.coef_names_]
    ref = _lme4_table(name).loc[model.coef_names_]
    np.testing.assert_allclose(ours, ref, rtol=RTOL)


def test_row_names_and_order():
    ci = profile_confint(fitted("sleepstudy_ml"))
    assert list(ci.columns) == ["lower", "upper"]
    assert list(ci.index) == [
        "(Intercept)",
        "days",
        "sd(subj: (Intercept))",
        "sd(subj: days)",
        "corr(subj: (Intercept), days)",
        "sigma",
    ]


def test_intervals_contain_the_estimates():
    for name in ("sleepstudy_ml", "sleepstudy_reml", "penicillin_reml"):
        model = fitted(name)
        ci = profile_confint(model)
        est = dict(zip(model.coef_names_, model.coef_))
        for vc in model.result_.varcomps:
            for a, col in enumerate(vc.columns):
                est[f"sd({vc.group}: {col})"] = vc.sd[a]
                for b in range(a + 1, len(vc.columns)):
                    est[f"corr({vc.group}: {col}, {vc.columns[b]})"] = vc.corr[a, b]
        est["sigma"] = model.sigma_
        if model.reml:  # fixed effects are profiled around the ML estimates
            est = {k: v for k, v in est.items() if k not in model.coef_names_}
        for row, value in est.items():
            assert ci.loc[row, "lower"] < value < ci.loc[row, "upper"], row


# ------------------------------------------------ REML: an independent check


def _dense_reml():
    """-2 REML log-likelihood of the machines model from the marginal covariance
    of y, built densely from the two standard deviations and sigma (no code shared
    with sklmixed)."""
    df = _data(REF["machines_reml"])
    y = df["score"].to_numpy(float)
    n = y.shape[0]
    X = np.column_stack(
        [np.ones(n), df["Machine"].eq("B").to_numpy(float), df["Machine"].eq("C").to_numpy(float)]
    )
    grams = []
    for key in (df["Worker"] + ":" + df["Machine"], df["Worker"]):
        codes = pd.factorize(key, sort=True)[0]
        Z = np.zeros((n, codes.max() + 1))
        Z[np.arange(n), codes] = 1.0
        grams.append(Z @ Z.T)
    p = X.shape[1]

    def dev(sd_wm, sd_w, sigma):
        V = sd_wm**2 * grams[0] + sd_w**2 * grams[1] + sigma**2 * np.eye(n)
        c = np.linalg.cholesky(V)
        sol = np.linalg.solve(c.T, np.linalg.solve(c, np.column_stack((X, y))))
        XtViX = X.T @ sol[:, :p]
        beta = np.linalg.solve(XtViX, X.T @ sol[:, p])
        r = y - X @ beta
        return (
            2 * np.sum(np.log(np.diag(c)))
            + np.linalg.slogdet(XtViX)[1]
            + r @ (sol[:, p] - sol[:, :p] @ beta)
            + (n - p) * math.log(2 * math.pi)
        )

    return dev


def test_reml_variance_components_by_dense_profile():
    """At each REML limit of the machines model (two terms, three fixed effects),
    the profile computed independently (dense marginal REML criterion, scipy's
    optimizer over the other parameters) is at zeta = -z or +z."""
    model = fitted("machines_reml")
    ci = profile_confint(model)
    dev = _dense_reml()
    sd = {vc.group: vc.sd[0] for vc in model.result_.varcomps}
    est = np.array([sd["Worker & Machine"], sd["Worker"], model.sigma_])
    base = dev(*est)
    assert base == pytest.approx(model.objective_, abs=1e-6)
    z = stats.norm.ppf(0.975)
    rows = ["sd(Worker & Machine: (Intercept))", "sd(Worker: (Intercept))", "sigma"]
    for i, row in enumerate(rows):
        free = [k for k in range(3) if k != i]
        for side, sign in (("lower", -1.0), ("upper", 1.0)):
            x = ci.loc[row, side]

            def f(v, x=x, i=i, free=free):
                full = np.empty(3)
                full[i] = x
                full[free] = v
                return dev(*full)

            res = optimize.minimize(
                f,
                est[free],
                method="L-BFGS-B",
                bounds=[(1e-3, None)] * 2,
                options={"ftol": 1e-15, "gtol": 1e-9},
            )
            zeta = sign * math.sqrt(res.fun - base)
            assert zeta == pytest.approx(sign * z, abs=2e-5), (row, side)


def test_reml_sigma_profile_differs_from_ml_where_it_should():
    """For penicillin the REML and ML estimates differ; so do the intervals, and
    the REML ones surround the REML estimates."""
    ml = profile_confint(fitted("penicillin_ml"))
    reml = profile_confint(fitted("penicillin_reml"))
    row = "sd(sample: (Intercept))"
    assert reml.loc[row, "upper"] > ml.loc[row, "upper"] * 1.05


# ---------------------------------------------------------- prior weights


def test_weighted_variance_components_match_lme4():
    model = fitted("sleepstudy_weighted_ml")
    ours = profile_confint(model)
    ref = _lme4_table("sleepstudy_weighted_ml")
    rows = [r for r in ref.index if r not in model.coef_names_]
    np.testing.assert_allclose(ours.loc[rows], ref.loc[rows], rtol=RTOL)


def test_weighted_fixed_effects_by_dense_profile():
    """lme4's fixed-effect profiles of weighted fits are off (its conditional
    deviance and its base differ by the log-weights term; lme4 issue #192): its
    (Intercept) interval, (250.38, 251.73), does not even contain the Wald
    interval's centre region. Check ours independently: the weighted marginal
    deviance, minimized densely over the variance parameters and the other fixed
    effect with the coefficient held at our limit, is at zeta = -z or +z."""
    model = fitted("sleepstudy_weighted_ml")
    ci = profile_confint(model)
    df = _data(REF["sleepstudy_weighted_ml"]).sort_values(["subj", "days"])
    # V is block diagonal by subject: stack the 18 blocks of 10 observations
    nl = df["subj"].nunique()
    y = df["reaction"].to_numpy(float).reshape(nl, -1)
    days = df["days"].to_numpy(float).reshape(nl, -1)
    winv = 1.0 / df["w"].to_numpy(float).reshape(nl, -1)
    X = np.stack([np.ones_like(days), days], axis=-1)  # (nl, m, 2)
    n = y.size

    def dev(params, j, bj):
        s1, rho, s2, sigma = params
        S = np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]])
        V = X @ S @ X.transpose(0, 2, 1) + sigma**2 * winv[:, :, None] * np.eye(y.shape[1])
        c = np.linalg.cholesky(V)
        Xo = np.delete(X, j, axis=2) if j is not None else X
        yo = y - (X[:, :, j] * bj if j is not None else 0.0)
        A = np.linalg.solve(c, np.concatenate((Xo, yo[:, :, None]), axis=2))
        A = A.reshape(n, -1)  # whitened [X y], all subjects stacked
        beta = np.linalg.lstsq(A[:, :-1], A[:, -1], rcond=None)[0]
        r = A[:, -1] - A[:, :-1] @ beta
        logdet = 2 * np.sum(np.log(np.diagonal(c, axis1=1, axis2=2)))
        return logdet + r @ r + n * math.log(2 * math.pi)

    vc = model.result_.varcomps[0]
    est = np.array([vc.sd[0], vc.corr[0, 1], vc.sd[1], model.sigma_])
    base = dev(est, None, 0.0)
    # log|V| holds the -sum(log w) of the objective: log|sigma^2 W^{-1}| ...
    assert base == pytest.approx(model.objective_, abs=1e-6)
    z = stats.norm.ppf(0.975)
    for j, row in enumerate(model.coef_names_):
        for side, sign in (("lower", -1.0), ("upper", 1.0)):
            res = optimize.minimize(
                dev,
                est,
                args=(j, ci.loc[row, side]),
                method="L-BFGS-B",
                bounds=[(1e-3, None), (-0.999, 0.999), (1e-3, None), (1e-3, None)],
                options={"ftol": 1e-15, "gtol": 1e-8},
            )
            zeta = sign * math.sqrt(res.fun - base)
            assert zeta == pytest.approx(sign * z, abs=2e-4), (row, side)


# ------------------------------------------------------------- boundaries


def test_singular_fit_lower_limit_is_zero():
    with pytest.warns(SingularFitWarning):
        model = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff2"))
    ci = profile_confint(model)
    assert ci.loc["sd(batch: (Intercept))", "lower"] == 0.0
    assert 0 < ci.loc["sd(batch: (Intercept))", "upper"] < 5
    assert ci.loc["sigma", "lower"] < model.sigma_ < ci.loc["sigma", "upper"]


def test_lower_limit_zero_when_profile_does_not_reach():
    """dyestuff at level 0.999: the sd's profile does not reach -z before 0."""
    model = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    ci = profile_confint(model, level=0.9999)
    assert ci.loc["sd(batch: (Intercept))", "lower"] == 0.0


def test_three_correlated_columns():
    """A 3 x 3 covariance: correlations held at values where the warm start of the
    others is infeasible still give monotone, finite limits."""
    df = load_dataset("sleepstudy")
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days + I(days**2)|subj)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(df)
    ci = profile_confint(model)
    assert np.all(np.isfinite(ci.to_numpy()))
    assert np.all(ci["lower"] < ci["upper"])
    corr = ci.filter(like="corr(", axis=0)
    assert corr.shape[0] == 3
    assert np.all(corr.to_numpy() >= -1) and np.all(corr.to_numpy() <= 1)


def test_rank_deficient_coefficient_is_nan():
    df = load_dataset("sleepstudy")
    df["days2"] = 2 * df["days"]
    with pytest.warns(RankDeficientWarning):
        model = MixedLMRegressor(formula="reaction ~ 1 + days + days2 + (1|subj)").fit(df)
    ci = profile_confint(model)
    assert ci.loc["days2"].isna().all()
    assert ci.loc["days"].notna().all()


def test_model_left_as_fitted():
    model = fitted("sleepstudy_ml")
    before = model.predict(load_dataset("sleepstudy").head(5))
    cv = model.condvar()["subj"].copy()
    profile_confint(model)
    np.testing.assert_array_equal(model.predict(load_dataset("sleepstudy").head(5)), before)
    np.testing.assert_allclose(model.condvar()["subj"], cv, rtol=1e-12)


def test_verbose_progress(capsys):
    profile_confint(fitted("penicillin_ml"), verbose=True)
    err = capsys.readouterr().err
    assert "profile" in err


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "0.95", True, float("nan")])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level must be a number in \\(0, 1\\)"):
        profile_confint(fitted("penicillin_ml"), level=level)


def test_glmm_refused():
    df = load_dataset("contra")
    clf = MixedGLMClassifier(formula="use ~ 1 + urban + (1|dist)", fast=True).fit(df)
    with pytest.raises(ValueError, match="linear mixed models"):
        profile_confint(clf)


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        profile_confint(MixedLMRegressor(formula="y ~ 1 + (1|g)"))
