"""Predictive densities of new observations with the random effects integrated out.

The random effects that new rows depend on are written b = m + R u with
u ~ N(0, I): for a level not seen in fit, m = 0 and R R' is the fitted prior
covariance; for a level seen in fit, m is its conditional mode and R R' its
conditional covariance. Row i's linear predictor is then eta0_i + v_i' u, where
eta0 holds the fixed effects and the modes, and the rows of the (sparse) matrix
V are v_i = R' z_i placed in the columns of the row's levels (one block of k
columns per term and level).

- Gaussian response: y ~ N(eta0, D + V V') with D = diag(sigma^2 / w); its log
  density comes from the q x q matrix M = I + V' D^{-1} V by the matrix
  determinant lemma and the Woodbury identity, never from the n x n covariance.
- Other families: log of the integral over u of prod_i p(y_i | eta0_i + v_i'u)
  against N(0, I), by the Laplace approximation at the mode of the integrand
  (found by Fisher scoring with step halving; the Hessian is I + V' W V with the
  GLM working weights W, as in the fit's PIRLS, or with the observed information
  for the families fitted with it, the negative binomial, Gamma and inverse
  Gaussian at their fitted dispersion), or, for a single scalar term, by
  adaptive Gauss-Hermite quadrature centred at that mode.

M >= I, so every factorization here is of a well-conditioned matrix.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import splu

from sklmixed._core._families import Family, Link

_LOG_2PI = float(np.log(2.0 * np.pi))
# Fisher scoring for the mode: stop when the log integrand changes by less than
# this relative amount (as PIRLS_RTOL in the fit); give up after these many
# iterations / step halvings.
MODE_RTOL = 1e-12
MODE_MAXITER = 100
MODE_MAXHALF = 30
# V is built dense when it has at most this many elements (a held-out fold of a
# few hundred groups): dense products and a LAPACK Cholesky then cost far less
# than scipy.sparse's bookkeeping (about 3 ms per call on sleepstudy's folds).
DENSE_LIMIT = 1_000_000

Matrix: TypeAlias = NDArray[Any] | sp.csr_matrix


def psd_factor(G: NDArray[Any]) -> NDArray[Any]:
    """R with R R' = G for a stack (l, k, k) of symmetric positive semi-definite
    matrices (from an eigendecomposition, so singular blocks are fine)."""
    vals, vecs = np.linalg.eigh(G)
    return np.asarray(vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :])


def effect_matrix(
    parts: list[tuple[NDArray[Any], NDArray[Any]]], n: int, dense_limit: int = DENSE_LIMIT
) -> Matrix:
    """The n x q matrix V from, per term, (codes, v): dense when it has at most
    ``dense_limit`` elements, scipy CSR otherwise.

    ``codes`` (n,) identify each row's level (any integers: only equality
    matters) and ``v`` (n, k) is R' z of the row; each distinct level of each
    term gets k adjacent columns.
    """
    rows, cols, vals = [], [], []
    offset = 0
    for codes, v in parts:
        k = v.shape[1]
        _, level = np.unique(codes, return_inverse=True)
        nused = int(level.max()) + 1 if level.size else 0
        rows.append(np.repeat(np.arange(n), k))
        cols.append((offset + level[:, None] * k + np.arange(k)).reshape(-1))
        vals.append(v.reshape(-1))
        offset += nused * k
    if not parts:
        return np.zeros((n, 0))
    r, c, x = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if n * offset <= dense_limit:
        V = np.zeros((n, offset))
        V[r, c] = x  # (row, column) pairs are distinct: one level per term and row
        return V
    return sp.csr_matrix((x, (r, c)), shape=(n, offset))


class _SPDFactor:
    """logdet and solves of M = I + V' W V: M >= I is symmetric positive definite,
    factored by Cholesky (dense V) or sparse LU (where |det| = det)."""

    def __init__(self, V: Matrix, w: NDArray[Any]) -> None:
        q = V.shape[1]
        self.dense = isinstance(V, np.ndarray)
        if isinstance(V, np.ndarray):
            M = np.eye(q) + (V.T * w) @ V
            try:
                self.chol = sla.cho_factor(M, lower=True)
            except np.linalg.LinAlgError:
                # only an observed information with negative rows can do this
                raise FloatingPointError(
                    "the curvature of the new groups' log-likelihood is not positive "
                    "definite at their conditional modes"
                ) from None
        else:
            Ms = (sp.identity(q, format="csc") + (V.T @ sp.diags(w) @ V)).tocsc()
            self.lu = splu(Ms)

    def logdet(self) -> float:
        if self.dense:
            return 2.0 * float(np.sum(np.log(np.diag(self.chol[0]))))
        return float(np.sum(np.log(np.abs(self.lu.U.diagonal()))))

    def solve(self, b: NDArray[Any]) -> NDArray[Any]:
        if self.dense:
            return np.asarray(sla.cho_solve(self.chol, b))
        return np.asarray(self.lu.solve(b))


def gaussian_logpdf(r: NDArray[Any], var: NDArray[Any], V: Matrix) -> float:
    """log N(r; 0, diag(var) + V V'), the joint density of all rows."""
    n = int(r.shape[0])
    quad = float(np.sum(r * r / var))
    logdet = float(np.sum(np.log(var)))
    if V.shape[1]:
        fac = _SPDFactor(V, 1.0 / var)
        c = np.asarray(V.T @ (r / var))
        quad -= float(c @ fac.solve(c))
        logdet += fac.logdet()
    return -0.5 * (n * _LOG_2PI + logdet + quad)


class _Integrand:
    """log prod_i p(y_i | eta0_i + v_i'u) - |u|^2 / 2 and its Fisher scoring pieces."""

    def __init__(
        self,
        y: NDArray[Any],
        eta0: NDArray[Any],
        wt: NDArray[Any],
        V: Matrix,
        family: Family,
        link: Link,
    ) -> None:
        self.y, self.eta0, self.wt, self.V = y, eta0, wt, V
        self.family, self.link = family, link

    def eta(self, u: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(self.eta0 + self.V @ u) if u.size else self.eta0

    def loglik_rows(self, eta: NDArray[Any]) -> NDArray[Any]:
        mu = self.family.clamp(self.link.inverse(eta))
        return np.asarray(self.family.loglik(self.y, mu, self.wt))

    def value(self, u: NDArray[Any]) -> float:
        return float(np.sum(self.loglik_rows(self.eta(u))) - 0.5 * float(u @ u))

    def weights_and_score(self, eta: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
        """GLM working weights wt mu'^2 / (phi V(mu)) and d loglik / d eta per row."""
        mu = self.family.clamp(self.link.inverse(eta))
        dmu = self.link.mu_eta(eta)
        var = self.family.scale * self.family.variance(mu)
        return self.wt * dmu * dmu / var, self.wt * (self.y - mu) * dmu / var

    def curvature(self, eta: NDArray[Any]) -> NDArray[Any]:
        """-d^2 loglik / d eta^2 per row for the Laplace log-determinant: the
        working weights, or, for a family fitted with the observed information,
        that (the weights minus wt (y - mu) / phi d/deta (mu' / V), which vanishes
        for canonical links)."""
        W, _ = self.weights_and_score(eta)
        fam = self.family
        if not fam.observed_information:
            return W
        mu = fam.clamp(self.link.inverse(eta))
        dmu, d2mu = self.link.mu_eta(eta), self.link.mu_eta2(eta)
        v, dv = fam.variance(mu), fam.variance_deriv(mu)
        return np.asarray(W - self.wt * (self.y - mu) * (d2mu / v - dmu**2 * dv / v**2) / fam.scale)

    def mode(self) -> NDArray[Any]:
        """The maximizer of the (log-concave in u for canonical links) integrand."""
        u = np.zeros(self.V.shape[1])
        if not u.size:
            return u
        obj = self.value(u)
        for _ in range(MODE_MAXITER):
            W, s = self.weights_and_score(self.eta(u))
            step = _SPDFactor(self.V, W).solve(np.asarray(self.V.T @ s) - u)
            for _ in range(MODE_MAXHALF):
                new: NDArray[Any] = np.asarray(u + step)
                new_obj = self.value(new)
                if new_obj >= obj - 1e-12 * (abs(obj) + 1.0):  # also rejects NaN
                    break
                step = step / 2.0
            else:
                raise FloatingPointError(
                    "step halving failed while finding the conditional modes of the new "
                    "groups' random effects"
                )
            done = abs(new_obj - obj) <= MODE_RTOL * (abs(new_obj) + 1.0)
            u, obj = new, new_obj
            if done:
                return u
        raise FloatingPointError(
            f"the conditional modes of the new groups' random effects did not converge in "
            f"{MODE_MAXITER} iterations"
        )


def laplace_loglik(
    y: NDArray[Any],
    eta0: NDArray[Any],
    wt: NDArray[Any],
    V: Matrix,
    family: Family,
    link: Link,
) -> float:
    """log of the integral over u ~ N(0, I) of prod_i p(y_i | eta0_i + v_i'u),
    by the Laplace approximation: f(u*) - |u*|^2/2 - log|I + V'W(u*)V| / 2."""
    f = _Integrand(y, eta0, wt, V, family, link)
    u = f.mode()
    val = f.value(u)
    if u.size:
        val -= 0.5 * _SPDFactor(V, f.curvature(f.eta(u))).logdet()
    return val


def agq_loglik(
    y: NDArray[Any],
    eta0: NDArray[Any],
    wt: NDArray[Any],
    level: NDArray[Any],
    v: NDArray[Any],
    family: Family,
    link: Link,
    nodes: NDArray[Any],
    weights: NDArray[Any],
) -> float:
    """The same integral for one scalar term (row i in level ``level[i]`` with
    eta_i = eta0_i + v_i u_level), by adaptive Gauss-Hermite quadrature: per level,
    log[(1/sqrt(h)) sum_j w_j exp(g(u* + z_j/sqrt(h)) + z_j^2/2)], g the log
    integrand, u* its mode and h its curvature there; ``nodes``/``weights`` are for
    the standard normal density (weights summing to 1). One node is Laplace.
    """
    n = y.shape[0]
    _, lev = np.unique(level, return_inverse=True)
    q = int(lev.max()) + 1 if n else 0
    V = sp.csr_matrix((v, (np.arange(n), lev)), shape=(n, q))
    f = _Integrand(y, eta0, wt, V, family, link)
    u = f.mode()
    W = f.curvature(f.eta(u))
    h = 1.0 + np.bincount(lev, W * v * v, minlength=q)
    if not np.all(h > 0):  # an observed information with negative rows
        raise FloatingPointError(
            "the curvature of the new groups' log-likelihood is not positive at their "
            "conditional modes"
        )
    sd = 1.0 / np.sqrt(h)

    def g(uu: NDArray[Any]) -> NDArray[Any]:
        rows = f.loglik_rows(eta0 + v * uu[lev])
        return np.asarray(np.bincount(lev, rows, minlength=q) - 0.5 * uu * uu)

    g0 = g(u)
    terms = np.zeros(q)
    for z, w in zip(nodes, weights):
        terms += w * np.exp(g(u + z * sd) - g0 + 0.5 * z * z)
    return float(np.sum(g0 + np.log(terms) + np.log(sd)))
