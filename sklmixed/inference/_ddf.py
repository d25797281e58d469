"""Denominator degrees of freedom for t tests of LMM fixed effects.

Satterthwaite (lmerTest's default): for a coefficient j with variance
c(v) = V_jj(v) as a function of the variance parameters v = (theta, sigma), the
t statistic's denominator is approximated by a scaled chi-square with

    df = 2 c^2 / (g' A g),   g = dc/dv,   A = 2 H^{-1},

H the Hessian of the objective (-2 log L, or the REML criterion for REML fits)
in v at the estimates, so that A is the asymptotic covariance of v. lmerTest
(Kuznetsova et al. 2017) uses exactly this parametrization; df does not depend
on it at an interior optimum. Derivatives here are central differences with
Richardson extrapolation (numDeriv's scheme, which lmerTest calls); dV/dsigma
is analytic. As lmerTest, the inverse of H keeps only its positive eigenvalues.

Kenward-Roger (pbkrtest's ``vcovAdj`` and ``Lb_ddf``; Kenward and Roger 1997):
the covariance of beta-hat is adjusted for the uncertainty in the variance
parameters and the df come from matching moments of the Wald statistic. The
variance parameters are the elements of each term's covariance matrix and the
residual variance, on which Sigma = Cov(y) depends linearly, Sigma = sum_r
gamma_r G_r, as in pbkrtest. Every quantity pbkrtest forms from n x n matrices
(Sigma^{-1}, G_r Sigma^{-1}, traces of their products) is formed here in the
(q + p)-dimensional space of [Z X]: with W = [Z X] (rows scaled by the square
roots of prior weights) and V = Sigma / sigma^2 = Z Lambda Lambda' Z' + I,
V^{-1} W = W Gamma with Gamma = I - [Lambda C^{-1} Lambda' Z'W; 0], C = Lambda'Z'Z
Lambda + I (Woodbury), hence W'V^{-k}W = W'W Gamma^k. Kenward-Roger is defined
for REML fits; an ML fit is refitted by REML first and the table is that of the
refit, as pbkrtest does (lmerTest refuses ML fits).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import InferenceError, user_stacklevel
from sklmixed.inference._profile import _check_level, _Likelihood

_DDF = ("satterthwaite", "kenward-roger")
# Memory guard for Kenward-Roger: dense (q + p)^2 matrices and an n x q dense Z.
_KR_MAX_ENTRIES = 60_000_000


def ddf_coeftable(model: Any, level: float = 0.95, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed-effects table with t tests on approximate denominator df.

    Parameters
    ----------
    model : MixedLMRegressor
        A fitted linear mixed model.
    level : float, default=0.95
        Level of the t-based confidence intervals.
    ddf : {"satterthwaite", "kenward-roger"}
        The approximation (case-insensitive; lmerTest's spellings work too).

    Returns
    -------
    DataFrame
        Columns ``Coef.``, ``Std. Error``, ``df``, ``t``, ``Pr(>|t|)``,
        ``Lower x%``, ``Upper x%``, one row per coefficient (NaN for
        coefficients dropped as not estimable). Kenward-Roger's standard errors
        are the adjusted ones, as lmerTest reports them.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> m = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)", reml=True)
    >>> m.fit(load_dataset("penicillin")).coeftable(ddf="satterthwaite").round(3)
                  Coef.  Std. Error     df       t  Pr(>|t|)  Lower 95%  Upper 95%
    Name
    (Intercept)  22.972       0.809  5.487  28.411       0.0     20.948     24.996
    """
    _check_level(level)
    method = _check_ddf(ddf)
    check_is_fitted(model, "result_")
    result = model.result_
    if result.is_glmm:
        raise InferenceError(
            "denominator degrees of freedom (ddf) apply to linear mixed models; a GLMM's "
            "coefficients are tested with z statistics (ddf=None)"
        )
    problem = model.problem_
    theta = np.asarray(model.theta_, dtype=float)
    try:
        if method == "satterthwaite":
            core = result.core_theta if result.core_theta is not None else theta
            beta, se, df = _satterthwaite(problem, np.asarray(core, dtype=float), bool(result.reml))
        else:
            if not result.reml:
                warnings.warn(
                    "Kenward-Roger is defined for REML fits: the table is that of this "
                    "model refitted by REML (as pbkrtest does)",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
                problem, theta = _reml_refit(problem)
            beta, se, df = _kenward_roger(problem, theta)
    finally:
        # leave the factor at the estimates (the core's own theta)
        core = result.core_theta
        model.problem_.set_theta(
            core if core is not None else np.asarray(model.theta_, dtype=float)
        )
    return _table(list(model.coef_names_), model.problem_.keep, beta, se, df, level)


def _check_ddf(ddf: Any) -> str:
    if not isinstance(ddf, str) or ddf.lower() not in _DDF:
        raise InferenceError(f"ddf must be None, 'satterthwaite' or 'kenward-roger'; got {ddf!r}")
    return ddf.lower()


def _table(
    names: list[str],
    keep: np.ndarray,
    beta: np.ndarray,
    se: np.ndarray,
    df: np.ndarray,
    level: float,
) -> pd.DataFrame:
    p_full = len(names)
    full = {k: np.full(p_full, np.nan) for k in ("coef", "se", "df")}
    full["coef"][keep] = beta
    full["se"][keep] = se
    full["df"][keep] = df
    coef, sev, dfv = full["coef"], full["se"], full["df"]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = coef / sev
        p = 2.0 * stats.t.sf(np.abs(t), dfv)
        q = stats.t.ppf(0.5 + level / 2.0, dfv)
    dropped = np.setdiff1d(np.arange(p_full), keep)
    coef[dropped] = -0.0  # as the z table reports dropped coefficients
    pct = f"{100 * level:g}%"
    return pd.DataFrame(
        {
            "Coef.": coef,
            "Std. Error": sev,
            "df": dfv,
            "t": t,
            "Pr(>|t|)": p,
            f"Lower {pct}": coef - q * sev,
            f"Upper {pct}": coef + q * sev,
        },
        index=pd.Index(names, name="Name"),
    )


# --------------------------------------------------------------- Satterthwaite


def _satterthwaite(
    problem: Any, theta: np.ndarray, reml: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # On the core's internal columns (theta: the core's): the Hessian's scale is
    # then that of well-conditioned data, whatever the user's units (in the user's
    # theta of days * 1e-6 its curvature is 1e-12 and falls below _pos_inverse's
    # threshold). df does not depend on the parametrization; the variances are
    # the user's, mapped through problem.user_vcov.
    lik = _Likelihood(problem, internal=True)
    sigma = lik.sigma_hat(theta, reml)
    v0 = np.append(theta, sigma)
    nth = theta.shape[0]

    def objective(v: np.ndarray) -> float:
        return lik.at_sigma(v[:nth], float(v[nth]), reml)

    def unscaled_vcov(th: np.ndarray) -> np.ndarray:
        parts = lik.parts(th)
        if parts is None:
            raise FloatingPointError("the factor is not positive definite near the estimates")
        Rinv = parts[1]
        return np.asarray(problem.user_vcov(Rinv.T @ Rinv))  # of the user's beta

    parts = lik.parts(theta)
    assert parts is not None
    beta = problem.user_beta(lik.beta_hat(parts[1], parts[2]))
    V = unscaled_vcov(theta)
    var = sigma * sigma * np.diag(V)
    H = _hessian(objective, v0)
    A = 2.0 * _pos_inverse(H)
    # d diag(vcov) / d v: theta by differences, sigma analytically (2 sigma V).
    grad = np.empty((nth + 1, V.shape[0]))
    if nth:
        jac = _jacobian(lambda th: sigma * sigma * np.diag(unscaled_vcov(th)), theta)
        grad[:nth] = jac.T
    grad[nth] = 2.0 * sigma * np.diag(V)
    denom = np.einsum("kj,kl,lj->j", grad, A, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var * var / denom
    return beta, np.sqrt(var), df


def _pos_inverse(H: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Inverse of a symmetric matrix on its positive eigenvalues (lmerTest's rule
    for a Hessian that is singular at a boundary fit)."""
    H = 0.5 * (H + H.T)
    vals, vecs = np.linalg.eigh(H)
    pos = vals > tol
    return np.asarray((vecs[:, pos] / vals[pos]) @ vecs[:, pos].T)


# numDeriv's defaults (which lmerTest uses): first step d * |x| (eps where x is
# near zero), four Richardson levels halving the step each time.
_ZERO_TOL = math.sqrt(np.finfo(float).eps / 7e-7)


def _steps(x: np.ndarray, d: float, eps: float = 1e-4) -> np.ndarray:
    return np.where(np.abs(x) < _ZERO_TOL, eps, d * np.abs(x))


def _richardson(estimates: list[np.ndarray]) -> np.ndarray:
    """Extrapolate central-difference estimates at steps h, h/2, h/4, ... to h -> 0
    (their errors are series in h^2)."""
    table = [np.asarray(e, dtype=float) for e in estimates]
    m = 1
    while len(table) > 1:
        f = 4.0**m
        table = [(f * table[i + 1] - table[i]) / (f - 1.0) for i in range(len(table) - 1)]
        m += 1
    return table[0]


def _jacobian(
    fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, d: float = 1e-4, levels: int = 4
) -> np.ndarray:
    """d fun / d x (rows: outputs, columns: inputs)."""
    x = np.asarray(x, dtype=float)
    h0 = _steps(x, d)
    cols = []
    for k in range(x.shape[0]):
        est = []
        for lev in range(levels):
            h = h0[k] / 2.0**lev
            xp, xm = x.copy(), x.copy()
            xp[k] += h
            xm[k] -= h
            est.append((np.asarray(fun(xp)) - np.asarray(fun(xm))) / (2.0 * h))
        cols.append(_richardson(est))
    return np.column_stack(cols)


def _hessian(
    fun: Callable[[np.ndarray], float], x: np.ndarray, d: float = 0.1, levels: int = 4
) -> np.ndarray:
    """Second derivatives by central differences with Richardson extrapolation."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    h0 = _steps(x, d)
    f0 = fun(x)
    H = np.empty((n, n))

    def at(delta: np.ndarray) -> float:
        return fun(x + delta)

    for i in range(n):
        est = []
        for lev in range(levels):
            e = np.zeros(n)
            e[i] = h0[i] / 2.0**lev
            est.append(np.array((at(e) - 2.0 * f0 + at(-e)) / (e[i] * e[i])))
        H[i, i] = float(_richardson(est))
        for j in range(i):
            est = []
            for lev in range(levels):
                ei, ej = np.zeros(n), np.zeros(n)
                ei[i] = h0[i] / 2.0**lev
                ej[j] = h0[j] / 2.0**lev
                val = (at(ei + ej) - at(ei - ej) - at(-ei + ej) + at(-ei - ej)) / (
                    4.0 * ei[i] * ej[j]
                )
                est.append(np.array(val))
            H[i, j] = H[j, i] = float(_richardson(est))
    return H


# -------------------------------------------------------------- Kenward-Roger


def _reml_refit(problem: Any) -> tuple[Any, np.ndarray]:
    """The same model fitted by REML (a fresh problem; the fit's is untouched)."""
    from sklmixed._core._lmm import LMMProblem
    from sklmixed._optim import fit_lmm

    # the user's columns (estimable ones) and response, the offset subtracted
    reml = LMMProblem(
        problem.user_x(), problem.user_y(), list(problem.terms), problem.weights, reml=True
    )
    theta, _ = fit_lmm(reml, warn=False)
    return reml, reml.user_theta(theta)


def _kenward_roger(problem: Any, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lik = _Likelihood(problem)
    parts = lik.parts(theta)
    assert parts is not None
    beta = lik.beta_hat(parts[1], parts[2])
    sigma2 = lik.sigma_hat(theta, True) ** 2
    n, p = lik.n, lik.p
    q = sum(t.nranef for t in problem.terms)
    if problem.n * q + (q + p) ** 2 > _KR_MAX_ENTRIES:
        raise InferenceError(
            f"Kenward-Roger here forms dense matrices of {q + p} x {q + p} and "
            f"{problem.n} x {q} entries, too large for this model; use "
            "ddf='satterthwaite'"
        )
    # W = [Z X] with rows scaled by sqrt(prior weights); A = W'W
    sw = np.ones(problem.n) if problem.sqrtw is None else problem.sqrtw
    # the user's columns, as theta and the factor that _Likelihood reads
    W = np.hstack((problem.user_dense_z(), problem.user_x())) * sw[:, None]
    A = W.T @ W
    Lam = problem.dense_lambda(theta)
    Azz = A[:q, :q]
    C = Lam.T @ Azz @ Lam + np.eye(q)
    Cc = sla.cho_factor(C, lower=True)
    Cinv = sla.cho_solve(Cc, np.eye(q))
    Gamma = np.eye(q + p)
    Gamma[:q, :] -= Lam @ sla.cho_solve(Cc, Lam.T @ A[:q, :])
    AG1 = A @ Gamma  # W' V^{-1} W
    AG2 = AG1 @ Gamma  # W' V^{-2} W
    AG3 = AG2 @ Gamma  # W' V^{-3} W
    zs, xs = slice(0, q), slice(q, q + p)
    M1, K1, S1 = AG1[zs, zs], AG1[zs, xs], AG1[xs, xs]
    M2, K2, S2 = AG2[zs, zs], AG2[zs, xs], AG2[xs, xs]
    S3 = AG3[xs, xs]
    # tr(V^{-2}) = n - 2 tr(H) + tr(H^2), H = Z Lambda C^{-1} Lambda' Z'
    # = I - C^{-1} in the rotated coordinates
    IminusCinv = np.eye(q) - Cinv
    tr_v2 = n - 2.0 * np.trace(IminusCinv) + float(np.sum(IminusCinv * IminusCinv.T))

    # Sigma = sigma^2 V; divide each sigma^{-2} power in at the end
    s1, s2i = 1.0 / sigma2, 1.0 / sigma2**2
    s3 = s1 * s2i
    Phi = np.linalg.inv(S1 * s1)
    Phi = 0.5 * (Phi + Phi.T)

    # the derivative matrices: G_r = Z B_r Z' for each covariance element, I last
    Bs = _covariance_elements(problem, q)
    ng = len(Bs) + 1
    P: list[np.ndarray] = []
    BK = [B @ K1 for B in Bs]  # B_r Z'V^{-1}X
    for r in range(ng - 1):
        P.append(-(K1.T @ BK[r]) * s2i)
    P.append(-S2 * s2i)
    Q: dict[tuple[int, int], np.ndarray] = {}
    Kt = np.empty((ng, ng))
    MB = [M1 @ B for B in Bs]
    for r in range(ng - 1):
        for s in range(r, ng - 1):
            Q[(r, s)] = (BK[r].T @ M1 @ BK[s]) * s3
            Kt[r, s] = Kt[s, r] = float(np.sum(MB[r] * MB[s].T)) * s2i
        # r with the residual: X'S^-1 G_r S^-2 X and tr(G_r S^-2)
        Q[(r, ng - 1)] = (BK[r].T @ K2) * s3
        Kt[r, ng - 1] = Kt[ng - 1, r] = float(np.sum(Bs[r] * M2.T)) * s2i
    Q[(ng - 1, ng - 1)] = S3 * s3
    Kt[ng - 1, ng - 1] = tr_v2 * s2i

    IE2 = np.empty((ng, ng))
    PhiP = [Phi @ Pr for Pr in P]
    for i in range(ng):
        for j in range(i, ng):
            IE2[i, j] = IE2[j, i] = (
                Kt[i, j] - 2.0 * float(np.sum(Phi * Q[(i, j)])) + float(np.sum(PhiP[i] * PhiP[j].T))
            )
    eig = np.linalg.eigvalsh(IE2)
    Wm = 2.0 * (np.linalg.inv(IE2) if np.min(np.abs(eig)) > 1e-10 else np.linalg.pinv(IE2))
    U = np.zeros((p, p))
    for i in range(ng - 1):
        for j in range(i + 1, ng):
            U += Wm[i, j] * (Q[(i, j)] - P[i] @ Phi @ P[j])
    U = U + U.T
    for i in range(ng):
        U += Wm[i, i] * (Q[(i, i)] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2.0 * Phi @ U @ Phi

    df = np.empty(p)
    for j in range(p):
        df[j] = _kr_df_1d(j, Phi, P, Wm)
    return beta, np.sqrt(np.diag(PhiA)), df


def _covariance_elements(problem: Any, q: int) -> list[np.ndarray]:
    """B_r (q x q) for each free element of each term's covariance matrix, in
    pbkrtest's order (terms, then the lower triangle column by column): the
    derivative of Cov(b) with respect to that element."""
    out = []
    off = 0
    for t in problem.terms:
        k, nl = t.k, t.nlevels
        zero = t.structural_zero
        for b in range(k):
            for a in range(b, k):
                if a != b and zero[a, b]:
                    continue
                E = np.zeros((k, k))
                E[a, b] = E[b, a] = 1.0
                B = np.zeros((q, q))
                B[off : off + nl * k, off : off + nl * k] = np.kron(np.eye(nl), E)
                out.append(B)
        off += nl * k
    return out


def _kr_df_1d(j: int, Phi: np.ndarray, P: list[np.ndarray], Wm: np.ndarray) -> float:
    """pbkrtest's ``Lb_ddf`` for the contrast e_j (one numerator df)."""
    p = Phi.shape[0]
    L = np.zeros((1, p))
    L[0, j] = 1.0
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TPhi = Theta @ Phi
    us = [TPhi @ Pi @ Phi for Pi in P]
    tr = [float(np.trace(u)) for u in us]
    A1 = A2 = 0.0
    ng = len(P)
    for i in range(ng):
        for k in range(i, ng):
            e = 1.0 if i == k else 2.0
            A1 += e * Wm[i, k] * tr[i] * tr[k]
            A2 += e * Wm[i, k] * float(np.sum(us[i] * us[k].T))
    qn = 1.0
    B = (A1 + 6.0 * A2) / (2.0 * qn)
    g = ((qn + 1.0) * A1 - (qn + 4.0) * A2) / ((qn + 2.0) * A2)
    den = 3.0 * qn + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (qn - g) / den, (qn + 2.0 - g) / den
    V0 = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    if abs(V0) < 1e-10:
        V0 = 0.0
    num = 1.0 - A2 / qn
    ratio = 1.0 if abs(num) < 1e-14 and abs(V1) < 1e-14 else num / V1
    rho = (1.0 / qn) * ratio**2 * V0 / V2
    return 4.0 + (qn + 2.0) / (qn * rho - 1.0)
