"""Links, families and the Laplace deviance against independent computations.

Every link is checked against its textbook formula and a numerical derivative;
the Laplace deviance of every family and link at a given (beta, theta) against a
direct computation: the conditional modes found by a general-purpose optimizer on
the penalized deviance, the working weights of the expected information at the
modes (as lme4 and MixedModels.jl use them) and a dense log-determinant.

Poisson also for non-negative rates (non-integer responses). The families with a
dispersion (negative binomial, Gamma, inverse Gaussian): densities against scipy,
deviances, variance derivatives and the maximum-likelihood parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special, stats

from sklmixed._core._families import (
    LINKS,
    GammaFamily,
    InverseGaussianFamily,
    NegativeBinomialFamily,
    PoissonFamily,
    get_family,
    get_link,
)
from sklmixed._core._glmm import GLMMProblem
from sklmixed._core._reterm import ReTerm

# The inverse links as the textbooks write them (McCullagh & Nelder, table 2.1).
TEXTBOOK_INVERSE = {
    "logit": lambda eta: 1.0 / (1.0 + np.exp(-eta)),
    "probit": stats.norm.cdf,
    "cloglog": lambda eta: 1.0 - np.exp(-np.exp(eta)),
    "cauchit": stats.cauchy.cdf,
    "log": np.exp,
    "identity": lambda eta: eta,
    "sqrt": lambda eta: eta**2,
    "inverse": lambda eta: 1.0 / eta,
}
# eta where each link is defined and well away from its clamps
DOMAIN = {
    "logit": (-4.0, 4.0),
    "probit": (-3.0, 3.0),
    "cloglog": (-3.0, 1.5),
    "cauchit": (-6.0, 6.0),
    "log": (-3.0, 3.0),
    "identity": (0.2, 5.0),
    "sqrt": (0.3, 3.0),
    "inverse": (0.3, 3.0),
}


def test_every_link_is_checked():
    assert set(LINKS) == set(TEXTBOOK_INVERSE)


@pytest.mark.parametrize("name", sorted(TEXTBOOK_INVERSE))
def test_link_inverse_derivative_and_round_trip(name):
    link = LINKS[name]()
    eta = np.linspace(*DOMAIN[name], 41)
    mu = link.inverse(eta)
    np.testing.assert_allclose(mu, TEXTBOOK_INVERSE[name](eta), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(link.link(mu), eta, rtol=1e-9, atol=1e-10)
    h = 1e-6
    numeric = (TEXTBOOK_INVERSE[name](eta + h) - TEXTBOOK_INVERSE[name](eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), numeric, rtol=1e-7, atol=1e-10)


def _data(family: str, seed: int = 3):
    """A small grouped data set with a response that suits the family."""
    rng = np.random.default_rng(seed)
    n, nl = 120, 12
    refs = np.arange(n) % nl
    x = rng.normal(size=n)
    X = np.column_stack((np.ones(n), x))
    b = rng.normal(0, 0.6, nl)
    weights = None
    if family == "poisson":
        y = rng.poisson(np.exp(0.8 + 0.3 * x + b[refs])).astype(float)
    elif family == "binomial":
        weights = rng.integers(1, 8, n).astype(float)
        p = special.expit(0.2 + 0.5 * x + b[refs])
        y = rng.binomial(weights.astype(int), p) / weights
    else:
        y = (rng.uniform(size=n) < special.expit(0.2 + 0.8 * x + b[refs])).astype(float)
    term = ReTerm("g", refs.astype(np.int64), tuple(range(nl)), np.ones((n, 1)), ("c",), None)
    return X, y, term, weights


def _start(family: str, link: str) -> np.ndarray:
    """A beta whose linear predictor stays inside the link's domain."""
    if link in ("identity", "sqrt"):
        return np.array([2.0, 0.1])
    if family == "poisson":
        return np.array([0.7, 0.25])
    return np.array([0.1, 0.4])


COMBOS = [(f, lk) for f in ("bernoulli", "binomial", "poisson") for lk in get_family(f).links]


