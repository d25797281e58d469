"""GLMM core: offsets, the observed-information Laplace deviance of the families
with a dispersion, and the Hessian standard errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from sklmixed._core._families import get_family, get_link
from sklmixed._core._glmm import GLMMProblem
from sklmixed._core._reterm import ReTerm


def _design(rng, n=240, nl=12):
    refs = np.repeat(np.arange(nl), n // nl)
    x = rng.normal(size=n)
    X = np.column_stack((np.ones(n), x))
    term = ReTerm("g", refs, tuple(f"l{i}" for i in range(nl)), np.ones((n, 1)), ("(Intercept)",))
    b = rng.normal(scale=0.5, size=nl)
    return X, x, refs, term, b


def _data(family, rng):
    X, x, refs, term, b = _design(rng)
    mu = np.exp(0.8 + 0.4 * x + b[refs])
    if family == "negative_binomial":
        y = rng.negative_binomial(1.5, 1.5 / (1.5 + mu)).astype(float)
    elif family == "gamma":
        y = rng.gamma(3.0, mu / 3.0)
    else:
        y = rng.wald(mu, 1 / 0.3)
    return X, y, term, refs


def _laplace_by_hand(family, link, X, y, refs, nl, beta, lam, offset):
    """-2 log L by the Laplace approximation, level by level with scipy: each
    level's mode by a scalar minimizer, the curvature by finite differences."""
    eta0 = X @ beta + offset
    total = 0.0
    for level in range(nl):
        rows = refs == level

        def h(u, rows=rows):
            mu = link.inverse(eta0[rows] + lam * u)
            return -2 * np.sum(family.loglik(y[rows], mu, np.ones(rows.sum()))) + u**2

        u = optimize.minimize_scalar(
            h, bounds=(-20, 20), method="bounded", options={"xatol": 1e-10}
        ).x
        d = 1e-3  # five-point second difference: error O(d^4)
        second = -h(u + 2 * d) + 16 * h(u + d) - 30 * h(u) + 16 * h(u - d) - h(u - 2 * d)
        curv = second / (12 * d**2) / 2  # 1 + lam^2 sum(w_obs)
        total += h(u) + np.log(curv)
    return total


@pytest.mark.parametrize("name", ["negative_binomial", "gamma", "inverse_gaussian"])
def test_laplace_deviance_is_minus_twice_the_laplace_loglik(name):
    rng = np.random.default_rng(3)
    X, y, term, refs = _data(name, rng)
    offset = rng.uniform(-0.3, 0.3, size=y.shape[0])
    fam = get_family(name).with_param(0.7)
    link = get_link(fam, None)
    problem = GLMMProblem(X, y, [term], fam, link, offset=offset)
    beta, lam = np.array([0.7, 0.35]), 0.45
    dev = problem.deviance(np.array([lam, np.log(0.7)]), beta)
    expected = _laplace_by_hand(fam, link, X, y, refs, term.nlevels, beta, lam, offset)
    assert dev == pytest.approx(expected, abs=1e-6)
    # a vector of theta alone keeps the family's current dispersion
    assert problem.deviance(np.array([lam]), beta) == pytest.approx(dev, abs=1e-9)


def test_inverse_gaussian_with_negative_observed_information_uses_the_random_effects_block():
    # y < mu / 2 makes the inverse Gaussian's observed information negative
    rng = np.random.default_rng(5)
    X, y, term, refs = _data("inverse_gaussian", rng)
    fam = get_family("inverse_gaussian").with_param(0.3)
    link = get_link(fam, None)
    problem = GLMMProblem(X, y, [term], fam, link)
    beta, lam = np.array([0.8, 0.4]), 0.5
    problem.deviance(np.array([lam]), beta)
    assert np.any(problem.observed_information(problem._eta) < 0)
    # Newton's steps for u (beta fixed) came from the random-effects-only problem
    assert problem._newton and problem._re is not problem.lmm
    expected = _laplace_by_hand(fam, link, X, y, refs, term.nlevels, beta, lam, np.zeros(len(y)))
    assert problem.deviance(np.array([lam]), beta) == pytest.approx(expected, abs=1e-6)
    # with beta varying (fast=True), PIRLS keeps Fisher scoring and the Laplace
    # log-determinant still uses the observed information
    problem.deviance(np.array([lam]))
    assert not problem._newton and problem._re is not problem.lmm


def test_observed_information_is_the_second_derivative_of_the_loglik():
    rng = np.random.default_rng(7)
    eta = rng.normal(0.5, 0.4, size=50)
    for name, link_name in [
        ("negative_binomial", "log"),
        ("negative_binomial", "sqrt"),
        ("gamma", "log"),
        ("gamma", "inverse"),
        ("gamma", "identity"),
        ("inverse_gaussian", "log"),
    ]:
        fam = get_family(name).with_param(0.6)
        link = get_link(fam, link_name)
        eta_ok = np.abs(eta) + 0.5
        mu = link.inverse(eta_ok)
        y = rng.poisson(mu).astype(float) if name == "negative_binomial" else rng.gamma(2.0, mu / 2)
        X = np.ones((50, 1))
        term = ReTerm("g", np.arange(50) % 5, tuple("abcde"), np.ones((50, 1)), ("(Intercept)",))
        problem = GLMMProblem(X, y, [term], fam, link)
        h = 1e-4

        def ll(e, y=y, fam=fam, link=link):
            return fam.loglik(y, link.inverse(e), np.ones_like(e))

        numeric = -(ll(eta_ok + h) - 2 * ll(eta_ok) + ll(eta_ok - h)) / h**2
        np.testing.assert_allclose(
            problem.observed_information(eta_ok), numeric, rtol=1e-4, atol=1e-6
        )


