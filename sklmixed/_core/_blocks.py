"""Block types of the penalized least-squares system and the products between them.

The symmetric matrix A = [Z_1 ... Z_m X y]' W [Z_1 ... Z_m X y] and its Cholesky
factor L are stored as a lower triangle of blocks. The block type follows the
structure, fixed once at setup, so that the per-theta work is a few vectorized
array operations:

- ``"diag"``: a scalar term's diagonal block, a vector of length l;
- ``"bdiag"``: a vector term's diagonal block, an array (l, k, k);
- ``"sparse"``: an off-diagonal block between two random-effects terms, stored as
  a :class:`BlockSparse` of k_i x k_j blocks whose pattern never changes;
- ``"dense"``: a 2-D array (the blocks with X and y, and blocks that fill in).

The expensive step of a crossed model is the rank update ``L_jj -= L_ji L_ji'`` of
a diagonal block from a sparse block. :class:`PatternProduct` precomputes, once,
every pair of stored blocks that meet in such a product and where their product
lands, so that each evaluation is one batched multiply and one ``bincount``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


class BlockSparse:
    """A sparse matrix of dense ki x kj blocks with a fixed pattern.

    Blocks are stored in CSR order of the block grid: sorted by block row, then block
    column. ``data`` has shape (nb, ki, kj).
    """

    __slots__ = ("shape_blocks", "ki", "kj", "brow", "bcol", "data", "_indptr")

    def __init__(
        self,
        shape_blocks: tuple[int, int],
        ki: int,
        kj: int,
        brow: NDArray[Any],
        bcol: NDArray[Any],
        data: NDArray[Any],
    ) -> None:
        self.shape_blocks = shape_blocks  # (number of block rows, number of block cols)
        self.ki = ki
        self.kj = kj
        order = np.lexsort((bcol, brow))
        self.brow = np.ascontiguousarray(brow[order], dtype=np.int64)
        self.bcol = np.ascontiguousarray(bcol[order], dtype=np.int64)
        self.data = np.ascontiguousarray(data[order], dtype=float)
        self._indptr = np.concatenate(
            ([0], np.cumsum(np.bincount(self.brow, minlength=shape_blocks[0])))
        ).astype(np.int64)

    @property
    def nblocks(self) -> int:
        return int(self.brow.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.shape_blocks[0] * self.ki, self.shape_blocks[1] * self.kj)

    def with_data(self, data: NDArray[Any]) -> BlockSparse:
        """A copy sharing the pattern, with new block values (same order)."""
        new = object.__new__(BlockSparse)
        new.shape_blocks = self.shape_blocks
        new.ki, new.kj = self.ki, self.kj
        new.brow, new.bcol, new._indptr = self.brow, self.bcol, self._indptr
        new.data = data
        return new

    def to_scipy(self) -> sp.spmatrix:
        """The same matrix as a scipy sparse matrix (CSR for 1x1 blocks, else BSR)."""
        if self.ki == 1 and self.kj == 1:
            return sp.csr_matrix((self.data.reshape(-1), self.bcol, self._indptr), shape=self.shape)
        return sp.bsr_matrix(
            (self.data, self.bcol, self._indptr),
            shape=self.shape,
            blocksize=(self.ki, self.kj),
        )

    def to_dense(self) -> NDArray[Any]:
        out = np.zeros((self.shape_blocks[0], self.ki, self.shape_blocks[1], self.kj))
        out[self.brow, :, self.bcol, :] = self.data
        return out.reshape(self.shape)


class PatternProduct:
    """Precomputed ``S T'`` for two block-sparse matrices over the same block columns.

    Parameters
    ----------
    S, T : BlockSparse
        ``S`` is (ri x c) blocks of ki x kc, ``T`` is (rj x c) blocks of kj x kc.
    symmetric : bool
        ``S is T`` and only the lower block triangle of ``S S'`` is needed (a
        diagonal block's rank update; Cholesky reads only the lower triangle).

    Every pair (a, b) of stored blocks in the same block column contributes
    ``S_a T_b'`` to output block (row_a, row_b). The pairs, and the position of each
    output block among the distinct output blocks, are computed once here, with
    vectorized numpy only (no loop over levels).
    """

    def __init__(self, S: BlockSparse, T: BlockSparse, symmetric: bool = False):
        ia, ib = _pairs_in_same_column(S, T, symmetric)
        self.ia, self.ib = ia, ib
        self.ki, self.kj = S.ki, T.ki
        self.out_rows_blk, self.out_cols_blk = S.brow[ia], T.brow[ib]
        self.scalar = S.ki == 1 and T.ki == 1 and S.kj == 1
        nbj = T.shape_blocks[0]
        key = self.out_rows_blk * nbj + self.out_cols_blk
        uniq, inv = _unique_inverse(key, S.shape_blocks[0] * nbj)
        self.pos = inv
        self.nout = int(uniq.shape[0])
        self.urow = uniq // nbj  # block row of each distinct output block
        self.ucol = uniq % nbj  # block column of each distinct output block
        self._colweighted: tuple[BlockSparse, Any] | None = None
        self._flat: tuple[int, NDArray[Any]] | None = None

    def is_block_diagonal(self) -> bool:
        return bool(np.all(self.urow == self.ucol))

    def within(self, target: BlockSparse) -> NDArray[Any] | None:
        """Index of each distinct output block in ``target``'s blocks, or None if
        some output block is not stored there (the product would fill in)."""
        nbj = target.shape_blocks[1]
        tkey = target.brow * nbj + target.bcol
        okey = self.urow * nbj + self.ucol
        idx = np.searchsorted(tkey, okey)
        idx = np.minimum(idx, max(tkey.shape[0] - 1, 0))
        if tkey.shape[0] == 0 or not np.array_equal(tkey[idx], okey):
            return None
        return np.asarray(idx)

    def values(self, S: BlockSparse, T: BlockSparse) -> NDArray[Any]:
        """The distinct output blocks' values, shape (nout,) or (nout, ki, kj)."""
        if self.scalar:
            prod = S.data[self.ia, 0, 0] * T.data[self.ib, 0, 0]
            return np.bincount(self.pos, prod, minlength=self.nout)
        prod = np.matmul(S.data[self.ia], T.data[self.ib].transpose(0, 2, 1))
        out = np.zeros((self.nout, self.ki, self.kj))
        np.add.at(out, self.pos, prod)
        return out

    def colweighted_values(self, w: NDArray[Any], A: BlockSparse) -> NDArray[Any]:
        """Values of ``S diag(w) S'`` for the pattern's own (scalar) ``S``.

        When S = c * A D with A the constant data of the pattern, D a diagonal
        column scaling and c a scalar (a scalar term's block below a diagonal L11),
        ``S S' = c^2 A D^2 A'`` and the products of A's entries are constants: a
        sparse matrix P (distinct outputs x columns) made once, so an evaluation is
        one sparse matrix-vector product ``P @ w`` with ``w = diag(D^2)``. P is
        rebuilt only when ``A`` (new weights) changes.
        """
        if self._colweighted is None or self._colweighted[0] is not A:
            vals = A.data[self.ia, 0, 0] * A.data[self.ib, 0, 0]
            # Pairs are enumerated column by column (CSC order), so P is built in
            # CSC form directly, without a sort.
            ncol = A.shape_blocks[1]
            counts = np.bincount(A.bcol[self.ia], minlength=ncol)
            indptr = np.concatenate(([0], np.cumsum(counts)))
            P = sp.csc_matrix((vals, self.pos, indptr), shape=(self.nout, ncol))
            self._colweighted = (A, P)
        return np.asarray(self._colweighted[1] @ w)

    def subtract_from_dense(
        self, dense: NDArray[Any], S: BlockSparse, T: BlockSparse, vals: NDArray[Any] | None = None
    ) -> None:
        """``dense -= S T'`` on the product's pattern (dense is ri*ki x rj*kj)."""
        if vals is None:
            vals = self.values(S, T)
        if self.scalar:
            # Distinct positions, so a plain fancy-indexed update is exact.
            flat = dense.reshape(-1)
            if self._flat is None or self._flat[0] != dense.shape[1]:
                self._flat = (dense.shape[1], self.urow * dense.shape[1] + self.ucol)
            flat[self._flat[1]] -= vals
            return
        r = (self.urow[:, None] * self.ki + np.arange(self.ki))[:, :, None]
        c = (self.ucol[:, None] * self.kj + np.arange(self.kj))[:, None, :]
        dense[r, c] -= vals


