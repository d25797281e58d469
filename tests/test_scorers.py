"""Held-out predictive log-likelihood scorers and warm starts."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import integrate, stats
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklmixed import (
    MixedGLMClassifier,
    MixedGLMRegressor,
    MixedLMRegressor,
    conditional_deviance,
    conditional_loglik,
    load_dataset,
    marginal_deviance,
    marginal_loglik,
)
from sklmixed.exceptions import DataError, SingularFitWarning

STRUCTURES = [
    "y ~ 1 + days + (1|subj)",
    "y ~ 1 + days + zerocorr(1 + days|subj)",
    "y ~ 1 + days + (1 + days|subj)",
]
SLEEP = "reaction ~ 1 + days + (1 + days|subj)"


def simulate(slope_sd: float, seed: int) -> pd.DataFrame:
    """sleepstudy-sized data: 40 subjects x 10 days, intercept SD 25, residual SD
    25, fixed intercept 250 and slope 10, random slope SD ``slope_sd``."""
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(40), 10)
    days = np.tile(np.arange(10.0), 40)
    b0, b1 = rng.normal(0, 25, 40), rng.normal(0, slope_sd, 40)
    y = 250 + 10 * days + b0[idx] + b1[idx] * days + rng.normal(0, 25, 400)
    return pd.DataFrame({"y": y, "days": days, "subj": [f"S{i:02d}" for i in idx]})


def search(df: pd.DataFrame) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        g = GridSearchCV(
            MixedLMRegressor(),
            {"formula": STRUCTURES},
            cv=GroupKFold(5),
            scoring={"ll": marginal_loglik, "r2": "r2"},
            refit="ll",
        ).fit(df, df["y"], groups=df["subj"])
    return g.cv_results_ | {"best": g.best_params_["formula"]}


def fold_differences(res: dict, i: int, j: int) -> np.ndarray:
    return np.array([res[f"split{k}_test_ll"][i] - res[f"split{k}_test_ll"][j] for k in range(5)])


# ------------------------------------------------------ choosing a structure


def test_marginal_loglik_picks_the_random_slope_where_r2_ties():
    res = search(simulate(6.0, seed=0))
    assert "days|subj" in res["best"]
    # R^2 cannot tell the structures apart: new subjects are predicted by the
    # fixed effects alone (identical here: the design is balanced)
    assert np.ptp(res["mean_test_r2"]) < 1e-6
    # ... while the held-out log-likelihood gains clearly, in every fold
    gain = fold_differences(res, 2, 0)
    assert np.all(gain > 0)
    assert gain.mean() > 5 * gain.std(ddof=1) / np.sqrt(5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_random_slope_no_win_beyond_noise(seed):
    """Without a random slope, the slope structures' gain over (1|subj) is noise:
    for each, the mean of the five paired per-fold differences is at most two
    standard errors of that mean (plus 1e-4 for folds that agree exactly), and far
    below the gain of about 0.1 per observation on data with a slope."""
    res = search(simulate(0.0, seed=seed))
    for i in (1, 2):
        d = fold_differences(res, i, 0)
        assert d.mean() <= 2 * d.std(ddof=1) / np.sqrt(5) + 1e-4
        assert d.mean() < 0.01


# --------------------------------------------------- exact for linear models


def _lambda(theta: np.ndarray) -> np.ndarray:
    lam = np.zeros((2, 2))
    lam[[0, 1, 1], [0, 0, 1]] = theta  # lower triangle, column by column
    return lam


def test_lmm_equals_multivariate_normal_of_each_new_group():
    df = load_dataset("sleepstudy")
    scores = []
    for train, test in GroupKFold(5).split(df, groups=df["subj"]):
        m = MixedLMRegressor(formula=SLEEP).fit(df.iloc[train])
        held = df.iloc[test]
        lam = _lambda(m.theta_)
        total = 0.0
        for _, g in held.groupby("subj"):
            Z = np.column_stack((np.ones(len(g)), g["days"]))
            cov = m.sigma_**2 * (Z @ lam @ lam.T @ Z.T + np.eye(len(g)))
            mean = m.coef_[0] + m.coef_[1] * g["days"].to_numpy()
            total += stats.multivariate_normal(mean, cov).logpdf(g["reaction"].to_numpy())
        got = marginal_loglik(m, held)
        assert got == pytest.approx(total / len(held), abs=1e-8, rel=0)
        assert marginal_deviance(m, held) == pytest.approx(-2 * total, abs=1e-6, rel=0)
        scores.append(got)
    assert np.all(np.isfinite(scores))


def _crossed_reference(m, held: pd.DataFrame, weights=None) -> float:
    """log N(y; X beta + seen modes, Z C Z' + sigma^2 W^-1) for penicillin's two
    crossed scalar terms, built densely from varcorr, condvar and ranef_."""
    table = m.varcorr().table.set_index("group")["variance"]
    condvar, ranef = m.condvar(), m.ranef_
    n = len(held)
    mean = np.full(n, m.coef_[0])
    cov = np.diag(m.sigma_**2 / (np.ones(n) if weights is None else weights))
    for g in ("plate", "sample"):
        levels = held[g].to_numpy()
        seen = np.isin(levels, ranef[g].index)
        mean[seen] += ranef[g].loc[levels[seen], "(Intercept)"].to_numpy()
        pos = {lev: i for i, lev in enumerate(ranef[g].index)}
        var = np.array(
            [condvar[g][pos[lev], 0, 0] if s else table[g] for lev, s in zip(levels, seen)]
        )
        cov += (levels[:, None] == levels[None, :]) * var[:, None]  # same level, same effect
    return float(stats.multivariate_normal(mean, cov).logpdf(held["diameter"].to_numpy()))


def test_lmm_crossed_terms_with_seen_and_unseen_levels():
    """Held-out rows with an unseen plate and a seen sample, a seen plate and an
    unseen sample, and both unseen: one joint Gaussian, seen levels' effects from
    their conditional distribution (independent across levels)."""
    df = load_dataset("penicillin")
    test = df["plate"].isin(["a", "b"]) | (df["sample"] == "A")
    train, held = df[~test], df[test]
    m = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(train)
    kinds = {
        (p in set(train["plate"]), s in set(train["sample"]))
        for p, s in zip(held["plate"], held["sample"])
    }
    assert kinds == {(True, False), (False, True), (False, False)}
    expected = _crossed_reference(m, held)
    assert marginal_loglik(m, held) == pytest.approx(expected / len(held), abs=1e-8, rel=0)
    # seen levels only (scoring the training rows) and with prior weights
    w = np.linspace(0.5, 2.0, len(held))
    got = marginal_loglik(m, held, sample_weight=w)
    assert got == pytest.approx(_crossed_reference(m, held, w) / len(held), abs=1e-8, rel=0)
    assert marginal_loglik(m, train) == pytest.approx(
        _crossed_reference(m, train) / len(train), abs=1e-8, rel=0
    )


def test_conditional_loglik_is_independent_normal_rows_at_predict():
    df = load_dataset("sleepstudy")
    train, held = df[df["days"] < 8], df[df["days"] >= 8]
    m = MixedLMRegressor(formula=SLEEP).fit(train)
    expected = stats.norm(m.predict(held), m.sigma_).logpdf(held["reaction"]).sum()
    assert conditional_loglik(m, held) == pytest.approx(expected / len(held), abs=1e-10)
    assert conditional_deviance(m, held) == pytest.approx(-2 * expected, abs=1e-8)
    # seen subjects: the marginal integrates over each subject's remaining
    # uncertainty, so it is lower than the density at the modes for the same rows
    # only through the extra variance; both are finite and comparable
    assert np.isfinite(marginal_loglik(m, held))


def test_y_given_overrides_the_formula_response():
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula=SLEEP).fit(df)
    shifted = df["reaction"] + 100.0
    assert marginal_loglik(m, df, shifted) < marginal_loglik(m, df) - 1.0
    assert marginal_loglik(m, df, df["reaction"]) == marginal_loglik(m, df)
    assert marginal_loglik(m, df.drop(columns="reaction"), df["reaction"].to_numpy()) == (
        marginal_loglik(m, df)
    )


# ----------------------------------------------------------------- GLMMs


def _poisson_data(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.size)
    b0, b1 = rng.normal(0, 0.6, 30), rng.normal(0, 0.3, 30)
    y = rng.poisson(np.exp(0.5 + 0.4 * x + b0[g] + b1[g] * x))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


def test_glmm_scalar_term_agq_matches_numerical_integration():
    """nagq = 25 (the fit's) integrates each new group's intercept to quadrature
    accuracy; compare with scipy.integrate.quad of the same one-dimensional
    integral, built from coef_ and theta_."""
    df = _poisson_data()
    train, held = df[df["g"] >= "g06"], df[df["g"] < "g06"]
    m = MixedGLMRegressor(formula="y ~ 1 + x + (1|g)", family="poisson", nagq=25).fit(train)
    sd = m.theta_[0]  # b = lambda u, u ~ N(0, 1)
    total = 0.0
    for _, grp in held.groupby("g"):
        eta = m.coef_[0] + m.coef_[1] * grp["x"].to_numpy()
        y = grp["y"].to_numpy()

        def f(b, eta=eta, y=y):
            return np.exp(stats.poisson(np.exp(eta + b)).logpmf(y).sum()) * stats.norm.pdf(b, 0, sd)

        val, _ = integrate.quad(f, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)
        total += np.log(val)
    assert marginal_loglik(m, held) == pytest.approx(total / len(held), rel=1e-7)
    # a group seen in fit: its effect integrated over N(mode, condvar)
    grp = train[train["g"] == "g10"]
    pos = list(m.ranef_["g"].index).index("g10")
    mode = m.ranef_["g"].loc["g10", "(Intercept)"]
    csd = np.sqrt(m.condvar()["g"][pos, 0, 0])
    eta = m.coef_[0] + m.coef_[1] * grp["x"].to_numpy()

    def f_seen(b):
        return np.exp(stats.poisson(np.exp(eta + b)).logpmf(grp["y"]).sum()) * stats.norm.pdf(
            b, mode, csd
        )

    val, _ = integrate.quad(f_seen, mode - 12 * csd, mode + 12 * csd, epsabs=0, epsrel=1e-12)
    assert marginal_loglik(m, grp) == pytest.approx(np.log(val) / len(grp), rel=1e-7)


def test_glmm_vector_term_laplace_is_close_to_quadrature():
    """(1 + x|g): the Laplace approximation of each new group's two-dimensional
    integral, against a 40 x 40 Gauss-Hermite product rule on the fitted prior;
    Laplace is an approximation: within 0.01 per observation here."""
    df = _poisson_data()
    train, held = df[df["g"] >= "g06"], df[df["g"] < "g06"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m = MixedGLMRegressor(formula="y ~ 1 + x + (1 + x|g)", family="poisson").fit(train)
    lam = _lambda(m.theta_)
    z, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    U = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(w, w).reshape(-1)
    B = U @ lam.T  # draws of b = lambda u
    total = 0.0
    for _, grp in held.groupby("g"):
        x, y = grp["x"].to_numpy(), grp["y"].to_numpy()
        eta = m.coef_[0] + m.coef_[1] * x + B[:, :1] + B[:, 1:] * x
        ll = stats.poisson(np.exp(eta)).logpmf(y).sum(axis=1)
        total += np.log(np.sum(W * np.exp(ll - ll.max()))) + ll.max()
    got = marginal_loglik(m, held)
    assert abs(got - total / len(held)) < 0.01
    # the conditional log-likelihood ignores the new groups' effects (mu at b = 0)
    mu = m.predict(held)
    assert conditional_loglik(m, held) == pytest.approx(
        stats.poisson(mu).logpmf(held["y"]).mean(), abs=1e-10
    )


def test_classifier_labels_from_formula_or_y():
    df = load_dataset("contra")
    dists = sorted(df["dist"].unique())
    held = df["dist"].isin(dists[:6])
    clf = MixedGLMClassifier(formula="use ~ 1 + age + urban + (1|dist)", fast=True)
    clf.fit(df[~held])
    a = marginal_loglik(clf, df[held])
    assert a == marginal_loglik(clf, df[held].drop(columns="use"), df.loc[held, "use"])
    assert -0.75 < a < -0.5  # near the binary entropy of ~40% users, better than log(0.5)
    with pytest.raises(DataError, match="not seen in fit"):
        marginal_loglik(clf, df[held], np.where(df.loc[held, "use"] == "Y", "yes", "no"))


def test_binomial_weights_are_trials():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 5)
    trials = rng.integers(1, 12, g.size).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(0, 0.8, 20)[g] - 0.3)))
    df = pd.DataFrame({"y": rng.binomial(trials.astype(int), p) / trials, "g": g.astype(str)})
    train, held = df.iloc[:80], df.iloc[80:]
    m = MixedGLMRegressor(formula="y ~ 1 + (1|g)", family="binomial").fit(
        train, sample_weight=trials[:80]
    )
    sw = trials[80:]
    mu = m.predict(held)
    k = np.rint(held["y"].to_numpy() * sw)
    expected = stats.binom(sw.astype(int), mu).logpmf(k).sum()
    assert conditional_loglik(m, held, sample_weight=sw) == pytest.approx(
        expected / len(held), abs=1e-10
    )
    assert np.isfinite(marginal_loglik(m, held, sample_weight=sw))


# ------------------------------------------------------ scikit-learn plumbing


def test_pipeline_reaches_the_final_step():
    df = load_dataset("sleepstudy")

    def add_week(X):
        return X.assign(week=X["days"] / 7.0)

    pipe = Pipeline(
        [
            ("week", FunctionTransformer(add_week)),
            ("m", MixedLMRegressor(formula="reaction ~ 1 + week + (1 + week|subj)")),
        ]
    )
    train, held = df[df["subj"] > "S340"], df[df["subj"] <= "S340"]
    pipe.fit(train)
    direct = marginal_loglik(pipe[-1], add_week(held))
    assert marginal_loglik(pipe, held) == direct
    res = cross_validate(pipe, df, cv=GroupKFold(4), groups=df["subj"], scoring=marginal_loglik)
    assert np.all(np.isfinite(res["test_score"]))


def test_n_jobs_two_gives_the_same_scores():
    df = load_dataset("sleepstudy")
    formulas = ["reaction ~ 1 + days + (1|subj)", SLEEP]
    kw = dict(cv=GroupKFold(4), scoring=marginal_loglik)
    one = GridSearchCV(MixedLMRegressor(), {"formula": formulas}, n_jobs=1, **kw)
    two = GridSearchCV(MixedLMRegressor(), {"formula": formulas}, n_jobs=2, **kw)
    one.fit(df, groups=df["subj"])
    two.fit(df, groups=df["subj"])
    np.testing.assert_allclose(
        two.cv_results_["mean_test_score"], one.cv_results_["mean_test_score"], rtol=1e-12
    )


def _weighted_search(df, w):
    est = MixedLMRegressor(formula=SLEEP)
    if sklearn.get_config()["enable_metadata_routing"]:
        est = est.set_fit_request(sample_weight=True)
    g = GridSearchCV(est, {"reml": [False]}, cv=GroupKFold(4), scoring=marginal_loglik)
    return g.fit(df, groups=df["subj"], sample_weight=w)


@pytest.mark.parametrize("routing", [False, True])
def test_sample_weight_reaches_fit_and_scorer(routing):
    df = load_dataset("sleepstudy")
    w = np.where(df["days"] > 4, 2.0, 0.5)
    with sklearn.config_context(enable_metadata_routing=routing):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "scorer does not support sample_weight"
            g = _weighted_search(df, w)
    train, test = next(GroupKFold(4).split(df, groups=df["subj"]))
    m = MixedLMRegressor(formula=SLEEP).fit(df.iloc[train], sample_weight=w[train])
    expected = marginal_loglik(m, df.iloc[test], sample_weight=w[test])
    assert g.cv_results_["split0_test_score"][0] == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(marginal_loglik(m, df.iloc[test]), abs=1e-3)


def test_zero_weight_rows_are_left_out():
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula=SLEEP).fit(df[df["subj"] > "S310"])
    held = df[df["subj"] <= "S310"]
    w = np.where(held["days"] == 3, 0.0, 1.0)
    assert marginal_loglik(m, held, sample_weight=w) == pytest.approx(
        marginal_loglik(m, held[w > 0]), abs=1e-12
    )


def test_unseen_levels_in_a_nested_term():
    """(1|batch/cask) on pastes: casks of a held-out batch are new levels of the
    batch & cask term, and rows of a seen batch may have a new cask."""
    df = load_dataset("pastes")
    held = (df["batch"] == "A") | ((df["batch"] == "B") & (df["cask"] == "a"))
    m = MixedLMRegressor(formula="strength ~ 1 + (1|batch/cask)").fit(df[~held])
    assert np.isfinite(marginal_loglik(m, df[held]))
    assert np.isfinite(conditional_loglik(m, df[held]))


def test_multimetric_and_pickling():
    df = load_dataset("sleepstudy")
    res = cross_validate(
        MixedLMRegressor(formula=SLEEP),
        df,
        cv=KFold(3),
        scoring={"ll": marginal_loglik, "dev": marginal_deviance},
    )
    n = np.array([len(t) for _, t in KFold(3).split(df)])
    np.testing.assert_allclose(res["test_dev"], -2 * n * res["test_ll"], rtol=1e-12)
    for scorer in (marginal_loglik, conditional_loglik, marginal_deviance, conditional_deviance):
        assert pickle.loads(pickle.dumps(scorer)) is scorer
    assert repr(marginal_loglik) == "sklmixed.scorers.marginal_loglik"


def test_errors():
    df = load_dataset("sleepstudy")
    with pytest.raises(TypeError, match="sklmixed mixed models.*LinearRegression"):
        marginal_loglik(LinearRegression().fit(df[["days"]], df["reaction"]), df[["days"]])
    pipe = Pipeline([("lr", LinearRegression())]).fit(df[["days"]], df["reaction"])
    with pytest.raises(TypeError, match="LinearRegression"):
        conditional_loglik(pipe, df[["days"]], df["reaction"])
    with pytest.raises(NotFittedError):
        marginal_loglik(MixedLMRegressor(formula=SLEEP), df)
    m = MixedLMRegressor(formula=SLEEP).fit(df)
    with pytest.raises(DataError, match="'reaction'"):
        marginal_loglik(m, df.drop(columns="reaction"))
    with pytest.raises(DataError, match="y has 3 values"):
        marginal_loglik(m, df, [1.0, 2.0, 3.0])
    nf = MixedLMRegressor(groups="subj").fit(df[["days", "subj"]], df["reaction"])
    with pytest.raises(DataError, match="pass y"):
        marginal_loglik(nf, df[["days", "subj"]])
    assert np.isfinite(marginal_loglik(nf, df[["days", "subj"]], df["reaction"]))


# ------------------------------------------------------------ warm starts


def test_warm_start_refits_from_the_previous_theta():
    df = load_dataset("sleepstudy")
    folds = list(GroupKFold(5).split(df, groups=df["subj"]))
    evals = {}
    for warm in (False, True):
        m = MixedLMRegressor(formula=SLEEP, warm_start=warm)
        evals[warm], objectives, previous = 0, [], None
        for train, _ in folds:
            m.fit(df.iloc[train])
            if warm and previous is not None:
                np.testing.assert_array_equal(m.optsum_["initial"], previous)
            previous = m.theta_.copy()
            evals[warm] += m.optsum_["feval"]
            objectives.append(m.objective_)
        cold = [MixedLMRegressor(formula=SLEEP).fit(df.iloc[t]).objective_ for t, _ in folds]
        np.testing.assert_allclose(objectives, cold, rtol=0, atol=1e-6)
    assert evals[True] < evals[False]


def test_warm_start_needs_the_same_theta_layout():
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)", warm_start=True).fit(df)
    m.set_params(formula=SLEEP).fit(df)  # three thetas now: a cold start
    np.testing.assert_array_equal(m.optsum_["initial"], [1.0, 0.0, 1.0])
    theta = m.theta_.copy()
    m.fit(df.iloc[::2])
    np.testing.assert_array_equal(m.optsum_["initial"], theta)
    with pytest.raises(TypeError, match="warm_start"):
        MixedLMRegressor(formula=SLEEP, warm_start="yes").fit(df)


def test_glmm_warm_start():
    df = load_dataset("contra")
    formula = "use ~ 1 + age + urban + (1|dist)"
    clf = MixedGLMClassifier(formula=formula, warm_start=True).fit(df.iloc[::2])
    theta = clf.theta_.copy()
    clf.fit(df)
    assert clf.optsum_["fitlog"][0][0][0] == theta[0]  # the first (theta-only) stage
    cold = MixedGLMClassifier(formula=formula).fit(df)
    assert clf.objective_ == pytest.approx(cold.objective_, abs=1e-3)
    fast = MixedGLMClassifier(formula=formula, fast=True, warm_start=True).fit(df.iloc[::2])
    theta = fast.theta_.copy()
    np.testing.assert_array_equal(fast.fit(df).optsum_["initial"], theta)


def test_warm_start_from_a_singular_fit():
    """A previous theta of exactly zero (dyestuff2, a boundary fit) is a valid start."""
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)", warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m.fit(load_dataset("dyestuff2"))
    assert m.theta_[0] == 0.0
    m.fit(load_dataset("dyestuff"))
    assert m.optsum_["initial"][0] == 0.0
    cold = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    assert m.objective_ == pytest.approx(cold.objective_, abs=1e-6)


# ------------------------------------------- dispersion families and offsets


def _gamma_nb_data(seed=5):
    """30 groups of 8 rows: log link, random intercept sd 0.5, exposure t in 1..4."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.shape[0])
    t = rng.integers(1, 5, g.shape[0]).astype(float)
    mu = t * np.exp(0.3 + 0.4 * x + rng.normal(scale=0.5, size=30)[g])
    return pd.DataFrame(
        {
            "gamma": rng.gamma(1 / 0.3, 0.3 * mu),
            "count": rng.negative_binomial(2.5, 2.5 / (2.5 + mu)).astype(float),
            "x": x,
            "t": t,
            "g": [f"g{i:02d}" for i in g],
        }
    )


def _family_logpdf(m, y, mu):
    if m.family == "gamma":
        return stats.gamma(1 / m.dispersion_, scale=m.dispersion_ * mu).logpdf(y)
    k = m.dispersion_
    return stats.nbinom(k, k / (k + mu)).logpmf(y)


@pytest.mark.parametrize("family, column", [("gamma", "gamma"), ("negative_binomial", "count")])
def test_dispersion_families_agq_matches_numerical_integration(family, column):
    """The held-out groups' intercepts integrated at the fitted dispersion (or
    shape), with the offsets of the held-out rows, against scipy.integrate.quad."""
    df = _gamma_nb_data()
    train, held = df[df["g"] >= "g06"], df[df["g"] < "g06"]
    formula = f"{column} ~ 1 + x + offset(log(t)) + (1|g)"
    m = MixedGLMRegressor(formula=formula, family=family, nagq=25).fit(train)
    sd = m.theta_[0]
    total = 0.0
    for _, grp in held.groupby("g"):
        eta = m.coef_[0] + m.coef_[1] * grp["x"].to_numpy() + np.log(grp["t"].to_numpy())
        y = grp[column].to_numpy()

        def f(b, eta=eta, y=y):
            return np.exp(_family_logpdf(m, y, np.exp(eta + b)).sum()) * stats.norm.pdf(b, 0, sd)

        val, _ = integrate.quad(f, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)
        total += np.log(val)
    assert marginal_loglik(m, held) == pytest.approx(total / len(held), rel=1e-7)
    # conditional: independent rows at predict's mean (the new rows' offsets in it)
    mu = m.predict(held)
    expected = _family_logpdf(m, held[column].to_numpy(), mu)
    assert conditional_loglik(m, held) == pytest.approx(expected.mean(), rel=1e-10)
    assert conditional_deviance(m, held) == pytest.approx(-2 * expected.sum(), rel=1e-10)
    # Laplace (the observed information, as the fit) is close to the integral
    lap = MixedGLMRegressor(formula=formula, family=family).fit(train)
    assert abs(marginal_loglik(lap, held) - total / len(held)) < 0.01


def test_offset_parameter_reaches_the_scorers():
    df = _gamma_nb_data()
    train, held = df[df["g"] >= "g06"], df[df["g"] < "g06"]
    formula = "gamma ~ 1 + x + offset(log(t)) + (1|g)"
    m = MixedGLMRegressor(formula=formula, family="gamma").fit(train)
    p = MixedGLMRegressor(formula="gamma ~ 1 + x + (1|g)", family="gamma").fit(
        train, offset=np.log(train["t"])
    )
    log_t = np.log(held["t"].to_numpy())
    for scorer in (marginal_loglik, conditional_loglik, marginal_deviance):
        assert scorer(p, held, offset=log_t) == pytest.approx(scorer(m, held), rel=1e-6)
        # offset 0 would score the rates as counts: refused, not silently wrong
        with pytest.raises(DataError, match="fitted with the offset parameter"):
            scorer(p, held)
    with pytest.raises(DataError, match="offset has 3 values"):
        marginal_loglik(p, held, offset=[0.0, 1.0, 2.0])
    # through cross_validate with metadata routing
    with sklearn.config_context(enable_metadata_routing=True):
        est = MixedGLMRegressor(formula="gamma ~ 1 + x + (1|g)", family="gamma", fast=True)
        est = est.set_fit_request(offset=True)
        cv = cross_validate(
            est,
            df,
            cv=GroupKFold(3),
            scoring=marginal_loglik,
            params={"offset": np.log(df["t"].to_numpy()), "groups": df["g"]},
        )
    train_idx, test_idx = next(GroupKFold(3).split(df, groups=df["g"]))
    fold = MixedGLMRegressor(formula="gamma ~ 1 + x + (1|g)", family="gamma", fast=True).fit(
        df.iloc[train_idx], offset=np.log(df["t"].to_numpy()[train_idx])
    )
    expected = marginal_loglik(fold, df.iloc[test_idx], offset=np.log(df["t"].to_numpy()[test_idx]))
    assert cv["test_score"][0] == pytest.approx(expected, rel=1e-10)


def test_dispersion_family_warm_start():
    df = _gamma_nb_data()
    formula = "count ~ 1 + x + offset(log(t)) + (1|g)"
    m = MixedGLMRegressor(formula=formula, family="negative_binomial", warm_start=True)
    m.fit(df.iloc[::2])
    theta, shape = m.theta_.copy(), m.dispersion_
    m.fit(df)
    # the first (theta-only) stage starts at the previous theta and log shape
    np.testing.assert_allclose(m.optsum_["fitlog"][0][0], [theta[0], np.log(shape)])
    cold = MixedGLMRegressor(formula=formula, family="negative_binomial").fit(df)
    assert m.objective_ == pytest.approx(cold.objective_, abs=1e-4)
    assert m.dispersion_ == pytest.approx(cold.dispersion_, rel=1e-3)
