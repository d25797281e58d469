"""model.simulate: the simulated responses have the fitted model's moments.

Every check compares a Monte Carlo estimate from n_sims simulations with the moment
the fitted model implies, allowing 5 standard errors of that estimate, computed here
from n_sims (for normal responses from the implied variance, otherwise from the
simulations' own higher moments). Over the few hundred comparisons of a test the
chance that a correct simulator exceeds 5 standard errors anywhere is below 1e-3;
the seeds are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError, InferenceError

Z = 5.0  # standard errors allowed
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
WEIGHTS = WEIGHTS / np.sqrt(2 * np.pi)  # E[f(t)], t ~ N(0, 1)


def _lmm_moments(m, weights=None):
    """Mean X beta and covariance sigma^2 (Z Lambda Lambda' Z' + W^-1) of y."""
    df = m.design_
    mean = df.X @ m.coef_
    term = df.reterms[0]
    lam = term.lambda_from_theta(m.theta_) * m.sigma_
    cov_b = lam @ lam.T
    zi = term.z
    same = term.refs[:, None] == term.refs[None, :]
    cov = np.where(same, zi @ cov_b @ zi.T, 0.0)
    w = np.ones(mean.shape[0]) if weights is None else weights
    cov[np.diag_indices_from(cov)] += m.sigma_**2 / w
    return mean, cov


@pytest.mark.parametrize("weighted", [False, True])
def test_lmm_mean_variance_and_covariance_within_subject(weighted):
    sleep = load_dataset("sleepstudy")
    w = 1.0 + (sleep["days"].to_numpy() % 3) / 2 if weighted else None
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        sleep, sample_weight=w
    )
    S = 4000
    y = m.simulate(n_sims=S, random_state=7)
    assert y.shape == (S, 180)
    mean, cov = _lmm_moments(m, w)
    var = np.diag(cov)
    assert np.all(np.abs(y.mean(0) - mean) <= Z * np.sqrt(var / S))
    s2 = y.var(0, ddof=1)
    assert np.all(np.abs(s2 - var) <= Z * var * np.sqrt(2 / (S - 1)))
    # all pairs of observations of the first two subjects (within and between)
    idx = np.arange(20)
    c = np.cov(y[:, idx], rowvar=False)
    C = cov[np.ix_(idx, idx)]
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / (S - 1))
    assert np.all(np.abs(c - C) <= Z * se)
    assert np.all(C[:10, 10:] == 0) and np.all(C[:10, :10] > 0)  # the test has teeth


def _glmm_data(seed, n_groups=25, per=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.shape[0])
    b = rng.normal(scale=0.6, size=n_groups)
    eta = 0.3 + 0.5 * x + b[g]
    trials = rng.integers(1, 9, size=g.shape[0])
    return pd.DataFrame(
        {
            "g": [f"G{i:02d}" for i in g],
            "x": x,
            "count": rng.poisson(np.exp(eta)).astype(float),
            "bin": rng.binomial(1, expit(eta)).astype(float),
            "prop": rng.binomial(trials, expit(eta)) / trials,
            "trials": trials.astype(float),
        }
    )


def _eta_and_sd(m):
    term = m.design_.reterms[0]
    eta = m.design_.X @ m.coef_
    s = float(term.lambda_from_theta(m.theta_)[0, 0])  # sd of the random intercept
    return eta, s, term.refs


def test_poisson_mean_and_variance():
    d = _glmm_data(1)
    m = MixedGLMRegressor(formula="count ~ 1 + x + (1|g)", family="poisson").fit(d)
    S = 4000
    y = m.simulate(n_sims=S, random_state=11)
    assert np.all(y == np.round(y)) and y.min() >= 0
    eta, s, _ = _eta_and_sd(m)
    # log-normal mixing: E y = exp(eta + s^2/2), Var y = E y + exp(2 eta)(e^{2s^2} - e^{s^2})
    mean = np.exp(eta + s**2 / 2)
    var = mean + np.exp(2 * eta) * (np.exp(2 * s**2) - np.exp(s**2))
    assert np.all(np.abs(y.mean(0) - mean) <= Z * np.sqrt(var / S))
    _check_second_moment(y, mean, var)


def _check_second_moment(y, mean, var):
    """E y^2 = var + mean^2, against the mean of y^2 (a plain sample mean, whose
    standard error the simulations give; the sample variance's delta-method error
    vanishes for 0/1 responses near p = 1/2)."""
    y2 = y**2
    se = y2.std(0, ddof=1) / np.sqrt(y.shape[0])
    assert np.all(np.abs(y2.mean(0) - (var + mean**2)) <= Z * se)


@pytest.mark.parametrize("family", ["bernoulli", "binomial"])
def test_binary_and_binomial_mean_variance_and_covariance(family):
    d = _glmm_data(2)
    if family == "bernoulli":
        m = MixedGLMRegressor(formula="bin ~ 1 + x + (1|g)", family="bernoulli").fit(d)
        trials = np.ones(len(d))
    else:
        m = MixedGLMRegressor(formula="prop ~ 1 + x + (1|g)", family="binomial").fit(
            d, sample_weight=d["trials"]
        )
        trials = d["trials"].to_numpy()
    S = 4000
    y = m.simulate(n_sims=S, random_state=5)
    np.testing.assert_allclose((y * trials) % 1, 0, atol=1e-9)  # whole successes
    eta, s, refs = _eta_and_sd(m)
    p = expit(eta[:, None] + s * NODES[None, :])  # (n, nodes)
    mean = p @ WEIGHTS
    var = (p * (1 - p)) @ WEIGHTS / trials + (p**2) @ WEIGHTS - mean**2
    assert np.all(np.abs(y.mean(0) - mean) <= Z * np.sqrt(var / S))
    _check_second_moment(y, mean, var)
    dev = y - y.mean(0)
    # two observations of one group share its random effect
    i, j = np.flatnonzero(refs == refs[0])[:2]
    cov = (p[i] * p[j]) @ WEIGHTS - mean[i] * mean[j]
    prod = dev[:, i] * dev[:, j]
    assert abs(prod.mean() - cov) <= Z * prod.std() / np.sqrt(S)
    assert cov > 0.01  # the test has teeth


def test_classifier_simulates_its_labels():
    contra = load_dataset("contra")
    clf = MixedGLMClassifier(formula="use ~ 1 + urban + (1|dist)", fast=True).fit(contra)
    y = clf.simulate(n_sims=2, random_state=0)
    assert y.shape == (2, len(contra)) and set(np.unique(y)) == {"N", "Y"}


def test_same_seed_same_draws_and_generators_accepted():
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    a = m.simulate(3, random_state=42)
    np.testing.assert_array_equal(a, m.simulate(3, random_state=42))
    np.testing.assert_array_equal(a, m.simulate(3, random_state=np.random.default_rng(42)))
    assert not np.array_equal(a, m.simulate(3, random_state=43))
    m.simulate(1, random_state=np.random.RandomState(0))


def test_zero_weight_rows_get_their_mean():
    sleep = load_dataset("sleepstudy")
    w = np.ones(len(sleep))
    w[:3] = 0.0
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(sleep, sample_weight=w)
    y = m.simulate(2, random_state=0)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("n_sims", [0, -1, 2.5, "3", True])
def test_bad_n_sims(n_sims):
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    with pytest.raises(InferenceError, match="n_sims must be a positive integer"):
        m.simulate(n_sims)


def test_bad_random_state():
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    with pytest.raises(InferenceError, match="random_state"):
        m.simulate(1, random_state="seed")
    with pytest.raises(InferenceError, match="random_state"):
        m.simulate(1, random_state=True)


def test_binomial_needs_whole_trials():
    d = _glmm_data(3)
    trials = d["trials"].to_numpy() + 0.5
    m = MixedGLMRegressor(formula="prop ~ 1 + x + (1|g)", family="binomial").fit(
        d.assign(prop=d["prop"].clip(0, 1)), sample_weight=trials
    )
    with pytest.raises(DataError, match="whole numbers"):
        m.simulate(1)


def _family_data(family, seed=4, n_groups=30, per=10):
    """Responses of ``family`` with a log link, a random intercept (sd 0.5) and an
    offset log(t) with exposures t from 1 to 5."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.shape[0])
    t = rng.integers(1, 6, size=g.shape[0]).astype(float)
    mu = np.exp(0.2 + 0.4 * x + np.log(t) + rng.normal(scale=0.5, size=n_groups)[g])
    if family == "negative_binomial":
        y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu)).astype(float)
    elif family == "gamma":
        y = rng.gamma(1 / 0.3, 0.3 * mu)
    else:
        y = rng.wald(mu, np.full_like(mu, 1 / 0.2))
    return pd.DataFrame({"g": [f"G{i:02d}" for i in g], "x": x, "t": t, "y": y})


