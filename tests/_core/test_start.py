"""The approximate-EM start of large crossed models."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core import _start
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._reterm import ReTerm
from sklmixed._core._start import em_start, em_theta
from sklmixed._optim import fit_lmm


def _term(name, refs, nlevels, z=None):
    z = np.ones((refs.shape[0], 1)) if z is None else z.reshape(-1, 1)
    return ReTerm(name, refs.astype(np.int64), tuple(range(nlevels)), z, ("(Intercept)",), None)


def _crossed(seed=0, n=3000, nu=300, ni=120):
    """Ratings-like crossed data with skewed activity: sd 0.45 (users), 0.6 (items),
    residual 0.9, so theta is near (0.5, 0.67)."""
    rng = np.random.default_rng(seed)
    pu = rng.pareto(1.2, nu) + 1
    pi = rng.pareto(0.9, ni) + 1
    users = rng.choice(nu, size=n, p=pu / pu.sum())
    items = rng.choice(ni, size=n, p=pi / pi.sum())
    users[:nu] = np.arange(nu)
    items[:ni] = np.arange(ni)
    x = rng.normal(size=n)
    y = 3.5 + 0.2 * x + rng.normal(0, 0.45, nu)[users] + rng.normal(0, 0.6, ni)[items]
    y += rng.normal(0, 0.9, n)
    X = np.column_stack((np.ones(n), x))
    return X, y, [_term("user", users, nu), _term("item", items, ni)]


def test_no_start_for_small_or_vector_models():
    X, y, terms = _crossed()
    assert em_start(LMMProblem(X, y, terms)) is None  # dense block of 120 rows
    rng = np.random.default_rng(1)
    slope = ReTerm(
        "user", terms[0].refs, terms[0].levels, np.column_stack((np.ones(3000), X[:, 1])),
        ("(Intercept)", "x"), None,
    )  # fmt: skip
    assert em_start(LMMProblem(X, y + rng.normal(size=3000), [slope, terms[1]])) is None


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reml", [False, True])
def test_em_start_reaches_the_optimum_of_the_identity_start(weighted, reml, monkeypatch):
    X, y, terms = _crossed()
    w = np.random.default_rng(2).uniform(0.5, 2.0, y.shape[0]) if weighted else None
    plain = LMMProblem(X, y, terms, weights=w, reml=reml)
    theta_i, opt_i = fit_lmm(plain)
    monkeypatch.setattr(_start, "START_MIN_DENSE", 100)
    prob = LMMProblem(X, y, terms, weights=w, reml=reml)
    start = em_start(prob)
    assert start is not None
    theta0, step = start
    # within 5% of the optimum, and a trust region of 2% (at least 0.01)
    np.testing.assert_allclose(theta0, theta_i, rtol=0.05)
    np.testing.assert_allclose(step, np.maximum(0.02 * theta0, 0.01))
    theta, opt = fit_lmm(prob)
    np.testing.assert_array_equal(opt.initial, theta0)
    assert opt.fmin == pytest.approx(opt_i.fmin, rel=1e-12)
    np.testing.assert_allclose(theta, theta_i, rtol=1e-4)
    assert opt.feval < opt_i.feval


def test_both_starts_end_at_the_same_optimum_after_the_newton_step(monkeypatch):
    # the system (423 rows) is above DENSE_MAX: the fit ends with a Newton step, and
    # the estimates no longer depend on where the optimizer started
    X, y, terms = _crossed(seed=3)
    theta_i, _ = fit_lmm(LMMProblem(X, y, terms))
    monkeypatch.setattr(_start, "START_MIN_DENSE", 100)
    prob = LMMProblem(X, y, terms)
    theta, opt = fit_lmm(prob)
    assert opt.initial is not None and not np.all(opt.initial == 1.0)  # the EM start
    np.testing.assert_allclose(theta, theta_i, rtol=1e-8)


def test_em_theta_of_a_single_term_is_near_the_ml_estimate():
    rng = np.random.default_rng(3)
    n, G = 4000, 200
    g = rng.integers(0, G, n)
    y = 1.0 + rng.normal(0, 0.5, G)[g] + rng.normal(0, 1.0, n)
    X = np.ones((n, 1))
    terms = [_term("g", g, G)]
    theta_ml, _ = fit_lmm(LMMProblem(X, y, terms))
    # one term: the E step is exact, so EM converges to the ML estimate
    assert em_theta(X, y, terms, None, 200)[0] == pytest.approx(theta_ml[0], rel=1e-3)


def test_em_theta_without_residual_variation_gives_up():
    X = np.ones((20, 1))
    terms = [_term("g", np.arange(20) % 4, 4)]
    assert em_theta(X, np.full(20, 2.0), terms, None, 5) is None


def test_factor_of_the_last_theta_is_reused_until_the_data_change():
    X, y, terms = _crossed()
    prob = LMMProblem(X, y, terms)
    theta = np.array([0.5, 0.7])
    assert prob.update(theta)
    L = prob.L
    assert prob.update(theta.copy()) and prob.L is L  # same theta: kept
    assert prob.update(theta * 1.1) and prob.L is not L
    L = prob.L
    prob.set_weights(np.full(y.shape[0], 2.0))  # new A: recomputed
    assert prob.update(theta * 1.1) and prob.L is not L


def _bernoulli_problem(family="bernoulli"):
    from sklmixed._core._families import get_family, get_link
    from sklmixed._core._glmm import GLMMProblem

    X, y, terms = _crossed(seed=4, n=4000)
    rng = np.random.default_rng(5)
    eta = (y - 3.5) / 0.9
    b = (rng.uniform(size=y.shape[0]) < 1 / (1 + np.exp(-eta))).astype(float)
    fam = get_family(family)
    return GLMMProblem(X, b if family == "bernoulli" else b + 1.0, terms, fam, get_link(fam, None))


def test_glmm_start_from_the_linearized_model(monkeypatch):
    from sklmixed._core._start import em_start_glmm
    from sklmixed._optim import fit_glmm

    plain = _bernoulli_problem()
    assert em_start_glmm(plain) is None  # a 120-row dense block: lambda = I
    beta_i, theta_i, opt_i = fit_glmm(plain, fast=True)
    monkeypatch.setattr(_start, "START_MIN_DENSE", 100)
    prob = _bernoulli_problem()
    prob.glm_start()
    theta0, step = em_start_glmm(prob)
    # penalized quasi-likelihood's estimates: below the optimum, within 25%
    assert np.all(theta0 < theta_i) and np.all(theta0 > 0.75 * theta_i)
    np.testing.assert_allclose(step, np.maximum(_start.GLMM_STEP * theta0, _start.STEP_MIN))
    beta, theta, opt = fit_glmm(_bernoulli_problem(), fast=True)
    np.testing.assert_array_equal(opt.initial, theta0)
    assert opt.fmin == pytest.approx(opt_i.fmin, rel=1e-10)
    np.testing.assert_allclose(theta, theta_i, rtol=1e-4)
    assert opt.feval < opt_i.feval
    # families with a dispersion keep lambda = I
    assert em_start_glmm(_bernoulli_problem("poisson")) is not None
    gamma = _bernoulli_problem("gamma")
    assert em_start_glmm(gamma) is None
