"""The cross-products through which a linear mixed model sees its data.

An LMM's likelihood depends on the rows only through

    A = [Z X y]' W [Z X y],

the number of observations of positive weight and the sum of the logs of the
weights (Bates et al. 2015, section 3; DESIGN.md section 11). A is small when
the numbers of levels are, and it is a sum over rows: it can be accumulated over
chunks of rows that are never all in memory at once. This module computes it.

:class:`CrossProducts` is the record: A's blocks for the terms in the core's
order (see ``_lmm.order_terms``), on the core's internal (centred and scaled)
columns, plus ``n``, ``nobs`` and ``logw_sum``. :meth:`CrossProducts.from_rows`
computes it from one chunk of rows, :meth:`CrossProducts.combine` adds two
records (the level pairs of the blocks between terms are the union of both).
:class:`RowProducts` keeps what does not change when only the weights or the
response do (the sparse Z', the level-pair codes of each row), for the in-memory
problem whose PIRLS iterations recompute A with new working weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sklmixed._core._blocks import BlockSparse
from sklmixed._core._reterm import ReTerm

# A block between two random-effects terms whose level pairs cover at least this
# fraction of all pairs is stored dense (also in ``_lmm``, which decides A's
# storage with the same number): summing chunks then adds arrays instead of
# merging ever larger sorted patterns.
DENSE_FRACTION = 0.25

# The first product Z_j' V of a term is taken by bincounts (one per column of
# Z_j and of V) up to this many of them: measured, k c bincounts beat building
# the sparse Z_j' and one product with it up to about 16 at 50k and 1M rows (a
# sort of all rows against a pass over them per column), by far for small models.
_BINCOUNT_COLUMNS = 16


@dataclass
class CrossProducts:
    """A = [Z X y]' W [Z X y] and the counts an LMM's likelihood needs.

    Attributes
    ----------
    n : int
        Rows seen.
    nobs : int
        Rows of positive weight (all of them without weights).
    logw_sum : float
        Sum of log w over the rows of positive weight (0 without weights).
    shapes : list of (int, int)
        (levels, columns) of each term, in the core's order.
    diag : list of ndarray
        Z_j' W Z_j per term: (l,) for a scalar term, (l, k, k) otherwise.
    pairs : dict of (i, j) -> BlockSparse or ndarray
        Z_i' W Z_j for i > j: the level pairs that meet in the data (sorted by
        row, then column), or a dense (l_i k_i, l_j k_j) array once they cover at
        least :data:`DENSE_FRACTION` of all pairs.
    zxy : list of ndarray
        [X y]' W Z_j per term, (p + 1, l_j k_j).
    xy : ndarray
        [X y]' W [X y], (p + 1, p + 1).
    present : list of ndarray of bool, optional
        Per term, the levels met in rows of positive weight (what the summary
        counts); None where not counted (the working weights of PIRLS).
    """

    n: int
    nobs: int
    logw_sum: float
    shapes: list[tuple[int, int]]
    diag: list[NDArray[Any]]
    pairs: dict[tuple[int, int], Any]
    zxy: list[NDArray[Any]]
    xy: NDArray[Any]
    present: list[NDArray[Any]] | None = None

    @classmethod
    def from_rows(
        cls,
        X: NDArray[Any],
        y: NDArray[Any],
        terms: Sequence[ReTerm],
        zs: Sequence[NDArray[Any]],
        weights: NDArray[Any] | None = None,
    ) -> CrossProducts:
        """The record of one chunk of rows.

        Parameters
        ----------
        X : ndarray (n, p)
            Internal fixed-effects columns (the estimable ones).
        y : ndarray (n,)
            Internal response.
        terms : list of ReTerm
            In the core's order; their ``refs`` index the levels of the whole
            data (not of this chunk).
        zs : list of ndarray (n, k)
            Internal random-effects columns of each term.
        weights : ndarray (n,), optional
            Prior weights.
        """
        return RowProducts(X, terms, zs).compute(weights, y, counts=True)

    def combine(self, other: CrossProducts) -> CrossProducts:
        """The record of both chunks' rows (``self`` first, then ``other``)."""
        if self.shapes != other.shapes or self.xy.shape != other.xy.shape:
            raise ValueError("cross-products of different models cannot be combined")
        pairs = {key: _add_pairs(blk, other.pairs[key]) for key, blk in self.pairs.items()}
        return CrossProducts(
            self.n + other.n,
            self.nobs + other.nobs,
            self.logw_sum + other.logw_sum,
            list(self.shapes),
            [a + b for a, b in zip(self.diag, other.diag)],
            pairs,
            [a + b for a, b in zip(self.zxy, other.zxy)],
            self.xy + other.xy,
            None
            if self.present is None or other.present is None
            else [a | b for a, b in zip(self.present, other.present)],
        )