@pytest.mark.parametrize(("family", "link"), COMBOS)
def test_laplace_deviance_matches_a_direct_computation(family, link):
    X, y, term, weights = _data(family)
    fam, lnk = get_family(family), get_link(get_family(family), link)
    problem = GLMMProblem(X, y, [term], fam, lnk, weights=weights)
    beta, theta = _start(family, link), np.array([0.45])
    got = problem.deviance(theta, beta)

    pw = np.ones_like(y) if weights is None else weights
    refs, nl = term.refs, term.nlevels

    def mean(u):
        return fam.clamp(lnk.inverse(X @ beta + theta[0] * u[refs]))

    def penalized(u):
        return np.sum(pw * fam.unit_deviance(y, mean(u))) + np.sum(u**2)

    res = optimize.minimize(penalized, np.zeros(nl), method="BFGS", options={"gtol": 1e-10})
    u = res.x
    eta = X @ beta + theta[0] * u[refs]
    mu = fam.clamp(lnk.inverse(eta))
    w = pw * lnk.mu_eta(eta) ** 2 / fam.variance(mu)
    # Lambda' Z' W Z Lambda + I is diagonal here: one scalar term.
    logdet = np.sum(np.log(theta[0] ** 2 * np.bincount(refs, w, minlength=nl) + 1.0))
    expected = penalized(u) + logdet
    assert got == pytest.approx(expected, rel=1e-7)
    # PIRLS's modes minimize the penalized deviance at least as well as BFGS's
    # (compared by value: a flat direction can leave the two 1e-5 apart)
    assert penalized(problem.u[0][:, 0]) <= penalized(u) + 1e-9 * abs(penalized(u))
    np.testing.assert_allclose(problem.u[0][:, 0], u, atol=1e-4)


@pytest.mark.parametrize("family", ["bernoulli", "binomial", "poisson"])
def test_loglik_of_each_family_matches_scipy(family):
    X, y, term, weights = _data(family)
    fam = get_family(family)
    mu = np.clip(np.linspace(0.05, 0.95, y.shape[0]), 0.05, 0.95)
    if family == "poisson":
        mu = mu * 4
        expected = stats.poisson.logpmf(y, mu)
        got = fam.loglik(y, mu, np.ones_like(y))
    elif family == "binomial":
        expected = stats.binom.logpmf(np.rint(y * weights), weights, mu)
        got = fam.loglik(y, mu, weights)
    else:
        expected = stats.bernoulli.logpmf(y, mu)
        got = fam.loglik(y, mu, np.ones_like(y))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the unit deviance is twice the log-likelihood ratio against the saturated model
    wt = np.ones_like(y) if weights is None else weights
    dev = wt * fam.unit_deviance(y, mu)
    np.testing.assert_allclose(
        dev, 2 * (fam.saturated_loglik(y, wt) - fam.loglik(y, mu, wt)), rtol=1e-9, atol=1e-9
    )


def test_poisson_loglik_of_counts_is_the_poisson_pmf():
    y = np.array([0.0, 1.0, 2.0, 5.0, 17.0, 140.0])
    mu = np.array([0.3, 1.0, 2.5, 4.0, 20.0, 150.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0])
    ours = PoissonFamily().loglik(y, mu, wt)
    np.testing.assert_allclose(ours, wt * stats.poisson.logpmf(y, mu), rtol=1e-13)
    # the formula for counts, term by term (what it was before rates were allowed)
    expected = wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))
    np.testing.assert_array_equal(ours, expected)


def test_poisson_loglik_of_rates_extends_the_factorial_by_lgamma():
    y = np.array([0.25, 1.5, 2.75])
    mu = np.array([0.5, 1.0, 3.0])
    ours = PoissonFamily().loglik(y, mu, np.ones(3))
    np.testing.assert_allclose(ours, y * np.log(mu) - mu - special.gammaln(y + 1), rtol=1e-15)
    assert np.all(np.isfinite(ours))
    # continuous in y: between the neighbouring counts' values at the same mean
    grid = np.linspace(2.0, 3.0, 11)
    vals = PoissonFamily().loglik(grid, np.full(11, 2.5), np.ones(11))
    assert np.all(np.isfinite(vals)) and np.all(np.abs(np.diff(vals)) < 0.1)


RNG = np.random.default_rng(12)
COUNTS = np.array([0.0, 1, 2, 5, 13, 40])
POSITIVE = np.array([0.05, 0.4, 1.0, 2.5, 7.0, 30.0])
MU = np.array([0.3, 1.5, 2.0, 4.0, 9.0, 25.0])
ONES = np.ones(6)


