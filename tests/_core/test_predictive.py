"""Predictive densities with random effects integrated out, against dense formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sklmixed._core._families import get_family, get_link
from sklmixed._core._predictive import (
    agq_loglik,
    effect_matrix,
    gaussian_logpdf,
    laplace_loglik,
    psd_factor,
)


def _parts(rng, n):
    """Two crossed terms: 7 levels with 2 columns, 5 levels with 1 column."""
    a = rng.integers(0, 7, n)
    b = rng.integers(100, 105, n)  # codes need not start at zero
    return [(a, rng.normal(size=(n, 2))), (b, rng.normal(size=(n, 1)))]


def test_effect_matrix_dense_and_sparse_agree():
    rng = np.random.default_rng(0)
    parts = _parts(rng, 40)
    dense = effect_matrix(parts, 40)
    sparse = effect_matrix(parts, 40, dense_limit=0)
    assert isinstance(dense, np.ndarray) and not isinstance(sparse, np.ndarray)
    np.testing.assert_array_equal(sparse.toarray(), dense)
    assert dense.shape == (40, len(np.unique(parts[0][0])) * 2 + len(np.unique(parts[1][0])))
    # each row: its level's columns of each term hold v, everything else is zero
    assert np.count_nonzero(dense, axis=1).max() <= 3


@pytest.mark.parametrize("dense_limit", [10**6, 0])
def test_gaussian_logpdf_equals_scipy(dense_limit):
    rng = np.random.default_rng(1)
    n = 40
    V = effect_matrix(_parts(rng, n), n, dense_limit=dense_limit)
    Vd = V if isinstance(V, np.ndarray) else V.toarray()
    var = rng.uniform(0.5, 2.0, n)
    r = rng.normal(size=n)
    expected = stats.multivariate_normal(np.zeros(n), np.diag(var) + Vd @ Vd.T).logpdf(r)
    assert gaussian_logpdf(r, var, V) == pytest.approx(expected, abs=1e-10, rel=0)


def test_psd_factor_of_singular_blocks():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(3, 2, 1))
    G = A @ A.transpose(0, 2, 1)  # rank one
    G[1] = 0.0
    R = psd_factor(G)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), G, atol=1e-12)


def test_laplace_dense_and_sparse_agree_and_no_effects_is_the_glm():
    rng = np.random.default_rng(3)
    n = 60
    parts = _parts(rng, n)
    fam, link = get_family("poisson"), get_link(get_family("poisson"), None)
    eta0 = rng.normal(0.3, 0.2, n)
    y = rng.poisson(np.exp(eta0)).astype(float)
    wt = np.ones(n)
    dense = laplace_loglik(y, eta0, wt, effect_matrix(parts, n), fam, link)
    sparse = laplace_loglik(y, eta0, wt, effect_matrix(parts, n, dense_limit=0), fam, link)
    assert dense == pytest.approx(sparse, abs=1e-10)
    none = laplace_loglik(y, eta0, wt, np.zeros((n, 0)), fam, link)
    assert none == pytest.approx(stats.poisson(np.exp(eta0)).logpmf(y).sum(), abs=1e-10)


def test_one_node_agq_is_laplace():
    rng = np.random.default_rng(4)
    n = 50
    level = rng.integers(0, 6, n)
    v = np.full(n, 0.8)
    fam = get_family("bernoulli")
    link = get_link(fam, "probit")  # a non-canonical link: Fisher scoring
    eta0 = rng.normal(0, 0.5, n)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    wt = np.ones(n)
    V = effect_matrix([(level, v[:, None])], n)
    laplace = laplace_loglik(y, eta0, wt, V, fam, link)
    one = agq_loglik(y, eta0, wt, level, v, fam, link, np.zeros(1), np.ones(1))
    assert one == pytest.approx(laplace, abs=1e-10)


def _direct_loglik(family, y, eta):
    """log p(y | eta) per row by scipy.stats (log link unless probit)."""
    if family == "poisson":
        return stats.poisson(np.exp(eta)).logpmf(y)
    if family == "gamma":  # dispersion 0.4: shape 2.5, mean exp(eta)
        return stats.gamma(2.5, scale=np.exp(eta) / 2.5).logpdf(y)
    return stats.bernoulli(stats.norm.cdf(eta)).logpmf(y)  # probit


@pytest.mark.parametrize(
    ("family", "link"), [("poisson", "log"), ("gamma", "log"), ("bernoulli", "probit")]
)
def test_laplace_and_agq_against_direct_integration(family, link):
    """Per level, the integral over u ~ N(0, 1) of prod_i p(y_i | eta0_i + v_i u)
    by scipy's quad; the Laplace approximation g(u*) - log(h) / 2 with g the log
    integrand (prior density's constant aside), u* its maximizer and h = -g''(u*)
    by finite differences (an exact Hessian: the canonical log link for the
    Poisson, the observed information for the Gamma; the probit link's Fisher
    curvature is not -g'', so only its quadrature is checked)."""
    from scipy import integrate, optimize

    rng = np.random.default_rng(6)
    n, nl = 36, 4
    level = np.repeat(np.arange(nl), n // nl)
    v = rng.uniform(0.4, 1.2, n)
    eta0 = rng.normal(0.2, 0.3, n)
    fam = get_family(family)
    if family == "gamma":
        fam = fam.with_param(0.4)
        y = rng.gamma(2.5, np.exp(eta0 + 0.5 * v) / 2.5)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta0 + 0.5 * v)).astype(float)
    else:
        y = (rng.uniform(size=n) < stats.norm.cdf(eta0 + 0.5 * v)).astype(float)
    lnk = get_link(fam, link)
    wt = np.ones(n)

    exact = laplace = 0.0
    for j in range(nl):
        rows = level == j

        def g(u, rows=rows):
            return _direct_loglik(family, y[rows], eta0[rows] + v[rows] * u).sum() - u * u / 2

        u_star = optimize.minimize_scalar(lambda u, g=g: -g(u), bracket=(-1.0, 1.0)).x
        top = g(u_star)
        integral = integrate.quad(lambda u, g=g, c=top: np.exp(g(u) - c), -12.0, 12.0, epsabs=0)[0]
        exact += top + np.log(integral / np.sqrt(2 * np.pi))
        step = 1e-4
        h = -(g(u_star + step) - 2 * top + g(u_star - step)) / step**2
        laplace += top - 0.5 * np.log(h)

    nodes, weights = np.polynomial.hermite_e.hermegauss(25)
    weights = weights / np.sqrt(2 * np.pi)
    agq = agq_loglik(y, eta0, wt, level, v, fam, lnk, nodes, weights)
    assert agq == pytest.approx(exact, abs=1e-7)
    if family != "bernoulli":
        V = effect_matrix([(level, v[:, None])], n)
        assert laplace_loglik(y, eta0, wt, V, fam, lnk) == pytest.approx(laplace, abs=1e-5)
