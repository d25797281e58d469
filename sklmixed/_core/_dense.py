"""The small-problem layout of L: the whole system as one dense block.

A problem whose system (q + p + 1 rows) is at most DENSE_MAX rows is evaluated
inside the optimizer by one dense Cholesky factorization per theta: at that size
LAPACK's work is a few microseconds and the blocked layout's cost is its per-call
overhead. The objective is assembled from the same log-determinants and r^2 as the
blocked layout's (``LMMProblem._assemble_objective``), and an ML fit's results
from the same factor at the optimum; whoever needs the blocks of L gets them from
the blocked layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg.lapack import dpotrf as _potrf

from sklmixed._core._block_types import dense_a_block

if TYPE_CHECKING:
    from sklmixed._core._lmm import LMMProblem

_sum = np.add.reduce


def logdet_z(L: NDArray[Any], q: int) -> float:
    """log|L_Z|^2 from the dense factor L (its first q rows are the random effects')."""
    return 2.0 * float(_sum(np.log(L.diagonal()[:q])))


# Problems whose whole system (q + p + 1 rows) is at most this size are evaluated
# with one dense Cholesky per theta: at this size LAPACK's work is a few
# microseconds and the cost of the blocked path is its per-call overhead.
DENSE_MAX = 128


class DenseEvaluator:
    """The objective of a small problem from one dense factorization per theta.

    The layout of L with a single block: the whole system is one dense block,
    scaled and inflated by a dense Lambda~ (filled from theta by one fancy
    assignment) and factored by one LAPACK call. The objective is assembled from
    its log-determinants and r^2 as the blocked layout's (``_assemble_objective``).
    The objective, the [X y] block and the whole factor (what an ML fit's results
    read, ``LMMProblem._dense_factor``) come from here; whoever needs the blocks of
    L (``LMMProblem.factor``) gets them from the blocked layout.
    """

    def __init__(self, problem: LMMProblem):
        terms, m, nt = problem.terms, problem.m, problem.ntheta
        off = [0]
        for t in terms:
            off.append(off[-1] + t.nranef)
        q = off[m]
        Q = q + problem.p + 1
        off.append(Q)
        # A's lower blocks and their transposes in one dense matrix (a diagonal
        # block ends up as its transpose, written last: the [X y] block X'W X
        # from a matrix product is symmetric only up to rounding, and the
        # factorizations, and so the optimizer's path, have always read that one).
        A = np.zeros((Q, Q))
        flat = A.reshape(-1)  # a view: A is contiguous
        for (i, j), blk in problem.A.items():
            lo, hi = off[i], off[i + 1]
            if i == j < m and blk.ndim == 1:  # a scalar term: Z_j'W Z_j is diagonal
                flat[lo * (Q + 1) : hi * (Q + 1) : Q + 1] = blk
            elif i == j < m and blk.ndim == 3:  # a vector term's (l, k, k) blocks
                k = blk.shape[1]
                step = k * (Q + 1)  # from one level's block to the next's
                for a in range(k):
                    for b in range(k):
                        start = lo * (Q + 1) + a * Q + b
                        flat[start : hi * (Q + 1) : step] = blk[:, b, a]
            else:
                dense = dense_a_block(blk)
                A[lo:hi, off[j] : off[j + 1]] = dense
                A[off[j] : off[j + 1], lo:hi] = dense.T
        self.A = A
        self.q = q
        self.p = problem.p
        self.terms = terms
        self.theta_slices = problem.theta_slices
        self.all_scalar = all(t.k == 1 for t in terms)
        # For scalar terms, every column of the system is scaled by one theta (or 1).
        col_theta = np.full(Q, nt, dtype=np.int64)
        for j, (t, ts) in enumerate(zip(terms, problem.theta_slices)):
            if t.k == 1:
                col_theta[off[j] : off[j + 1]] = ts.start
        self.col_theta = col_theta
        self._identity_re = np.zeros((Q, Q))
        self._identity_re.reshape(-1)[: q * (Q + 1) : Q + 1] = 1.0
        self._theta1 = np.ones(nt + 1)
        # With vector terms, Lambda-tilde = blockdiag(Lambda, I) as a dense Q x Q
        # matrix whose free entries are filled from theta by one fancy assignment.
        if not self.all_scalar:
            pos, src = [np.arange(q * (Q + 1), Q * Q, Q + 1)], [np.full(Q - q, nt)]
            for j, (t, ts) in enumerate(zip(terms, problem.theta_slices)):
                nf = t.ntheta
                # lambda's free entries (r, c) in each level's block (the
                # blocks' corners are k rows and k columns apart)
                corner = np.arange(off[j] * (Q + 1), off[j + 1] * (Q + 1), t.k * (Q + 1))
                within = t.inds[:, 0] * Q + t.inds[:, 1]
                pos.append((corner[:, None] + within).reshape(-1))
                src.append(np.arange(corner.shape[0] * nf) % nf + ts.start)
            self._lam_pos = np.concatenate(pos)
            self._lam_src = np.concatenate(src)
            self._lam = np.zeros((Q, Q))

    def scaled_inflated(self, theta: NDArray[Any]) -> NDArray[Any]:
        """Lambda~' A Lambda~ + I_q, Lambda~ = blockdiag(Lambda, I): this layout's
        whole system, the one block it factors."""
        buf = self._theta1
        buf[:-1] = theta
        if self.all_scalar:
            s = buf[self.col_theta]
            M = self.A * s[:, None]
            M *= s
        else:
            lam = self._lam
            lam.flat[self._lam_pos] = buf[self._lam_src]
            M = lam.T @ self.A @ lam
        M += self._identity_re  # + I on the random-effects diagonal
        return M

    def logdets(
        self, theta: NDArray[Any], with_x: bool = True
    ) -> tuple[float, float, float] | None:
        """(log|L_Z|^2, log|L_X|^2, r^2), or None if not positive definite.

        ``with_x=False`` leaves log|L_X|^2 out (0.0): the ML objective does not
        read it, and its logs and sum are a tenth of an evaluation.
        """
        # only the diagonal of L is read: LAPACK need not clear the upper triangle
        L, info = _potrf(self.scaled_inflated(theta), lower=1, clean=0, overwrite_a=1)
        if info != 0:  # not positive definite (r = 0 only if y is fitted exactly)
            return None
        # (pairwise) sums of the logs: the optimizer's path, and so the last printed
        # digits of flat fits, depend on these roundings; keep them as they are
        # (np.add.reduce is ndarray.sum without its Python wrapper: the same sums)
        diag = L.diagonal()
        q = self.q
        r = float(diag[-1])
        if not with_x:
            return logdet_z(L, q), 0.0, r * r
        logd = np.log(diag)
        return 2.0 * float(_sum(logd[:q])), 2.0 * float(_sum(logd[q:]) - logd[-1]), r * r

    def factor(self, theta: NDArray[Any]) -> NDArray[Any] | None:
        """The whole of L at ``theta`` (Q x Q, lower, its upper triangle zero), or
        None if LAPACK finds the system not positive definite."""
        L, info = _potrf(self.scaled_inflated(theta), lower=1, clean=1, overwrite_a=1)
        return None if info != 0 else L

    def xy_factor(self, theta: NDArray[Any]) -> tuple[float, NDArray[Any]] | None:
        """(log|L_Z|^2, the [X y] block of L) from one dense factorization."""
        L = self.factor(theta)
        if L is None:
            return None
        return logdet_z(L, self.q), L[self.q :, self.q :]
