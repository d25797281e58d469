"""The uncertainty of predictions from fitted mixed models.

LMM. Given theta, the penalized least-squares system in (u, beta) has the
matrix L L' (L the factor without its y row), and the conditional distribution
of (u, beta) given y is normal with covariance sigma^2 (L L')^{-1}: the joint
covariance from which lme4's ``condVar`` and MixedModels.jl's conditional
variances are the diagonal blocks. A new row with fixed-effects row x and
random-effects rows z_j (for the levels seen in fit) has the conditional mean
x' beta + sum_j z_j' lambda_j u_j, whose variance is

    sigma^2 || L^{-1} [Lambda' z; x] ||^2

(one forward substitution through the blocks of L per batch of rows). For a
term whose level was not seen, the prediction uses b = 0 and the row's random
effect is a draw from its prior N(0, sigma^2 lambda lambda'), independent of the
data: its variance sigma^2 ||lambda' z||^2 is added. ``kind="prediction"`` adds
sigma^2 for the new observation's own error. The variance parameters are taken
as known, as in lme4's and MixedModels.jl's conditional variances.

GLMM. ``marginal=True`` averages the mean response over the random effects of
unseen levels instead of setting them to zero: their sum is normal with variance
s^2 = sum_j z_j' lambda_j lambda_j' z_j, so the mean is the one-dimensional
integral of g^{-1}(eta + s x) against the standard normal density (computed by
the trapezoidal rule, see :func:`_normal_average`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sklmixed._core._lmm import order_terms
from sklmixed.exceptions import InferenceError
from sklmixed.inference._profile import _check_level

_KINDS = ("confidence", "prediction")
# Rows per batch of the forward substitution (memory: q x this many doubles).
_CHUNK = 2048
# Elements per batch of the marginal means' quadrature (rows x grid points).
_CHUNK_ELEMENTS = 1_000_000


def term_lambdas(model: Any) -> dict[str, np.ndarray]:
    """lambda (k x k) of each random-effects term, by grouping-factor name,
    from ``theta_`` (terms in the core's order: most random effects first)."""
    out = {}
    pos = 0
    theta = np.asarray(model.theta_, dtype=float)
    for t in order_terms(list(model.design_.reterms)):
        out[t.name] = t.lambda_from_theta(theta[pos : pos + t.ntheta])
        pos += t.ntheta
    return out


def conditional_std(
    model: Any, X: np.ndarray, re_parts: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Standard errors of the conditional means of new rows of a fitted LMM.

    Parameters
    ----------
    model : MixedLMRegressor
        A fitted linear mixed model.
    X : ndarray of shape (n, p_full)
        Fixed-effects rows of the new data (all coefficients' columns).
    re_parts : list of (refs, z)
        Per random-effects term in the design's order, the level index of each
        row (-1 if unseen in fit) and the term's model-matrix rows.

    Returns
    -------
    ndarray of shape (n,)
    """
    problem = model.problem_
    # The factor is the core's, on its internal (centred, scaled) columns: the new
    # rows go in on those columns too, with the core's theta. The variance of the
    # user's prediction is the user's sigma^2 times the internal relative one (the
    # response's scale factor is the ratio of the two sigmas).
    theta = np.asarray(model.result_.core_theta, dtype=float)
    if not problem.set_theta(theta):  # pragma: no cover - the fit's own theta
        raise FloatingPointError("the factor is not positive definite at the estimates")
    sigma2 = float(model.sigma_) ** 2
    terms = problem.terms
    lams = {t.name: lam for t, lam in zip(terms, problem.lambdas(theta))}
    X = problem.internal_rows(X)
    by_name = {t.name: part for t, part in zip(model.design_.reterms, re_parts)}
    index = {t.name: j for j, t in enumerate(terms)}
    sizes = [t.nranef for t in terms]
    n = X.shape[0]
    var = np.zeros(n)
    for start in range(0, n, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, n))
        rhs = []
        for t, size in zip(terms, sizes):
            refs, z = by_name[t.name]
            refs = refs[rows]
            z = problem.internal_z(index[t.name], np.asarray(z[rows], dtype=float))
            zl = z @ lams[t.name]  # lambda' z_i, one row per observation
            seen = refs >= 0
            block = np.zeros((size, rows.shape[0]))
            cols = np.flatnonzero(seen)
            idx = refs[seen][:, None] * t.k + np.arange(t.k)
            block[idx, cols[:, None]] = zl[seen]
            rhs.append(block)
            # unseen level: its random effect's prior variance
            var[rows[~seen]] += np.einsum("ij,ij->i", zl[~seen], zl[~seen])
        rhs.append(X[rows].T)
        var[rows] += _forward_norms(problem, rhs)
    return np.sqrt(sigma2 * var)


def _forward_norms(problem: Any, rhs: list[np.ndarray]) -> np.ndarray:
    """Column sums of squares of L^{-1} R for R given by blocks (the random-effects
    terms', then X's rows), L the factor without its y row."""
    total = np.zeros(rhs[-1].shape[1])
    for w in problem.solve_lower(rhs):
        total += np.einsum("ij,ij->j", w, w)
    return total


def check_interval_args(level: Any, kind: Any) -> None:
    """Bad ``level`` or ``kind`` of :func:`predict_interval`: a clear error."""
    _check_level(level)
    if kind not in _KINDS:
        raise InferenceError(f"kind must be 'confidence' or 'prediction'; got {kind!r}")


def predict_interval(
    model: Any, X: Any, level: float = 0.95, kind: str = "confidence"
) -> pd.DataFrame:
    """Confidence or prediction intervals of a fitted LMM's predictions.

    Parameters
    ----------
    model : MixedLMRegressor
    X : DataFrame or array-like
        New data, as for ``predict``.
    level : float, default=0.95
    kind : {"confidence", "prediction"}, default="confidence"
        ``"confidence"``: for the conditional mean; ``"prediction"``: for a new
        observation (adds the residual variance sigma^2).

    Returns
    -------
    DataFrame
        Columns ``mean``, ``lower``, ``upper`` (normal quantiles: the variance
        parameters are taken as known), indexed like X when X is a DataFrame.
    """
    check_interval_args(level, kind)
    mean, std = model.predict(X, return_std=True)
    if kind == "prediction":
        std = np.sqrt(std**2 + float(model.sigma_) ** 2)
    zq = float(stats.norm.ppf(0.5 + level / 2.0))
    index = X.index if isinstance(X, pd.DataFrame) else None
    return pd.DataFrame(
        {"mean": mean, "lower": mean - zq * std, "upper": mean + zq * std}, index=index
    )


def marginal_mean(
    model: Any, eta: np.ndarray, re_parts: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Mean response of a GLMM averaged over the random effects of unseen levels.

    ``eta`` is the linear predictor with those random effects at zero (fixed
    effects plus the conditional modes of seen levels); ``re_parts`` as for
    :func:`conditional_std`. Rows whose levels were all seen keep g^{-1}(eta).
    """
    lams = term_lambdas(model)
    eta = np.asarray(eta, dtype=float)
    s2 = np.zeros(eta.shape[0])
    for t, (refs, z) in zip(model.design_.reterms, re_parts):
        unseen = np.asarray(refs) < 0
        if unseen.any():
            zl = np.asarray(z, dtype=float)[unseen] @ lams[t.name]
            s2[unseen] += np.einsum("ij,ij->i", zl, zl)
    mu = np.asarray(model.link_.inverse(eta), dtype=float).copy()
    rows = np.flatnonzero(s2 > 0)
    if rows.size:
        mu[rows] = _normal_average(model.link_.inverse, eta[rows], np.sqrt(s2[rows]))
    return mu


def _normal_average(f: Any, eta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E f(eta + s X), X standard normal, for each row, by the trapezoidal rule.

    For an integrand analytic in a strip of half-width d around the real line the
    trapezoidal rule with step h errs by about exp(-2 pi d / h). The inverse links
    have their nearest singularities at distance about 1 / s (cauchit; pi / s for
    logit) in x, and the normal density is entire, so h = min(0.5, 1 / (6 s))
    gives rounding-level accuracy; the grid spans |x| <= 9 + s (the density is
    below 1e-18 beyond 9; the + s covers growing links such as log). Fixed-node
    Gauss-Hermite does not have this uniformity: 64 nodes err by 5e-5 at s = 5
    and 3e-3 at s = 10 on the logit scale.
    """
    out = np.empty(eta.shape[0])
    h = np.minimum(0.5, 1.0 / (6.0 * s))
    # steps rounded down to 0.5 / 2^j so that rows share a few grids
    level = np.ceil(np.log2(0.5 / h)).astype(int)
    for lev in np.unique(level):
        rows = np.flatnonzero(level == lev)
        step = 0.5 / 2.0**lev
        half = int(math.ceil((9.0 + float(s[rows].max())) / step))
        x = np.arange(-half, half + 1) * step
        wts = stats.norm.pdf(x) * step
        chunk = max(1, _CHUNK_ELEMENTS // x.shape[0])
        for start in range(0, rows.shape[0], chunk):
            r = rows[start : start + chunk]
            vals = f(eta[r, None] + s[r, None] * x[None, :])
            out[r] = np.asarray(vals, dtype=float) @ wts
    return out
