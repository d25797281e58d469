"""The internal centring and scaling, undone: results on the user's scale against a
dense computation on the user's columns.

The data are chosen so that every transformation is in play at once: a response
shifted (|mean| / SD 100) and scaled (SD beyond 2^20), a fixed-effect column
centred against an intercept column whose value is 2 (not 1) and scaled, and a
random-effects term (1 + x | g) whose intercept column is 3, centred and scaled.
The objective, fixed effects and their covariance, sigma, the random effects
(b and the spherical u) and the conditional variances mapped back by the
problem's ``user_*`` methods must equal the penalized least-squares solution on the
raw columns, computed densely at the user's theta (Bates et al. 2015, eqs. 10-34).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import block_diag

from sklmixed._core._lmm import LMMProblem, conditional_variances
from sklmixed._core._reterm import ReTerm


def _data(seed: int = 11, n: int = 300, nl: int = 20):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, nl, n)
    g[:nl] = np.arange(nl)
    x = 5000.0 + 200.0 * rng.normal(size=n)  # |mean| / SD 25, SD 200
    X = np.column_stack((np.full(n, 2.0), x))  # an intercept column of value 2
    z = np.column_stack((np.full(n, 3.0), x))  # and a random intercept of value 3
    b = rng.normal(size=(nl, 2)) * [4e6, 1e3]
    y = 1e10 + 3e4 * (x - 5000.0) + np.einsum("nk,nk->n", z, b[g]) + 1e7 * rng.normal(size=n)
    term = ReTerm("g", g.astype(np.int64), tuple(range(nl)), z, ("(Intercept)", "x"))
    return X, y, term


def _dense(X, y, term, theta, reml):
    """Everything on the user's columns by dense linear algebra."""
    n, p = X.shape
    Z = np.zeros((n, term.nranef))
    for a in range(term.k):
        Z[np.arange(n), term.refs * term.k + a] = term.z[:, a]
    lam = term.lambda_from_theta(theta)
    Lam = block_diag(*[lam] * term.nlevels)
    ZL = Z @ Lam
    q = ZL.shape[1]
    Czz = ZL.T @ ZL + np.eye(q)
    M = np.block([[Czz, ZL.T @ X], [X.T @ ZL, X.T @ X]])
    sol = np.linalg.solve(M, np.concatenate((ZL.T @ y, X.T @ y)))
    u, beta = sol[:q], sol[q:]
    r2 = np.sum((y - ZL @ u - X @ beta) ** 2) + np.sum(u**2)
    d = n - p if reml else n
    S = X.T @ X - X.T @ ZL @ np.linalg.solve(Czz, ZL.T @ X)  # R_X' R_X
    obj = np.linalg.slogdet(Czz)[1] + d * (1 + np.log(2 * np.pi * r2 / d))
    if reml:
        obj += np.linalg.slogdet(S)[1]
    sigma2 = r2 / d
    condvar = Lam @ np.linalg.solve(Czz, Lam.T)  # relative: times sigma^2 for cov(b | y)
    return {
        "objective": obj,
        "beta": beta,
        "vcov": sigma2 * np.linalg.inv(S),
        "sigma": np.sqrt(sigma2),
        "u": u.reshape(term.nlevels, term.k),
        "b": (Lam @ u).reshape(term.nlevels, term.k),
        "condvar": np.array(
            [condvar[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] for i in range(term.nlevels)]
        ),
    }


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_results_on_the_users_scale_match_a_dense_solve_on_the_raw_columns(reml):
    X, y, term = _data()
    prob = LMMProblem(X, y, [term], reml=reml)
    s = prob.scaling
    # every transformation is in play (otherwise this test checks less than it says)
    assert s.y_shift != 0.0 and s.y_scale != 1.0
    assert s.T is not None and s.T[0, 1] != 0.0 and s.intercept_value == 2.0
    assert s.terms[0].centred and not s.terms[0].identity
    theta = np.array([0.8, -0.3, 0.5])  # internal
    assert prob.update(theta)
    user_theta = prob.user_theta(theta)
    ref = _dense(X, y, term, user_theta, reml)

    objective = prob._objective_from_L() + prob.objective_offset()
    assert objective == pytest.approx(ref["objective"], rel=1e-10)
    assert prob.user_objective(user_theta) == pytest.approx(ref["objective"], rel=1e-9)
    np.testing.assert_allclose(prob.user_beta(prob.beta()), ref["beta"], rtol=1e-8)
    vcov = prob.user_vcov(prob.sigma2() * prob.rxx_inverse())
    np.testing.assert_allclose(vcov, ref["vcov"], rtol=1e-7)
    assert prob.user_sigma() == pytest.approx(ref["sigma"], rel=1e-9)
    assert prob.update(theta)
    b, u = prob.user_ranef(prob.u(), theta)
    np.testing.assert_allclose(b[0], ref["b"], rtol=1e-7, atol=1e-9 * np.abs(ref["b"]).max())
    np.testing.assert_allclose(u[0], ref["u"], rtol=1e-7, atol=1e-9 * np.abs(ref["u"]).max())
    cv = conditional_variances(prob, theta)[0]
    np.testing.assert_allclose(cv, ref["condvar"], rtol=1e-7, atol=1e-12 * np.abs(cv).max())


def test_users_theta_maps_back_to_the_internal_one():
    X, y, term = _data()
    prob = LMMProblem(X, y, [term])
    theta = np.array([0.8, -0.3, 0.5])
    np.testing.assert_allclose(prob.internal_theta(prob.user_theta(theta)), theta, rtol=1e-9)
    beta = np.array([1.5, -0.25])
    np.testing.assert_allclose(prob.internal_beta(prob.user_beta(beta)), beta, rtol=1e-12)
