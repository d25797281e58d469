"""Sparse block storage of the penalized least-squares system and the products between blocks.

The symmetric matrix A = [Z_1 ... Z_m X y]' W [Z_1 ... Z_m X y] and its Cholesky
factor L are stored as a lower triangle of blocks. The blocks of L have the types
of ``_block_types`` (diagonal, block diagonal, sparse, dense); this module holds
the storage of a sparse block, :class:`BlockSparse` (k_i x k_j blocks whose
pattern never changes), and the precomputed products between sparse blocks.

The expensive step of a crossed model is the rank update ``L_jj -= L_ji L_ji'`` of
a diagonal block from a sparse block. :class:`PatternProduct` precomputes, once,
every pair of stored blocks that meet in such a product and where their product
lands, so that each evaluation is one batched multiply and one ``bincount``. The
number of such pairs grows with the square of the levels' activity (72 million for
a million ratings of 6040 users and 3706 items), so a rank update that fills a
dense block uses :class:`GramUpdate` instead: dense BLAS for the heavy columns
and rows of the sparse block, pairs only for the light rest.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.linalg.blas import dsyrk as _syrk
from threadpoolctl import ThreadpoolController


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


# ----------------------------------------------------------- split Gram update

_BLAS: list[Any] | None = None  # threadpoolctl's controllers of the BLAS libraries
# The BLAS libraries' thread count is one setting of the whole process, shared by
# its threads. A threadpoolctl limit per caller restores, on exit, the count it
# found on entry: two threads whose limits overlap (joblib's threading backend,
# GridSearchCV, Dask workers in the process) restore in the wrong order and leave
# the process on one thread for good, which changes the rounding, and so the last
# digits, of every later mid-sized fit (InstEval's standard errors moved in the
# 8th digit). So the limit is counted: the first caller to enter sets it, the last
# to leave restores it.
_LIMIT_LOCK = threading.Lock()
_limit_depth = 0
# The libraries' thread counts found by the outermost caller, restored when it
# leaves. (Set and read through threadpoolctl's controllers directly: its limit
# object reads every library's full description on entry, some 9 us of each fit.)
_limit: list[tuple[Any, int]] = []


@contextlib.contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """A context that runs the BLAS libraries on one thread, process-wide.

    GramUpdate's SYRK and the Cholesky factorization of large dense blocks run with
    one thread: see ``ONE_THREAD_MIN`` in ``_lmm`` for the measurements. Nested and
    concurrent uses (threads of one process) are counted, so that the original
    setting comes back when the last of them ends. ``n`` must be 1.
    """
    global _BLAS, _limit_depth, _limit
    if n != 1:
        raise ValueError("only a limit of one thread is supported")
    with _LIMIT_LOCK:
        if _BLAS is None:  # found on first use, once scipy's LAPACK is loaded
            _BLAS = ThreadpoolController().select(user_api="blas").lib_controllers
        if _limit_depth == 0:
            _limit = [(lib, lib.get_num_threads()) for lib in _BLAS]
            for lib in _BLAS:
                lib.set_num_threads(1)
        _limit_depth += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_depth -= 1
            if _limit_depth == 0:
                for lib, count in _limit:
                    lib.set_num_threads(count)
                _limit = []


# Cost model of GramUpdate's split, in seconds per unit of work. Measured on a 2-core
# x86-64 machine (OpenBLAS, SkylakeX kernels, one thread), on the 3706 x 6040 block
# of a million ratings and on InstEval's 1128 x 2972: SYRK at about 25 G
# multiply-adds/s, scipy's CSR times a dense block at 0.4 ns per multiply-add and
# 12 ns per element of its product scattered into the block, and 2-4 ns per pair of
# light entries (the sparse matrix-vector product, 1.3 ns, plus a share of the scatter
# of its output); some 200 microseconds of Python, scipy objects and temporaries
# around each part that is present. Only the ratios matter: they decide which columns
# and rows are dense.
_COST_SYRK = 4.0e-11  # per multiply-add of the heavy columns' SYRK
_COST_SPMM = 4.0e-10  # per multiply-add of the light columns times the heavy rows
_COST_SCATTER = 1.2e-8  # per element of that product scattered into the block
_COST_PAIR = 3.0e-9  # per pair of light entries
_COST_PART = 2.0e-4  # per part present
# The pairs kept for the light part are bounded by this many per stored entry of S
# (and at least _PAIRS_FLOOR, 40 MB of pairs), so that the memory of the update is
# O(nnz(S)) however active the heaviest levels are.
_PAIRS_PER_ENTRY = 8
_PAIRS_FLOOR = 2_000_000
# Tests force a split here: (number of heavy columns, number of heavy rows).
FORCE_SPLIT: tuple[int, int] | None = None


class GramUpdate:
    """``dense -= scale * S diag(w) S'`` on the lower triangle, for a fixed sparse S.

    S is an m x c sparse matrix whose pattern is fixed at construction; each call
    passes the values of its stored entries (in the order of ``rows``/``cols``) and
    optionally a non-negative column weight ``w``. ``dense`` is a Fortran-ordered
    m x m array (LAPACK then factors it in place) of which only the lower triangle
    is read and written (the Cholesky factorization that follows reads nothing else).

    S S' sums, over the columns of S, the outer products of their entries, so
    enumerating the pairs of entries of a column (as :class:`PatternProduct` does)
    costs the sum of the squared column counts in time and memory: 72 million pairs
    for a million ratings of 6040 users by 3706 items, most of them from a few
    hundred heavy users and popular items. The work is split instead:

    - the k heaviest columns, as a dense m x k matrix: one BLAS SYRK into ``dense``;
    - among the other (light) columns, the h heaviest rows, as a dense c x h matrix B:
      ``S_light B`` (scipy's sparse times dense) gives every output in a heavy row
      or column of ``dense``;
    - the rest (light rows of light columns) by pairs of entries, precomputed as
      a sparse matrix P (distinct outputs x columns), so that the products are
      ``P @ w`` and one scatter.

    k and h minimize a cost model (``_COST_*``) among powers of two, with the light
    pairs bounded by ``_PAIRS_PER_ENTRY`` per entry, so memory stays O(nnz(S)) plus
    the dense parts. Values that do not change between calls (a column-weighted
    product of a constant S) are cached under ``cache_key``.

    Parameters
    ----------
    rows, cols : ndarray of int
        Row and column of each stored entry of S.
    shape : tuple of int
        (m, c).
    split : tuple of int, optional
        (k, h) instead of the cost model's choice.
    """

    def __init__(
        self,
        rows: NDArray[Any],
        cols: NDArray[Any],
        shape: tuple[int, int],
        split: tuple[int, int] | None = None,
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        m, c = int(shape[0]), int(shape[1])
        self.m, self.c = m, c
        if split is None:
            split = FORCE_SPLIT if FORCE_SPLIT is not None else choose_split(rows, cols, m, c)
        k, h = min(int(split[0]), c), min(int(split[1]), m)
        row_count = np.bincount(rows, minlength=m)
        heavy_rows = np.sort(np.argsort(-row_count, kind="stable")[:h])
        is_hr = np.zeros(m, dtype=bool)
        is_hr[heavy_rows] = True
        light_row_entry = ~is_hr[rows]
        col_light_count = np.bincount(cols[light_row_entry], minlength=c)
        heavy_cols = np.sort(np.argsort(-col_light_count, kind="stable")[:k])
        is_hc = np.zeros(c, dtype=bool)
        is_hc[heavy_cols] = True
        self.split = (k, h)
        self.heavy_cols, self.heavy_rows = heavy_cols, heavy_rows
        entry_hc = is_hc[cols]

        # Heavy columns: entry -> position in the dense m x k matrix, stored as its
        # transpose (k x m, C order) so that the m x k matrix is Fortran-ordered for BLAS.
        self._hc_entries = np.flatnonzero(entry_hc)
        hc_index = np.searchsorted(heavy_cols, cols[self._hc_entries])
        self._hc_pos = hc_index * m + rows[self._hc_entries]

        # Light columns: S_light in CSR form (all rows) and B = S[heavy rows, light
        # columns]' as a dense c x h matrix.
        lc = np.flatnonzero(~entry_hc)
        order = np.lexsort((cols[lc], rows[lc]))
        self._lc_entries = lc[order]
        self._lc_indices = cols[self._lc_entries]
        self._lc_indptr = np.concatenate(
            ([0], np.cumsum(np.bincount(rows[self._lc_entries], minlength=m)))
        )
        if h > 0:
            b_entries = lc[is_hr[rows[lc]]]
            self._b_entries = b_entries
            self._b_pos = cols[b_entries] * h + np.searchsorted(heavy_rows, rows[b_entries])
            # G = S_light B is m x h; its entry (r, s) is output (r, heavy_rows[s]),
            # stored at the lower-triangle position (column-major: row + m * column).
            # Both (r, s) and (s', r') exist when r is heavy too: keep the one with
            # r >= heavy_rows[s].
            r = np.repeat(np.arange(m), h)
            col = np.tile(heavy_rows, m)
            keep = ~(is_hr[r] & (r < col))
            src = np.flatnonzero(keep)
            rk, ck = r[keep], col[keep]
            dest = np.maximum(rk, ck) + np.minimum(rk, ck) * m
            # Sorted by destination, the scatter walks the block in memory order.
            order = np.argsort(dest)
            self._g_src, self._g_dest = src[order], dest[order]

        # Light rows of light columns: pairs of entries in the same column.
        light = np.flatnonzero(~entry_hc & light_row_entry)
        ia, ib = _column_pairs(rows[light], cols[light])
        ia, ib = light[ia], light[ib]
        key = rows[ia] + rows[ib] * m  # rows[ia] >= rows[ib]: lower triangle, column-major
        present = np.zeros(m * m, dtype=bool)
        present[key] = True
        self._ll_dest = np.flatnonzero(present)
        del present
        pos = np.searchsorted(self._ll_dest, key)
        itype = np.int32 if max(rows.shape[0], self._ll_dest.shape[0]) < 2**31 else np.int64
        self._ia, self._ib = ia.astype(itype), ib.astype(itype)
        self._pos = pos.astype(itype)
        self._p_indptr = np.concatenate(([0], np.cumsum(np.bincount(cols[ia], minlength=c))))
        self.npairs = int(ia.shape[0])
        self._cache_key: object = None
        self._cache: dict[str, Any] = {}

    def _parts(self, data: NDArray[Any]) -> dict[str, Any]:
        """The dense and sparse operands built from the entries' values."""
        m, c = self.m, self.c
        k, h = self.split
        parts: dict[str, Any] = {}
        if k > 0:
            D = np.zeros((k, m))
            D.reshape(-1)[self._hc_pos] = data[self._hc_entries]
            parts["D"] = D
        if h > 0:
            B = np.zeros((c, h))
            B.reshape(-1)[self._b_pos] = data[self._b_entries]
            parts["B"] = B
            parts["S"] = sp.csr_matrix(
                (data[self._lc_entries], self._lc_indices, self._lc_indptr), shape=(m, c)
            )
        return parts

    def subtract_from_dense(
        self,
        dense: NDArray[Any],
        data: NDArray[Any],
        w: NDArray[Any] | None = None,
        scale: float = 1.0,
        cache_key: object = None,
    ) -> None:
        """``dense -= scale * S diag(w) S'`` (lower triangle), S with entries ``data``.

        With ``cache_key`` (an object that identifies constant ``data``, such as the
        block of A it came from), the operands built from ``data`` are kept until a
        call with another key.
        """
        if not (dense.flags.f_contiguous and dense.shape == (self.m, self.m)):
            raise ValueError("the target of a Gram update must be a Fortran-ordered m x m array")
        data = np.asarray(data, dtype=float).reshape(-1)
        if cache_key is not None and cache_key is self._cache_key:
            parts = self._cache
        else:
            parts = self._parts(data)
            if cache_key is not None:
                self._cache_key, self._cache = cache_key, parts
        flat = dense.reshape(-1, order="F")  # a view: dense is Fortran-ordered
        k, h = self.split
        if k > 0:
            D = parts["D"]
            if w is not None:
                D = D * np.sqrt(w[self.heavy_cols])[:, None]
            # D.T is the Fortran-ordered m x k matrix: SYRK updates dense in place.
            with blas_threads(1):
                out = _syrk(-scale, D.T, beta=1.0, c=dense, lower=1, overwrite_c=1)
            if not np.shares_memory(out, dense):  # pragma: no cover - BLAS copied
                dense[...] = out
        if h > 0:
            B = parts["B"] if w is None else parts["B"] * w[:, None]
            G = np.asarray(parts["S"] @ B)
            flat[self._g_dest] -= scale * G.reshape(-1)[self._g_src]
        if self.npairs:
            if w is None:
                prod = data[self._ia] * data[self._ib]
                vals = np.bincount(self._pos, prod, minlength=self._ll_dest.shape[0])
            else:
                P = parts.get("P")
                if P is None:
                    prod = data[self._ia] * data[self._ib]
                    P = sp.csc_matrix(
                        (prod, self._pos, self._p_indptr),
                        shape=(self._ll_dest.shape[0], self.c),
                    )
                    parts["P"] = P
                vals = P @ w
            flat[self._ll_dest] -= scale * vals


def _column_pairs(rows: NDArray[Any], cols: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """All (a, b) of entries in the same column with rows[a] >= rows[b], a == b included.

    Enumerated column by column (columns ascending), with repeat/cumsum arithmetic
    on the CSC order, no Python loop.
    """
    n = rows.shape[0]
    order = np.lexsort((rows, cols))  # CSC order: rows ascending within a column
    col_sorted = cols[order]
    starts = np.flatnonzero(np.r_[True, col_sorted[1:] != col_sorted[:-1]]) if n else order
    start_of = np.repeat(starts, np.diff(np.r_[starts, n])) if n else order
    rank = np.arange(n) - start_of
    reps = rank + 1
    total = int(reps.sum())
    a = np.repeat(np.arange(n), reps)
    offset = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
    b = start_of[a] + offset
    return order[a], order[b]


def choose_split(rows: NDArray[Any], cols: NDArray[Any], m: int, c: int) -> tuple[int, int]:
    """(k, h) of :class:`GramUpdate` with the least modelled cost (see ``_COST_*``).

    Candidates are 0 and powers of two for both; for each h (heavy rows = the h rows
    with most entries), the heavy columns are those with most entries in light
    rows, and the pairs left are counted exactly from the column counts. A split is
    admissible when its pairs are within the budget (``_PAIRS_PER_ENTRY``) and its
    dense parts take no more memory than the m x m block they update; when none is
    (many more columns than rows, all heavy), the one that takes least memory.
    """
    nnz = rows.shape[0]
    budget = max(_PAIRS_PER_ENTRY * nnz, _PAIRS_FLOOR)
    row_count = np.bincount(rows, minlength=m)
    col_count = np.bincount(cols, minlength=c)
    row_order = np.argsort(-row_count, kind="stable")
    best: tuple[float, int, int] | None = None
    smallest: tuple[float, int, int] | None = None
    for h in _candidates(m):
        is_hr = np.zeros(m, dtype=bool)
        is_hr[row_order[:h]] = True
        cl = np.bincount(cols[~is_hr[rows]], minlength=c)
        corder = np.argsort(-cl, kind="stable")
        pair_cum = np.concatenate(([0], np.cumsum(cl[corder] * (cl[corder] + 1) // 2)))
        nnz_cum = np.concatenate(([0], np.cumsum(col_count[corder])))
        for k in _candidates(c):
            pairs = int(pair_cum[-1] - pair_cum[k])
            # bytes: D (k x m), B (c x h), S_light B and its scatter indices (m x h)
            dense_bytes = 8.0 * (k * m + c * h) + 24.0 * m * h
            memory = dense_bytes + 20.0 * pairs  # a pair: two entries, output, product
            if smallest is None or memory < smallest[0]:
                smallest = (memory, k, h)
            if pairs > budget or dense_bytes > 8.0 * m * m:
                continue
            cost = (
                _COST_SYRK * m * m * k / 2
                + (_COST_SPMM * (nnz - nnz_cum[k]) + _COST_SCATTER * m) * h
                + _COST_PAIR * pairs
                + _COST_PART * ((k > 0) + (h > 0) + (pairs > 0))
            )
            if best is None or cost < best[0]:
                best = (cost, k, h)
    if best is None:
        assert smallest is not None
        best = smallest
    return best[1], best[2]


def _candidates(size: int) -> list[int]:
    """0, then powers of two below ``size``, then ``size``."""
    out = [0]
    v = 8
    while v < size:
        out.append(v)
        v *= 2
    if size > 0:
        out.append(size)
    return out