@pytest.mark.parametrize("family", ["negative_binomial", "gamma", "inverse_gaussian"])
def test_dispersion_families_mean_and_variance_with_an_offset(family):
    d = _family_data(family)
    m = MixedGLMRegressor(
        formula="y ~ 1 + x + offset(log(t)) + (1|g)", family=family, fast=True
    ).fit(d)
    S = 4000
    y = m.simulate(n_sims=S, random_state=3)
    if family == "negative_binomial":
        assert np.all(y == np.round(y)) and y.min() >= 0
    else:
        assert y.min() > 0
    eta, s, _ = _eta_and_sd(m)
    eta = eta + np.log(d["t"].to_numpy())  # the offset is part of the mean
    # E mu^k = exp(k eta + k^2 s^2 / 2) for mu = exp(eta + b), b ~ N(0, s^2)
    m1, m2, m3 = (np.exp(k * eta + k * k * s * s / 2) for k in (1, 2, 3))
    k = m.dispersion_

    def second_moment(k):  # E y^2 = Var y + (E y)^2, at shape or dispersion k
        if family == "negative_binomial":  # Var(y | b) = mu + mu^2 / shape
            return m1 + m2 / k + m2
        if family == "gamma":  # phi mu^2
            return k * m2 + m2
        return k * m3 + m2  # inverse Gaussian: phi mu^3

    var = second_moment(k) - m1**2
    assert np.all(np.abs(y.mean(0) - m1) <= Z * np.sqrt(var / S))
    # The family's parameter, from one statistic per simulation pooling all rows (a
    # row's second moment alone cannot resolve it against the random effect's
    # share): sum_i y_i^2 / E y_i^2 has mean n. For the inverse Gaussian y^2 is too
    # heavy-tailed for its sample mean's standard error; 1/y is not, and
    # E[1/y | mu] = 1/mu + phi gives E[1/y] = exp(-eta + s^2/2) + phi.
    if family == "inverse_gaussian":

        def expected(k):
            return np.exp(-eta + s * s / 2) + k

        pooled = (1.0 / y / expected(k)).sum(1)
        wrong = [np.sum(expected(f * k) / expected(k)) for f in (1 / 1.5, 1.5)]
    else:
        pooled = (y**2 / second_moment(k)).sum(1)
        wrong = [np.sum(second_moment(f * k) / second_moment(k)) for f in (1 / 1.5, 1.5)]
    se = pooled.std(ddof=1) / np.sqrt(S)
    n = y.shape[1]
    assert abs(pooled.mean() - n) <= Z * se
    # a parameter off by a factor 1.5 either way would show: the test has teeth
    assert min(abs(w - n) for w in wrong) > 2 * Z * se
    # the test has teeth: without the offset the means would be off by t
    far = np.abs(y.mean(0) - m1 / d["t"].to_numpy()) > Z * np.sqrt(var / S)
    assert far.mean() > 0.5