def test_a_constant_offset_moves_only_the_intercept():
    rng = np.random.default_rng(11)
    X, y, term, _ = _data("negative_binomial", rng)
    fam = get_family("negative_binomial")
    link = get_link(fam, None)
    params = np.array([0.5, np.log(1.5)])
    beta = np.array([0.8, 0.4])
    plain = GLMMProblem(X, y, [term], fam, link)
    shifted = GLMMProblem(X, y, [term], fam, link, offset=np.full(y.shape[0], 2.0))
    d0 = plain.deviance(params, beta)
    d1 = shifted.deviance(params, beta - np.array([2.0, 0.0]))
    assert d1 == pytest.approx(d0, rel=1e-12)


def test_hessian_standard_errors_agree_with_the_pirls_factor_without_dispersion_effects():
    # For the Gamma family the dispersion is orthogonal to beta in expectation: the
    # Hessian's standard errors are close to (not equal to) the factor's.
    rng = np.random.default_rng(13)
    X, y, term, _ = _data("gamma", rng)
    fam = get_family("gamma")
    problem = GLMMProblem(X, y, [term], fam, get_link(fam, None))
    from sklmixed._optim import fit_glmm

    beta, params, _ = fit_glmm(problem)
    cov = problem.hessian_vcov(params, beta)
    assert cov is not None and np.all(np.linalg.eigvalsh(cov) > 0)
    rx = problem.lmm.rxx_inverse()
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), np.sqrt(np.diag(rx)), rtol=0.05)
    # the problem is left at the estimates
    assert problem.deviance(params, beta) == pytest.approx(problem.deviance(params, beta))


def test_many_fixed_effects_take_their_block_from_the_factor(monkeypatch):
    # beyond FULL_HESSIAN_MAX parameters the fixed-effects block of the Hessian
    # comes from the PIRLS factor at the observed information: close to the full
    # differences, at O(d) evaluations per covariance or dispersion parameter
    from sklmixed._core import _glmm
    from sklmixed._optim import fit_glmm

    rng = np.random.default_rng(17)
    n, nl = 1500, 30
    refs = np.repeat(np.arange(nl), n // nl)
    X = np.column_stack((np.ones(n), rng.normal(size=(n, 12))))
    term = ReTerm("g", refs, tuple(range(nl)), np.ones((n, 1)), ("(Intercept)",))
    mu = np.exp(0.5 + X[:, 1:] @ np.linspace(-0.2, 0.2, 12) + rng.normal(0, 0.4, nl)[refs])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    fam = get_family("negative_binomial")
    problem = GLMMProblem(X, y, [term], fam, get_link(fam, None))
    beta, params, _ = fit_glmm(problem, fast=True)
    assert beta.shape[0] + params.shape[0] > _glmm.FULL_HESSIAN_MAX
    calls = []
    original = problem.deviance
    monkeypatch.setattr(problem, "deviance", lambda *a: calls.append(1) or original(*a))
    hybrid = problem.hessian_vcov(params, beta)
    n_hybrid = len(calls)
    monkeypatch.setattr(_glmm, "FULL_HESSIAN_MAX", 100)
    full = problem.hessian_vcov(params, beta)
    assert n_hybrid < (len(calls) - n_hybrid) / 2
    np.testing.assert_allclose(np.sqrt(np.diag(hybrid)), np.sqrt(np.diag(full)), rtol=5e-3)


@pytest.mark.parametrize("family", ["inverse_gaussian", "gamma"])
def test_factor_left_for_vcov_and_condvar_at_fixed_beta(family):
    """After a deviance at fixed beta, the LMM's factor (read by the covariance of
    beta and the conditional variances) holds, for the log link:

    - inverse Gaussian here (some observed information negative: Newton's steps
      came from the random effects alone): the expected information
      mu'^2 / (phi V(mu)) = 1 / (phi mu), V = mu^3;
    - Gamma (observed information positive): the observed information, for the
      log link y / (phi mu).

    For a scalar intercept term the conditional variance of level j is then
    lam^2 / (lam^2 sum_j W + 1)."""
    from sklmixed._core._lmm import conditional_variances

    rng = np.random.default_rng(5)
    X, y, term, refs = _data(family, rng)
    phi = 0.3
    fam = get_family(family).with_param(phi)
    problem = GLMMProblem(X, y, [term], fam, get_link(fam, None))
    beta, lam = np.array([0.8, 0.4]), 0.5
    problem.deviance(np.array([lam, np.log(phi)]), beta)
    mu = np.exp(problem._eta)
    if family == "inverse_gaussian":
        assert problem._re is not problem.lmm  # the case described above
        W = 1.0 / (phi * mu)
    else:
        assert problem._re is problem.lmm
        W = y / (phi * mu)
    expected = lam**2 / (lam**2 * np.bincount(refs, W) + 1.0)
    cv = conditional_variances(problem.lmm, np.array([lam]))[0][:, 0, 0]
    np.testing.assert_allclose(cv, expected, rtol=1e-10)
