"""PIRLS steps by conjugate gradients (large GLMMs) and the declared PIRLS state."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core._families import get_family, get_link
from sklmixed._core._glmm import GLMMProblem, PIRLSState
from sklmixed._core._pcg import FactorSolver
from sklmixed._core._reterm import ReTerm


def _crossed(seed=11, n=1500, n1=60, n2=40):
    """A crossed Bernoulli design whose second term's block of L is dense."""
    rng = np.random.default_rng(seed)
    r1 = rng.integers(0, n1, n)
    r2 = rng.integers(0, n2, n)
    x = rng.normal(size=n)
    X = np.column_stack((np.ones(n), x))
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, n1)[r1] + rng.normal(0, 0.6, n2)[r2]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    terms = [
        ReTerm(name, refs, tuple(f"l{i}" for i in range(nl)), np.ones((n, 1)), ("(Intercept)",))
        for name, refs, nl in (("a", r1, n1), ("b", r2, n2))
    ]
    return X, y, terms


def _problem(iterative):
    X, y, terms = _crossed()
    fam = get_family("bernoulli")
    problem = GLMMProblem(X, y, terms, fam, get_link(fam, None))
    assert problem.lmm.Lkind[(1, 1)] == "dense"
    problem.iterative = iterative  # this small problem takes the large ones' path
    return problem


def test_iterative_steps_reach_the_factored_deviance():
    direct, iterative = _problem(False), _problem(True)
    for p in (direct, iterative):
        p.glm_start()
    # a path of thetas as an optimizer takes it: each factor preconditions the next
    for theta in ([1.0, 1.0], [1.75, 1.0], [0.8, 0.6], [0.82, 0.61], [0.0, 0.6]):
        theta = np.asarray(theta)
        a, b = direct.deviance(theta), iterative.deviance(theta)
        assert b == pytest.approx(a, rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(iterative.state.beta, direct.state.beta, rtol=1e-7, atol=1e-9)
    beta = np.array([-0.2, 0.45])
    for theta in ([0.8, 0.6], [0.9, 0.5]):
        theta = np.asarray(theta)
        a, b = direct.deviance(theta, beta), iterative.deviance(theta, beta)
        assert b == pytest.approx(a, rel=1e-10, abs=1e-8)
        for ua, ub in zip(direct.state.u, iterative.state.u):
            np.testing.assert_allclose(ub, ua, rtol=1e-6, atol=1e-8)


def test_the_kept_factor_inverts_the_system_it_was_formed_at():
    problem = _problem(False)
    problem.glm_start()
    theta = np.array([0.7, 0.5])
    problem.deviance(theta)  # leaves lmm's factor at the modes' working weights
    w = problem.state.weights
    lams = problem.lmm.lambdas(theta)
    for with_x in (True, False):
        solver = FactorSolver(problem.lmm, problem.lmm.factor(), with_x=with_x)
        v = np.random.default_rng(0).normal(size=solver.q + solver.p)
        back = solver.precondition(solver.matvec(v, w, lams, problem.X))
        np.testing.assert_allclose(back, v, rtol=1e-9, atol=1e-9)


def test_state_holds_the_last_evaluation():
    problem = _problem(True)
    assert isinstance(problem.state, PIRLSState) and not problem.state.converged
    problem.glm_start()
    theta = np.array([0.9, 0.7])
    dev = problem.deviance(theta)
    state = problem.state
    assert state.converged and state.beta_varied
    np.testing.assert_array_equal(state.params, theta)
    assert problem.u is state.u
    mu = 1 / (1 + np.exp(-state.eta))
    np.testing.assert_allclose(state.weights, mu * (1 - mu), rtol=1e-12)
    usq = sum(float(np.sum(u**2)) for u in state.u)
    assert state.pdev == pytest.approx(float(np.sum(problem.devresid(state.eta))) + usq, rel=1e-12)
    assert dev == pytest.approx(state.pdev + problem.lmm.logdet_re(), rel=1e-12)
    # a fixed beta is the state's beta, and the next PIRLS starts from set_start
    beta = state.beta + 0.01
    problem.deviance(theta, beta)
    assert not problem.state.beta_varied
    np.testing.assert_array_equal(problem.state.beta, beta)