def test_offset_parameter_and_lmm_offsets_are_in_the_mean():
    sleep = load_dataset("sleepstudy")
    off = 40.0 * (sleep["days"].to_numpy() % 2)
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(sleep, offset=off)
    S = 2000
    y = m.simulate(n_sims=S, random_state=1)
    mean = m.design_.X @ m.coef_ + off
    sd = np.sqrt(m.sigma_**2 + (m.theta_[0] * m.sigma_) ** 2)
    assert np.all(np.abs(y.mean(0) - mean) <= Z * sd / np.sqrt(S))
    d = _glmm_data(6)
    t = 1.0 + np.arange(len(d)) % 4
    g = MixedGLMRegressor(formula="count ~ 1 + x + (1|g)").fit(d, offset=np.log(t))
    y = g.simulate(n_sims=S, random_state=2)
    eta, s, _ = _eta_and_sd(g)
    mean = np.exp(eta + np.log(t) + s**2 / 2)
    var = mean + np.exp(2 * (eta + np.log(t))) * (np.exp(2 * s**2) - np.exp(s**2))
    assert np.all(np.abs(y.mean(0) - mean) <= Z * np.sqrt(var / S))


def test_a_model_fitted_out_of_core_cannot_simulate_its_rows():
    import pyarrow as pa
    import pyarrow.dataset as ds

    from sklmixed.exceptions import RowsNotAvailableError

    df = load_dataset("sleepstudy")
    data = ds.dataset(pa.Table.from_pandas(df, preserve_index=False))
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(data)
    with pytest.raises(RowsNotAvailableError, match="out of core"):
        m.simulate(random_state=0)