def _add_pairs(a: Any, b: Any) -> Any:
    """The sum of two blocks between terms, over the union of their level pairs."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        out = a.to_dense() if isinstance(a, BlockSparse) else a.copy()
        if isinstance(b, BlockSparse):
            _add_to_dense(out, b)
        else:
            out += b
        return out
    ncols = a.shape_blocks[1]
    ka = a.brow * ncols + a.bcol  # sorted: BlockSparse keeps (row, col) order
    kb = b.brow * ncols + b.bcol
    # b's pairs that a lacks, inserted into a's sorted keys: a merge in
    # O(nnz(a) + nnz(b) log nnz(a)), not a sort of the union (the accumulated
    # pattern is large, each chunk's small).
    pos = np.searchsorted(ka, kb)
    found = np.zeros(kb.shape[0], dtype=bool)
    inside = pos < ka.shape[0]
    found[inside] = ka[pos[inside]] == kb[inside]
    fresh = ~found
    nkeys = ka.shape[0] + int(fresh.sum())
    if nkeys >= DENSE_FRACTION * a.shape_blocks[0] * ncols:
        out = a.to_dense()
        _add_to_dense(out, b)
        return out
    keys = np.insert(ka, pos[fresh], kb[fresh])
    data = np.insert(a.data, pos[fresh], 0.0, axis=0)
    data[np.searchsorted(keys, kb)] += b.data
    return _pattern(a.shape_blocks, a.ki, a.kj, keys, data)


def _add_to_dense(out: NDArray[Any], b: BlockSparse) -> None:
    nr, nc = b.shape_blocks
    view = out.reshape(nr, b.ki, nc, b.kj)
    view[b.brow, :, b.bcol, :] += b.data  # (row, col) pairs are distinct


def _pattern(
    shape: tuple[int, int], ki: int, kj: int, keys: NDArray[Any], data: NDArray[Any]
) -> BlockSparse:
    """A BlockSparse from sorted keys row * ncols + col (already in its order)."""
    ncols = shape[1]
    new = object.__new__(BlockSparse)
    new.shape_blocks = shape
    new.ki, new.kj = ki, kj
    new.brow = np.ascontiguousarray(keys // ncols, dtype=np.int64)
    new.bcol = np.ascontiguousarray(keys % ncols, dtype=np.int64)
    new.data = data
    counts = np.bincount(new.brow, minlength=shape[0])
    new._indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return new


class RowProducts:
    """What A's computation keeps between calls with new weights or response.

    Built once from the rows' internal columns and the terms (core order):
    [X y] as one array whose last column is the response, Z_j' as a sparse
    matrix (once a term's products are taken more than once), and for each pair
    of terms the level pair of every row (``index``) with, where the block is
    stored sparse, the pattern of distinct pairs (``patterns``, data zero).
    :meth:`compute` then needs only bincounts and sparse products.
    """

    def __init__(self, X: NDArray[Any], terms: Sequence[ReTerm], zs: Sequence[NDArray[Any]]):
        self.terms = list(terms)
        self.zs = list(zs)
        self.n = int(X.shape[0])
        self.p = int(X.shape[1])
        # Z_j as a sparse n x q_j matrix (columns level-major: k columns per level),
        # kept transposed (q_j x n, CSR) for the products Z_j' W [X y]; built on
        # the second product only (see _z_products).
        self._Zt: list[sp.csr_matrix | None] = [None] * len(self.terms)
        self._products = [0] * len(self.terms)
        self.Xy = np.empty((self.n, self.p + 1))
        self.Xy[:, : self.p] = X
        # Off-diagonal random-effects blocks: which level pairs meet in the data.
        # A block whose pairs cover DENSE_FRACTION of all is stored dense and summed
        # straight into its place (``dense_pairs``; ``index`` holds each row's pair
        # key); the others by their pattern of distinct pairs (``patterns``, data
        # zero; ``index`` holds each row's index among them).
        self.index: dict[tuple[int, int], NDArray[Any]] = {}
        self.patterns: dict[tuple[int, int], BlockSparse] = {}
        self.dense_pairs: list[tuple[int, int]] = []
        for i in range(len(self.terms)):
            for j in range(i):
                ti, tj = self.terms[i], self.terms[j]
                li, lj = ti.nlevels, tj.nlevels
                key = ti.refs * lj + tj.refs
                # n rows cannot meet DENSE_FRACTION of more than n / DENSE_FRACTION
                # pairs: only then is the table of all pairs needed (and small)
                if li * lj * DENSE_FRACTION <= self.n:
                    seen = np.bincount(key, minlength=li * lj) > 0
                    if np.count_nonzero(seen) >= DENSE_FRACTION * li * lj:
                        self.index[(i, j)] = key
                        self.dense_pairs.append((i, j))
                        continue
                    uniq = np.flatnonzero(seen)
                    inv = (np.cumsum(seen, dtype=np.int64) - 1)[key]
                else:
                    uniq, inv = np.unique(key, return_inverse=True)
                    inv = inv.astype(np.int64).reshape(-1)
                # the sorted keys are BlockSparse's (row, col) order
                zeros = np.zeros((uniq.shape[0], ti.k, tj.k))
                self.index[(i, j)] = inv
                self.patterns[(i, j)] = _pattern((li, lj), ti.k, tj.k, uniq, zeros)

    def _sparse_zt(self, j: int) -> sp.csr_matrix:
        Zt = self._Zt[j]
        if Zt is None:
            Zt = self._Zt[j] = _zt_csr(self.terms[j], self.zs[j], self.n)
        return Zt

    def _z_products(self, j: int, V: NDArray[Any]) -> NDArray[Any]:
        """Z_j' V for V (n,) or (n, c): (q_j,) or (q_j, c).

        The first product of a term with few columns is taken by bincounts: an
        LMM computes A once, and building the sparse Z_j' costs more than the
        product (tens of microseconds of scipy's checks for a small model, an
        O(n log n) sort for a large one). PIRLS recomputes A at every step, where
        one sparse product per term is cheaper than k c bincounts: Z_j' is built
        on the second product. Both sum each level's rows in row order from zero,
        so they give the same bits.
        """
        t = self.terms[j]
        ncols = 1 if V.ndim == 1 else int(V.shape[1])
        self._products[j] += 1
        if self._Zt[j] is not None or self._products[j] > 1 or t.k * ncols > _BINCOUNT_COLUMNS:
            return np.asarray(self._sparse_zt(j) @ V)
        z, refs, nl, k = self.zs[j], t.refs, t.nlevels, t.k
        vs = [V] if V.ndim == 1 else [V[:, c] for c in range(ncols)]
        out = np.empty((nl, k, ncols))
        for a in range(k):
            za = z[:, a]
            for c, vc in enumerate(vs):
                # z_a v_c in the sparse product's order (exact either way)
                out[:, a, c] = np.bincount(refs, za * vc, minlength=nl)
        return out.reshape((nl * k,) if V.ndim == 1 else (nl * k, ncols))

    def compute(
        self, weights: NDArray[Any] | None, y: NDArray[Any], counts: bool = False
    ) -> CrossProducts:
        """The cross-products for these weights and response.

        Bincounts for the blocks between random-effects terms, one sparse
        product Z_j' (W [X y]) per term, one dense product for [X y]' W [X y].
        ``counts``: also count the rows of positive weight and sum their log
        weights (prior weights; working weights need neither).
        """
        self.Xy[:, -1] = y
        w = weights
        terms = self.terms
        Xy = self.Xy
        WXy = Xy if w is None else Xy * w[:, None]
        diag: list[NDArray[Any]] = []
        zxy: list[NDArray[Any]] = []
        for j, t in enumerate(terms):
            k, nl, z = t.k, t.nlevels, self.zs[j]
            zw = z if w is None else z * w[:, None]
            if k == 1:
                diag.append(np.bincount(t.refs, zw[:, 0] * z[:, 0], minlength=nl))
            else:
                blk = np.empty((nl, k, k))
                for a in range(k):
                    for b in range(a + 1):
                        v = np.bincount(t.refs, zw[:, a] * z[:, b], minlength=nl)
                        blk[:, a, b] = v
                        if b < a:
                            blk[:, b, a] = v
                diag.append(blk)
            zxy.append(self._z_products(j, WXy).T)
        pairs: dict[tuple[int, int], Any] = {}
        for (i, j), index in self.index.items():
            ti, tj = terms[i], terms[j]
            zi, zj = self.zs[i], self.zs[j]
            zwi = zi if w is None else zi * w[:, None]
            pattern = self.patterns.get((i, j))
            if pattern is None:  # dense: index holds each row's pair key
                li, lj = ti.nlevels, tj.nlevels
                dense = np.empty((li, ti.k, lj, tj.k))
                for a in range(ti.k):
                    for b in range(tj.k):
                        v = np.bincount(index, zwi[:, a] * zj[:, b], minlength=li * lj)
                        dense[:, a, :, b] = v.reshape(li, lj)
                pairs[(i, j)] = dense.reshape(li * ti.k, lj * tj.k)
                continue
            nb = pattern.nblocks
            data = np.empty((nb, ti.k, tj.k))
            for a in range(ti.k):
                for b in range(tj.k):
                    data[:, a, b] = np.bincount(index, zwi[:, a] * zj[:, b], minlength=nb)
            pairs[(i, j)] = pattern.with_data(data)
        xy = Xy.T @ WXy
        nobs, logw_sum = self.n, 0.0
        present = None
        if counts:
            positive = np.ones(self.n, dtype=bool) if w is None else w > 0
            if w is not None:
                logw_sum = float(np.sum(np.log(w[positive])))
                nobs = int(positive.sum())
            present = [np.bincount(t.refs[positive], minlength=t.nlevels) > 0 for t in self.terms]
        shapes = [(t.nlevels, t.k) for t in terms]
        return CrossProducts(self.n, nobs, logw_sum, shapes, diag, pairs, zxy, xy, present)

    def response_row(self, wy: NDArray[Any]) -> tuple[list[NDArray[Any]], NDArray[Any]]:
        """(Z_j' W y per term, [X y]' W y) for ``wy`` = W y (y installed in
        ``Xy``'s last column by the caller): the last row of A, all that a new
        response changes."""
        return [self._z_products(j, wy) for j in range(len(self.terms))], self.Xy.T @ wy


def _zt_csr(t: ReTerm, z: NDArray[Any], n: int) -> sp.csr_matrix:
    """Z_t' (q x n) in CSR form, built directly: row (level l, column a) holds the
    observations of level l in order, with values z[:, a] (``z``: the term's
    internal columns). (Going through COO
    sorts all entries again, which cost more than the rest of the setup.)"""
    k, nl = t.k, t.nlevels
    order = np.argsort(t.refs, kind="stable")
    counts = np.bincount(t.refs, minlength=nl)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lev = t.refs[order]
    rank = np.arange(n) - start[lev]
    a = np.arange(k)
    pos = (start[lev] * k)[:, None] + a[None, :] * counts[lev][:, None] + rank[:, None]
    indices = np.empty(n * k, dtype=np.int64)
    data = np.empty(n * k)
    indices[pos] = order[:, None]
    data[pos] = z[order]
    row_start = (start[:, None] * k + a[None, :] * counts[:, None]).reshape(-1)
    indptr = np.concatenate((row_start, [n * k]))
    return sp.csr_matrix((data, indices, indptr), shape=(nl * k, n))
