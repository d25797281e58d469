"""PIRLS steps of large GLMMs by conjugate gradients, preconditioned by a kept factor.

Each PIRLS iteration solves the penalized weighted least-squares system

    [ Lambda' Z'WZ Lambda + I   Lambda' Z'WX ] [u   ]   [ Lambda' Z'W z ]
    [ X'WZ Lambda               X'WX         ] [beta] = [ X'W z         ]

(or its first block row alone, beta held fixed) for new working weights W and
working response z. Factoring it afresh costs a dense Cholesky when two grouping
factors are crossed (the second term's block fills in): O(l^3) for l levels, 0.2-1 s
for the 3000-3700 items of the crossed synthetic. Between one PIRLS iteration and the
next, and between one optimizer evaluation and the next, the system changes little
(the weights move with the modes, theta by the optimizer's step), so the factor of the
last factorization is an excellent preconditioner: conjugate gradients then converge in
a handful of iterations, each one product with the system (O(n), from Z and X directly,
nothing assembled) and two triangular solves with the kept factor (O(l^2)). The exact
factor is still formed once per evaluation, at the converged modes, for the Laplace
log-determinant; it becomes the next evaluation's preconditioner.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg.lapack import dtrtrs as _trtrs

from sklmixed._core._block_types import LBlock, SparseBlock
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._sparse import SparseFactor

# Conjugate gradients stop when the residual's norm is below this fraction of the
# right-hand side's: the modes are then accurate to about 1e-10 relative, far below
# what the penalized deviance (a quadratic function of their error) can see.
CG_RTOL = 1e-10
# Where the residual's decrease so far predicts more than this many iterations, the
# kept factor is a poor preconditioner (theta moved far since it was formed: the
# optimizer's first steps) and PIRLS factors the system afresh instead; the rate is
# judged after CG_JUDGE iterations, so that a failed attempt costs only a few.
CG_MAXITER = 60
CG_JUDGE = 3


class FactorSolver:
    """Products with the PIRLS system and solves with a kept blocked factor.

    Parameters
    ----------
    problem : LMMProblem
        The problem whose system is solved (its rows, terms and sizes).
    blocks : dict or SparseFactor
        A factor of the problem's system at earlier weights and theta
        (``problem.last_factor()``: the blocks of L, or the sparse layout's
        factor), the preconditioner; it must not change between the
        construction of this object and its last use.
    with_x : bool
        Whether the system includes the fixed effects (PIRLS varies beta).
    """

    def __init__(
        self,
        problem: LMMProblem,
        blocks: dict[tuple[int, int], LBlock] | SparseFactor,
        with_x: bool,
    ) -> None:
        self.problem = problem
        self.with_x = with_x
        self.sparse = blocks if isinstance(blocks, SparseFactor) else None
        self.L = {} if isinstance(blocks, SparseFactor) else blocks
        self.m = problem.m
        self.p = problem.p if with_x else 0
        self.sizes = [t.nranef for t in problem.terms]
        self.offsets = np.concatenate(([0], np.cumsum(self.sizes))).astype(np.int64)
        self.q = int(self.offsets[-1])
        # sparse blocks of L as scipy matrices (and their transposes), made once
        self._sparse: dict[tuple[int, int], Any] = {}
        for key, blk in self.L.items():
            if isinstance(blk, SparseBlock):
                self._sparse[key] = blk.S.to_scipy().tocsr()

    # ------------------------------------------------------------ the system

    def matvec(
        self, v: NDArray[Any], w: NDArray[Any], lams: list[NDArray[Any]], X: NDArray[Any]
    ) -> NDArray[Any]:
        """The system (at weights ``w`` and lambdas ``lams``) times ``v``."""
        e = self.z_lambda(v[: self.q], lams)
        if self.p:
            e += X @ v[self.q :]
        e *= w
        out = self.lambda_zt(e, lams)
        out[: self.q] += v[: self.q]
        if self.p:
            out[self.q :] = X.T @ e
        return out

    def z_lambda(self, u: NDArray[Any], lams: list[NDArray[Any]]) -> NDArray[Any]:
        """Z Lambda u, an n-vector."""
        prob = self.problem
        e = np.zeros(prob.n)
        for j, (t, z, lam) in enumerate(zip(prob.terms, prob.zs, lams)):
            uj = u[self.offsets[j] : self.offsets[j + 1]]
            if t.k == 1:
                e += z[:, 0] * (lam[0, 0] * uj)[t.refs]
            else:
                b = uj.reshape(t.nlevels, t.k) @ lam.T
                e += np.einsum("nk,nk->n", z, b[t.refs])
        return e

    def lambda_zt(self, r: NDArray[Any], lams: list[NDArray[Any]]) -> NDArray[Any]:
        """[Lambda' Z' r; 0 for the fixed effects], a (q + p)-vector."""
        prob = self.problem
        out = np.zeros(self.q + self.p)
        for j, (t, z, lam) in enumerate(zip(prob.terms, prob.zs, lams)):
            sl = slice(self.offsets[j], self.offsets[j + 1])
            if t.k == 1:
                out[sl] = lam[0, 0] * np.bincount(t.refs, z[:, 0] * r, minlength=t.nlevels)
            else:
                zr = np.empty((t.nlevels, t.k))
                for a in range(t.k):
                    zr[:, a] = np.bincount(t.refs, z[:, a] * r, minlength=t.nlevels)
                out[sl] = (zr @ lam).reshape(-1)
        return out

    # -------------------------------------------------------- preconditioner

    def precondition(self, r: NDArray[Any]) -> NDArray[Any]:
        """(L L')^{-1} r with the kept factor (its leading q + p rows)."""
        if self.sparse is not None:
            return self.sparse.precondition(r, self.p)
        L, m, off, p = self.L, self.m, self.offsets, self.p
        ys: list[NDArray[Any]] = []
        for j in range(m):
            y = r[off[j] : off[j + 1]].copy()
            for i in range(j):
                y -= self._mul((j, i), ys[i])
            ys.append(L[(j, j)].solve(y))
        if p:
            Lm = L[(m, m)].to_dense()
            Lmx = [L[(m, j)].to_dense()[:p] for j in range(m)]
            yx = r[self.q :].copy()
            for j in range(m):
                yx -= Lmx[j] @ ys[j]
            xx = _tri(Lm[:p, :p], _tri(Lm[:p, :p], yx), trans=True)
        xs: list[NDArray[Any]] = [np.zeros(0)] * m
        for j in reversed(range(m)):
            y = ys[j]
            for i in range(j + 1, m):
                y = y - self._tmul((i, j), xs[i])
            if p:
                y = y - Lmx[j].T @ xx
            xs[j] = L[(j, j)].solve_t(y)
        parts = xs + ([xx] if p else [])
        return np.concatenate(parts) if parts else np.zeros(0)

    def _mul(self, key: tuple[int, int], v: NDArray[Any]) -> NDArray[Any]:
        blk = self._sparse.get(key)
        return np.asarray(blk @ v) if blk is not None else self.L[key].mul(v)

    def _tmul(self, key: tuple[int, int], v: NDArray[Any]) -> NDArray[Any]:
        blk = self._sparse.get(key)
        return np.asarray(blk.T @ v) if blk is not None else self.L[key].tmul(v)

    # ------------------------------------------------------------------ CG

    def solve(
        self,
        rhs: NDArray[Any],
        x0: NDArray[Any],
        w: NDArray[Any],
        lams: list[NDArray[Any]],
        X: NDArray[Any],
    ) -> NDArray[Any] | None:
        """The system's solution by preconditioned conjugate gradients from ``x0``;
        None if they have not converged in CG_MAXITER iterations."""
        bnorm = float(np.linalg.norm(rhs))
        x = x0.copy()
        r = rhs - self.matvec(x, w, lams, X)
        if bnorm == 0.0:
            return x
        tol = CG_RTOL * bnorm
        if float(np.linalg.norm(r)) <= tol:
            return x
        r0 = float(np.linalg.norm(r))
        s = self.precondition(r)
        d = s.copy()
        rs = float(r @ s)
        for it in range(1, CG_MAXITER + 1):
            Ad = self.matvec(d, w, lams, X)
            dAd = float(d @ Ad)
            if not dAd > 0.0:  # not positive definite at these weights
                return None
            alpha = rs / dAd
            x += alpha * d
            r -= alpha * Ad
            rnorm = float(np.linalg.norm(r))
            if rnorm <= tol:
                return x
            if it >= CG_JUDGE:
                # iterations needed at the mean rate so far: log(tol / r0) / log(rate)
                rate = (rnorm / r0) ** (1.0 / it)
                if not rate < 1.0 or np.log(tol / r0) / np.log(rate) > CG_MAXITER:
                    return None
            s = self.precondition(r)
            rs_new = float(r @ s)
            d = s + (rs_new / rs) * d
            rs = rs_new
        return None


def _tri(L: NDArray[Any], b: NDArray[Any], trans: bool = False) -> NDArray[Any]:
    x, info = _trtrs(L, b, lower=1, trans=1 if trans else 0)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return np.asarray(x)
