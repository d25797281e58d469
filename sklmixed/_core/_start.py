"""Starting values of theta for large crossed models, from an approximate EM.

An evaluation of a crossed model's objective is a dense Cholesky factorization of
the block of the second term (3706 rows for a million ratings of 3706 items: half a
second), and from lambda = I the optimizer spends 32 to 61 evaluations on the
synthetic crossed designs tried. A start within a few percent of the optimum, with a
trust region of the same size, brings that to 15 to 19 at the same optimum (the
objective agrees to 1e-14 relative).

The start: ordinary least squares residuals, one-way analysis-of-variance moments
for each term as a first guess, then a few sweeps of an EM algorithm whose E step
is approximate: the conditional modes by one Gauss-Seidel pass over the terms (each
term's modes given the others', a ``bincount``), and the conditional variances of
the levels taken as if the terms were not crossed (sigma^2 / (n_g + sigma^2 /
tau^2)). Each sweep is a few passes over the data, O(n). Only all-scalar models
(one column per term: random intercepts, or a single slope) are started this way,
and only when an evaluation is expensive; the others keep MixedModels.jl's start
lambda = I, and with it the optimizer path behind its printed digits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from sklmixed._core._block_types import DenseBlock

# The start is used when some dense diagonal block of L has at least this many rows:
# its Cholesky factorization, O(m^3), is then most of an evaluation (15 ms and more).
# InstEval (1128 rows) fits in 17 evaluations instead of 48 (0.62 s instead of 1.16 s)
# with the same printed estimates: the Newton step that ends a large fit
# (``newton_polish`` in ``_optim``) lands on the same optimum, to 1e-9 in theta,
# from either start. (Before that step, the path behind the optimizer's stopping
# point set the last printed digits, and this start changed 8 of them.)
START_MIN_DENSE = 1000
# EM sweeps: from 20 on, the start is within 0.3-2% of the optimum on the synthetic
# crossed designs (6040 x 3706 levels and smaller); 5 leave 1-4%.
SWEEPS = 20
# Initial trust region of the optimizer: this fraction of each start value (at least
# STEP_MIN). 2-5% all gave 15-19 evaluations; 10% gave up to 38 on one design.
STEP = 0.02
STEP_MIN = 0.01
# GLMMs: the working response is linearized LINEARIZATIONS times (at the GLM fit,
# then at the sweeps' fitted values), penalized quasi-likelihood's iteration. On
# 200k rows of the crossed synthetic (Bernoulli, fast=True) the start is then 12%
# below the optimum (31% after one) and the fit takes 21 evaluations (32 after one,
# 56 from lambda = I); the trust region GLMM_STEP covers that distance.
GLMM_STEP = 0.2
LINEARIZATIONS = 2


def _qualifies(problem: Any) -> bool:
    """All-scalar terms and a dense diagonal block of START_MIN_DENSE rows."""
    terms = problem.terms
    if not terms or any(t.k != 1 for t in terms):
        return False
    dense = [t.nranef for j, t in enumerate(terms) if problem.Ltype[(j, j)] is DenseBlock]
    return bool(dense) and max(dense) >= START_MIN_DENSE


def em_start_glmm(problem: Any) -> tuple[NDArray[Any], NDArray[Any]] | None:
    """(theta0, initial step) for a large crossed GLMM without a dispersion, or None.

    The EM sweeps on the linearized model at the GLM fit (its starting beta): the
    working response with Fisher's weights, its residual variance 1; linearized
    again at the sweeps' fitted values (LINEARIZATIONS in all). These are penalized
    quasi-likelihood's variance estimates, 10-20% below the Laplace optimum for
    Bernoulli responses: the trust region is GLMM_STEP of the start.
    """
    lmm = problem.lmm
    if problem.family.has_dispersion or not lmm.has_rows or not _qualifies(lmm):
        return None
    eta = problem.start_eta()
    theta = np.zeros(0)
    for _ in range(LINEARIZATIONS):
        w, z = problem.working_response(eta)
        fitted: list[NDArray[Any]] = []
        found = em_theta(lmm.X, z, lmm.terms, w, SWEEPS, sigma2=1.0, fitted=fitted)
        if found is None or not np.all(np.isfinite(found)) or not np.any(found > 0):
            return None
        theta = found
        eta = fitted[0] + problem.offset
    return theta, np.maximum(GLMM_STEP * np.abs(theta), STEP_MIN)


def em_start(problem: Any) -> tuple[NDArray[Any], NDArray[Any]] | None:
    """(theta0, initial step) for ``problem``, or None to start at lambda = I.

    Parameters
    ----------
    problem : LMMProblem
        A problem whose terms are all scalar and some of whose dense diagonal blocks
        have at least ``START_MIN_DENSE`` rows; otherwise None is returned.
    """
    if not _qualifies(problem):
        return None
    terms = problem.terms
    if problem.has_rows:
        theta = em_theta(problem.X, problem.y, terms, problem.weights, SWEEPS)
    else:  # fitted from cross-products (out of core): the same sweeps on A
        theta = em_theta_crossprod(problem.A, problem.m, problem.p, problem.nobs, SWEEPS)
    if theta is None:
        return None
    return theta, np.maximum(STEP * np.abs(theta), STEP_MIN)


def em_theta(
    X: NDArray[Any],
    y: NDArray[Any],
    terms: list[Any],
    weights: NDArray[Any] | None,
    sweeps: int,
    sigma2: float | None = None,
    fitted: list[NDArray[Any]] | None = None,
) -> NDArray[Any] | None:
    """theta of scalar terms by ``sweeps`` approximate EM sweeps (see the module).

    ``sigma2``: the residual variance, known (a GLMM's working response, whose
    weights make it 1), rather than estimated. Returns None when the data leave
    nothing to estimate (no residual variation). ``fitted``, a list, receives the
    fitted values X beta + Z b of the last sweep.
    """
    n = y.shape[0]
    w = np.ones(n) if weights is None else weights
    nobs = float(np.count_nonzero(w > 0))
    XtW = X.T * w
    XtWX = XtW @ X
    beta = np.linalg.lstsq(XtWX, XtW @ y, rcond=None)[0]
    r = y - X @ beta
    wr2 = float(np.sum(w * r * r))
    if not wr2 > 0:
        return None
    refs = [t.refs for t in terms]
    zs = [t.z[:, 0] for t in terms]
    # per level: sum of w z^2 (the level's "count")
    nz = [np.bincount(g, w * z * z, minlength=t.nlevels) for g, z, t in zip(refs, zs, terms)]
    present = [c > 0 for c in nz]

    # First guess: one-way moments per term. With S_g = sum w z r over level g,
    # E[S_g^2 / n_g] = n_g tau^2 + sigma^2 and sum w r^2 - sum S_g^2 / n_g has
    # expectation sigma^2 (nobs - G).
    tau2 = np.zeros(len(terms))
    for j, (g, z, c, ok) in enumerate(zip(refs, zs, nz, present)):
        S = np.bincount(g, w * z * r, minlength=c.shape[0])
        between = float(np.sum(S[ok] ** 2 / c[ok]))
        G = int(ok.sum())
        s2_j = (wr2 - between) / max(nobs - G, 1.0)
        tau2[j] = max(0.0, (between - G * s2_j) / float(c.sum()))
    s2 = max((wr2 - float(np.sum(tau2 * [c.sum() for c in nz]))) / nobs, 0.1 * wr2 / nobs)
    if sigma2 is not None:
        s2 = sigma2

    b = [np.zeros(c.shape[0]) for c in nz]
    fit_b = np.zeros(n)
    for _ in range(sweeps):
        # E step (approximate): modes by one Gauss-Seidel pass, then beta.
        for j, (g, z, c) in enumerate(zip(refs, zs, nz)):
            fit_b -= z * b[j][g]
            if tau2[j] > 0:
                part = w * z * (y - X @ beta - fit_b)
                b[j] = np.bincount(g, part, minlength=c.shape[0]) / (c + s2 / tau2[j])
            else:
                b[j][:] = 0.0
            fit_b += z * b[j][g]
        beta = np.linalg.lstsq(XtWX, XtW @ (y - fit_b), rcond=None)[0]
        e = y - X @ beta - fit_b
        extra = _m_step(b, nz, present, tau2, s2)
        if sigma2 is None:
            s2 = (float(np.sum(w * e * e)) + extra) / nobs
        if not s2 > 0:
            return None
    if fitted is not None:
        fitted.append(X @ beta + fit_b)
    return np.sqrt(tau2 / s2)


def _m_step(
    b: list[NDArray[Any]],
    nz: list[NDArray[Any]],
    present: list[NDArray[Any]],
    tau2: NDArray[Any],
    s2: float,
) -> float:
    """The M step for the terms' variances ``tau2`` (updated in place), with the
    levels' conditional variances taken as if the terms were not crossed; returns
    their contribution to the residual sum of squares, sum_g n_g var(b_g)."""
    extra = 0.0
    for j, (c, ok) in enumerate(zip(nz, present)):
        if tau2[j] <= 0:
            continue
        cv = s2 / (c + s2 / tau2[j])
        tau2[j] = (float(np.sum(b[j][ok] ** 2)) + float(np.sum(cv[ok]))) / int(ok.sum())
        extra += float(np.sum(c * cv))
    return extra


def em_theta_crossprod(
    A: dict[tuple[int, int], Any], m: int, p: int, nobs: int, sweeps: int
) -> NDArray[Any] | None:
    """:func:`em_theta` from the cross-products A = [Z X y]' W [Z X y] alone.

    Every quantity of the sweeps is linear or quadratic in the rows, so it is
    read off A's blocks: the levels' counts from Z_j'WZ_j, the sums over a
    level from Z_j'W [X y] and the other terms' blocks, the residual sum of
    squares as a quadratic form. (The residual sum of squares loses the digits
    that y'Wy has beyond it; a start needs few.) ``m`` scalar terms, ``p``
    columns of X.
    """
    Amm = A[(m, m)]
    Axx, Axy, yy = Amm[:p, :p], Amm[:p, p], float(Amm[p, p])
    ZX = [np.asarray(A[(m, j)][:p, :]).T for j in range(m)]  # (l_j, p)
    Zy = [np.asarray(A[(m, j)][p, :]) for j in range(m)]
    nz = [np.asarray(A[(j, j)], dtype=float) for j in range(m)]
    cross: dict[tuple[int, int], Any] = {}
    for (i, j), blk in A.items():
        if i < m and j < i:
            cross[(i, j)] = blk if isinstance(blk, np.ndarray) else blk.to_scipy().tocsr()

    def zz(j: int, i: int, v: NDArray[Any]) -> NDArray[Any]:
        """Z_j' W Z_i v for two different terms."""
        if i < j:
            return np.asarray(cross[(j, i)] @ v)
        return np.asarray(cross[(i, j)].T @ v)

    present = [c > 0 for c in nz]
    beta = np.linalg.lstsq(Axx, Axy, rcond=None)[0]
    wr2 = yy - 2.0 * float(beta @ Axy) + float(beta @ Axx @ beta)
    if not wr2 > 0:
        return None
    tau2 = np.zeros(m)
    for j, (c, ok) in enumerate(zip(nz, present)):
        S = Zy[j] - ZX[j] @ beta
        between = float(np.sum(S[ok] ** 2 / c[ok]))
        G = int(ok.sum())
        s2_j = (wr2 - between) / max(nobs - G, 1.0)
        tau2[j] = max(0.0, (between - G * s2_j) / float(c.sum()))
    s2 = max((wr2 - float(np.sum(tau2 * [c.sum() for c in nz]))) / nobs, 0.1 * wr2 / nobs)
    b = [np.zeros(c.shape[0]) for c in nz]
    for _ in range(sweeps):
        for j, c in enumerate(nz):
            if tau2[j] > 0:
                rhs = Zy[j] - ZX[j] @ beta
                for i in range(m):
                    if i != j:
                        rhs = rhs - zz(j, i, b[i])
                b[j] = rhs / (c + s2 / tau2[j])
            else:
                b[j][:] = 0.0
        beta = np.linalg.lstsq(Axx, Axy - sum(ZX[i].T @ b[i] for i in range(m)), rcond=None)[0]
        # e'We for e = y - X beta - sum_i Z_i b_i
        fit = float(beta @ Axx @ beta) - 2.0 * float(beta @ Axy)
        for i in range(m):
            fit += 2.0 * float(b[i] @ (ZX[i] @ beta)) - 2.0 * float(b[i] @ Zy[i])
            fit += float(b[i] @ (nz[i] * b[i]))
            for k in range(i):
                fit += 2.0 * float(b[i] @ zz(i, k, b[k]))
        ewe = yy + fit
        extra = _m_step(b, nz, present, tau2, s2)
        s2 = (ewe + extra) / nobs
        if not s2 > 0:
            return None
    return np.asarray(np.sqrt(tau2 / s2))