def _pairs_in_same_column(
    S: BlockSparse, T: BlockSparse, symmetric: bool
) -> tuple[NDArray[Any], NDArray[Any]]:
    """All (a, b): block a of S and block b of T in the same block column.

    With ``symmetric``, S is T and only pairs with row(a) >= row(b) are kept.
    Built from CSC orderings with repeat/cumsum arithmetic, no Python loop.
    """
    ncol = S.shape_blocks[1]
    s_order = np.lexsort((S.brow, S.bcol))  # CSC order of S's blocks
    t_order = np.lexsort((T.brow, T.bcol))
    s_cnt = np.bincount(S.bcol, minlength=ncol)
    t_cnt = np.bincount(T.bcol, minlength=ncol)
    t_start = np.concatenate(([0], np.cumsum(t_cnt)[:-1]))
    # For each block a of S (in CSC order), every block of T in its column.
    s_col = S.bcol[s_order]
    if symmetric:
        # Pair a with the blocks b of its column with row(b) <= row(a): in CSC order
        # (rows ascending within a column) those are the first (rank of a) + 1.
        s_start = np.concatenate(([0], np.cumsum(s_cnt)[:-1]))
        rank_in_col = np.arange(s_order.shape[0]) - s_start[s_col]
        reps = rank_in_col + 1
    else:
        reps = t_cnt[s_col]
    total = int(reps.sum())
    a_csc = np.repeat(np.arange(s_order.shape[0]), reps)
    first = np.repeat(np.cumsum(reps) - reps, reps)
    offset = np.arange(total) - first
    b_csc = t_start[s_col][a_csc] + offset
    return s_order[a_csc], t_order[b_csc]


def _unique_inverse(key: NDArray[Any], bound: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Sorted distinct values of ``key`` (all in [0, bound)) and each key's index.

    Counting beats sorting when the range is moderate (it is linear), which is the
    case of a dense target block; fall back to a sort otherwise.
    """
    if bound <= 64_000_000:
        present = np.bincount(key, minlength=bound) > 0
        uniq = np.flatnonzero(present)
        rank = np.cumsum(present) - 1
        return uniq, rank[key]
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq.astype(np.int64), inv.astype(np.int64)