def test_negative_binomial_density_is_scipys():
    fam = NegativeBinomialFamily(1.7)
    expected = stats.nbinom.logpmf(COUNTS, 1.7, 1.7 / (1.7 + MU))
    np.testing.assert_allclose(fam.loglik(COUNTS, MU, ONES), expected, rtol=1e-12)
    np.testing.assert_allclose(fam.variance(MU), MU + MU**2 / 1.7)


def test_gamma_density_is_scipys():
    fam = GammaFamily(0.25)  # shape 4
    expected = stats.gamma.logpdf(POSITIVE, a=4.0, scale=MU / 4.0)
    np.testing.assert_allclose(fam.loglik(POSITIVE, MU, ONES), expected, rtol=1e-12)


def test_inverse_gaussian_density_is_scipys():
    phi = 0.3
    fam = InverseGaussianFamily(phi)
    # scipy's invgauss(m, scale=s) has mean m s and variance m^3 s^2
    expected = stats.invgauss.logpdf(POSITIVE, MU * phi, scale=1 / phi)
    np.testing.assert_allclose(fam.loglik(POSITIVE, MU, ONES), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "fam, y",
    [
        (NegativeBinomialFamily(0.8), COUNTS),
        (NegativeBinomialFamily(1e6), COUNTS),
        (GammaFamily(0.4), POSITIVE),
        (InverseGaussianFamily(0.2), POSITIVE),
    ],
)
def test_unit_deviance_is_twice_the_loglik_drop_from_saturated(fam, y):
    drop = 2 * (fam.saturated_loglik(y, ONES) - fam.loglik(y, MU, ONES))
    np.testing.assert_allclose(fam.unit_deviance(y, MU) / fam.scale, drop, rtol=1e-9, atol=1e-9)
    # case weights multiply the log-likelihood
    np.testing.assert_allclose(fam.loglik(y, MU, 3 * ONES), 3 * fam.loglik(y, MU, ONES))


@pytest.mark.parametrize("fam", [NegativeBinomialFamily(2.0), GammaFamily(1.0)])
def test_variance_derivative(fam):
    h = 1e-6
    numeric = (fam.variance(MU + h) - fam.variance(MU - h)) / (2 * h)
    np.testing.assert_allclose(fam.variance_deriv(MU), numeric, rtol=1e-6)
    fam = InverseGaussianFamily(1.0)
    numeric = (fam.variance(MU + h) - fam.variance(MU - h)) / (2 * h)
    np.testing.assert_allclose(fam.variance_deriv(MU), numeric, rtol=1e-6)


@pytest.mark.parametrize("name", ["log", "identity", "sqrt", "inverse"])
def test_link_derivatives(name):
    link = LINKS[name]()
    eta = np.array([0.3, 0.8, 1.5, 2.5])
    h = 1e-5
    np.testing.assert_allclose(link.inverse(link.link(link.inverse(eta))), link.inverse(eta))
    d1 = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), d1, rtol=1e-6, atol=1e-9)
    d2 = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta2(eta), d2, rtol=1e-6, atol=1e-9)


def test_estimate_param_recovers_the_simulated_shape():
    mu = RNG.gamma(2.0, 3.0, size=20000)
    y = RNG.negative_binomial(2.5, 2.5 / (2.5 + mu)).astype(float)
    shape = NegativeBinomialFamily().estimate_param(y, mu, np.ones_like(y))
    assert shape == pytest.approx(2.5, rel=0.05)
    y = RNG.gamma(5.0, mu / 5.0)
    assert GammaFamily().estimate_param(y, mu, np.ones_like(y)) == pytest.approx(0.2, rel=0.05)


def test_families_and_links_by_name():
    for name, link in [
        ("negative_binomial", "log"),
        ("gamma", "log"),
        ("inverse_gaussian", "log"),
    ]:
        fam = get_family(name)
        assert fam.has_dispersion and fam.default_link == link
        assert get_link(fam, None).name == link
    assert get_link(get_family("gamma"), "inverse").name == "inverse"
    with pytest.raises(ValueError, match="not available for family 'negative_binomial'"):
        get_link(get_family("negative_binomial"), "inverse")
    with pytest.raises(ValueError, match="must be positive"):
        GammaFamily(0.0)
    fam = NegativeBinomialFamily(2.0)
    assert fam.with_param(3.0).param == 3.0 and fam.param == 2.0  # immutable
