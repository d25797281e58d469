"""The sparse layout of L: crossed grouping factors whose levels meet rarely.

When two scalar terms are crossed, the blocked layout eliminates the levels of the
first term and the second term's diagonal block fills in: its factor is a dense
Cholesky of l rows, O(l^3) whatever the data. Where the levels meet rarely (a
few ratings per user and per item) that block is mostly the fill of the order,
not of the matrix: eliminating each level in an order that keeps the fill small
(minimum degree on A's pattern, as lme4 does through CHOLMOD) gives a factor with
a small multiple of A's non-zeros. Measured on the first 50,000 rows of the crossed
synthetic (5362 users, 3226 items): 203k non-zeros in the factor, 5.4e7 flops
against 1.1e10 for the dense block; SuperLU (scipy) factors it in 21 ms, LAPACK the
dense block in 0.29 s.

This layout holds the random-effects part of the system as one sparse matrix,
permuted once into the order SuperLU's minimum degree gives and factored by
SuperLU without pivoting (the matrix is symmetric positive definite, so that
LU = L D L' with D the diagonal of U). The [X y] rows are eliminated with three
solves: with B = Lambda' Z' W [X y] the Schur complement is A_xy - B' M^{-1} B,
whose dense Cholesky is the [X y] block of the blocked layout's L (the same
matrix, with the same r and R_X). The objective, the modes and the preconditioner
of PIRLS's conjugate gradients come from here; whoever needs the blocks of L
(conditional variances, leverage, inference) gets them from the blocked layout.

The layout is chosen where it pays, from the structure alone (so that a model's
numbers never depend on the machine's speed): scalar terms whose levels meet in
few pairs, a filled-in block of at least ``SPARSE_MIN_LEVELS`` rows, and a
factorization that needs ``SPARSE_FLOP_RATIO`` times fewer flops than the dense
block (SuperLU works at about a tenth of LAPACK's rate on such a factor). InstEval
(2972 students, 1128 instructors, 65 pairs per instructor) and the 200k-row
synthetic (29 pairs per item: 1.8e9 flops against 1.7e10, SuperLU 0.37 s against
LAPACK's 0.42 s) keep the dense block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import splu

from sklmixed._core._block_types import factor_xy
from sklmixed._core._blocks import BlockSparse

# The filled-in dense block must have at least this many rows (below, LAPACK's
# dense Cholesky takes milliseconds).
SPARSE_MIN_LEVELS = 1000
# Mean number of distinct level pairs per level of the filled-in term above which
# the minimum-degree order is not even tried: its factor then fills in nearly as
# much (the 200k-row synthetic, 29; InstEval's instructors, 65) and the ordering
# alone costs seconds (2 s at 200k rows, 15 s at a million).
SPARSE_MAX_PAIRS = 15.0
# The sparse factorization must need this many times fewer flops than the dense
# block's l^3 / 3: SuperLU's rate on these factors is 3-5 Gflop/s against LAPACK's
# 30-40 (measured on one core: 50k rows 5.4e7 flops in 21 ms; InstEval 2.1e8 flops
# in 59 ms against the dense 4.8e8 in 16 ms).
SPARSE_FLOP_RATIO = 20.0

_SUPERLU = {"SymmetricMode": True}


def _lu(M: Any, permc: str) -> Any:
    """SuperLU without row pivoting (a symmetric positive definite M), or None
    where a pivot vanishes (then M is not positive definite)."""
    try:
        return splu(M, permc_spec=permc, diag_pivot_thresh=0.0, options=_SUPERLU)
    except RuntimeError:  # "Factor is exactly singular"
        return None


class SparseFactor:
    """One factorization of the system in the sparse layout.

    Attributes
    ----------
    logdet_z : float
        log |Lambda' Z'WZ Lambda + I|.
    xy : ndarray, shape (p + 1, p + 1)
        The [X y] block of L (lower): R_X, c and r as the blocked layout's.
    """

    def __init__(
        self,
        lu: Any,
        logdet_z: float,
        B: NDArray[Any],
        Y: NDArray[Any],
        xy: NDArray[Any],
        perm: NDArray[Any],
        offsets: NDArray[Any],
    ) -> None:
        self._lu = lu
        self.logdet_z = logdet_z
        self._B = B  # Lambda' Z'W [X y], (q, p + 1), in the layout's order
        self._Y = Y  # M^{-1} B
        self.xy = xy
        self._perm = perm  # perm[position in the layout's order] = index in the terms'
        self.offsets = offsets  # each term's first row in the terms' order

    def solve_z(self, r: NDArray[Any]) -> NDArray[Any]:
        """M^{-1} r for M = Lambda' Z'WZ Lambda + I (r in the terms' order)."""
        perm = self._perm
        out = np.empty_like(r)
        out[perm] = self._lu.solve(np.ascontiguousarray(r[perm]))
        return out

    def u(self, beta: NDArray[Any]) -> NDArray[Any]:
        """The spherical modes at ``beta``, M^{-1} (Lambda' Z'W (y - X beta)), in
        the terms' order (one vector over all levels)."""
        p = self._B.shape[1] - 1
        v = self._Y[:, p] - self._Y[:, :p] @ beta
        out = np.empty(v.shape[0])
        out[self._perm] = v
        return out

    def precondition(self, r: NDArray[Any], p: int) -> NDArray[Any]:
        """The system's inverse times r: [M B_x; B_x' X'WX]^{-1} r by eliminating
        the random effects (p = 0: M^{-1} r alone)."""
        q = r.shape[0] - p
        perm = self._perm
        yz = self._lu.solve(np.ascontiguousarray(r[:q][perm]))
        out = np.empty(q + p)
        if p:
            R = self.xy[:p, :p]
            rx = r[q:] - self._B[:, :p].T @ yz
            xx = np.linalg.solve(R.T, np.linalg.solve(R, rx))
            yz = yz - self._Y[:, :p] @ xx
            out[q:] = xx
        out[:q][perm] = yz
        return out


class SparseLayout:
    """The structure of the sparse layout, fixed once from the pattern of A.

    Parameters
    ----------
    nlevels : list of int
        Levels of each (scalar) term, in the core's order.
    patterns : dict
        The level pairs of A's off-diagonal random-effects blocks (i > j).
    """

    def __init__(self, nlevels: list[int], patterns: dict[tuple[int, int], BlockSparse]) -> None:
        self.m = len(nlevels)
        self.off = np.concatenate(([0], np.cumsum(nlevels))).astype(np.int64)
        self.q = int(self.off[-1])
        self.keys = sorted(patterns)
        rows = [np.arange(self.q)]
        cols = [np.arange(self.q)]
        for i, j in self.keys:
            S = patterns[(i, j)]
            r, c = self.off[i] + S.brow, self.off[j] + S.bcol
            rows += [r, c]
            cols += [c, r]
        self._rows = np.concatenate(rows)
        self._cols = np.concatenate(cols)
        self.perm: NDArray[Any] | None = None  # the fill-reducing order, once decided
        self._slot: NDArray[Any] = np.zeros(0, dtype=np.int64)
        self._indices: NDArray[Any] = np.zeros(0, dtype=np.int32)
        self._indptr: NDArray[Any] = np.zeros(0, dtype=np.int32)

    def _values(self, A: dict[tuple[int, int], Any], lams: list[NDArray[Any]]) -> NDArray[Any]:
        """The entries of M = Lambda' Z'WZ Lambda + I in the order of the pattern."""
        s = [float(lam[0, 0]) for lam in lams]
        parts = [np.concatenate([A[(j, j)] * s[j] ** 2 + 1.0 for j in range(self.m)])]
        for i, j in self.keys:
            v = A[(i, j)].data.reshape(-1) * (s[i] * s[j])
            parts += [v, v]
        return np.concatenate(parts)

    def choose(self, A: dict[tuple[int, int], Any], dense_flops: float) -> bool:
        """Order M by minimum degree (once) and say whether the factor it gives
        needs SPARSE_FLOP_RATIO times fewer flops than the dense blocks'
        ``dense_flops``. The order depends on the pattern alone (the values
        here, at lambda = I, only keep SuperLU's trial factorization finite)."""
        vals = self._values(A, [np.ones((1, 1))] * self.m)
        M = sp.csc_matrix((vals, (self._rows, self._cols)), shape=(self.q, self.q))
        lu = _lu(M, "MMD_AT_PLUS_A")
        if lu is None:
            return False
        counts = np.diff(lu.L.indptr).astype(float)  # column counts of the unit lower L
        if not SPARSE_FLOP_RATIO * float(np.sum(counts**2)) < dense_flops:
            return False
        # SuperLU factors M[perm][:, perm] with perm = argsort(perm_c): the entry
        # at (r, c) moves to (perm_c[r], perm_c[c]). Record where each entry of the
        # pattern lands in that matrix's CSC storage (tags 1..nnz, no duplicates).
        new = np.asarray(lu.perm_c, dtype=np.int64)
        tag = sp.csc_matrix(
            (np.arange(1, vals.shape[0] + 1, dtype=float), (new[self._rows], new[self._cols])),
            shape=(self.q, self.q),
        )
        tag.sort_indices()
        self._slot = tag.data.astype(np.int64) - 1
        self._indices, self._indptr = tag.indices, tag.indptr
        self.perm = np.argsort(new)  # perm[position in the order] = level's index
        return True

    def factor(
        self,
        A: dict[tuple[int, int], Any],
        lams: list[NDArray[Any]],
    ) -> SparseFactor | None:
        """The factorization at A and lambdas; None if not positive definite."""
        assert self.perm is not None
        m, perm = self.m, self.perm
        vals = self._values(A, lams)[self._slot]
        M = sp.csc_matrix((vals, self._indices, self._indptr), shape=(self.q, self.q))
        lu = _lu(M, "NATURAL")
        if lu is None:
            return None
        d = lu.U.diagonal()
        if not np.all(d > 0.0):
            return None
        # B = Lambda' Z'W [X y], the terms' blocks of A's last block row, transposed
        B = np.concatenate([A[(m, j)].T * float(lam[0, 0]) for j, lam in enumerate(lams)], axis=0)[
            perm
        ]
        Y = lu.solve(np.asfortranarray(B))
        Y = Y.reshape(B.shape)
        xy = factor_xy(np.asfortranarray(A[(m, m)] - B.T @ Y))
        return SparseFactor(lu, float(np.sum(np.log(d))), B, Y, xy, perm, self.off)


def sparse_layout(
    nlevels: list[int],
    scalar: bool,
    filled: list[int],
    patterns: dict[tuple[int, int], BlockSparse],
) -> SparseLayout | None:
    """The sparse layout's structure where it may pay, from the blocked layout's
    structure alone, else None: scalar terms only (``scalar``), every
    off-diagonal block of A sparse (``patterns``), some filled-in diagonal block
    (``filled``: the indices of the terms whose diagonal block of L is dense) of
    at least SPARSE_MIN_LEVELS rows, and at most SPARSE_MAX_PAIRS level pairs per
    level of each filled-in term. Whether it does pay is decided on the first
    factorization (:meth:`SparseLayout.choose`)."""
    m = len(nlevels)
    if not scalar or m < 2 or len(patterns) != m * (m - 1) // 2:
        return None
    if not filled or max(nlevels[j] for j in filled) < SPARSE_MIN_LEVELS:
        return None
    for j in filled:
        pairs = sum(patterns[(j, i)].nblocks for i in range(j))
        if pairs > SPARSE_MAX_PAIRS * nlevels[j]:
            return None
    return SparseLayout(nlevels, patterns)
