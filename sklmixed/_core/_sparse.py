"""The sparse layout of L: crossed grouping factors whose levels meet rarely.

When two scalar terms are crossed, the blocked layout eliminates the levels of the
first term and the second term's diagonal block fills in: its factor is a dense
Cholesky of l rows, O(l^3) whatever the data. Where most levels meet few others (a
few ratings per user and per item) that block is mostly the fill of the order, not
of the matrix. Eliminating the light levels of both terms first keeps the fill
small, and only the heavy levels (users and items that meet many others) are left
as a dense tail.

The order here is by levels of elimination: each level is a set of nodes (levels
of the grouping factors, one row of M = Lambda' Z'WZ Lambda + I each) no two of
which are adjacent in what remains of M's graph, taken greedily by increasing
degree. The nodes of one level are eliminated together: their pivots are diagonal,
so the elimination is L D L' with one vectorized update per level (every pair of
entries of an eliminated column updates one entry of the rest: the pairs and their
targets are enumerated once, with the order). After the last level the rest is a
dense matrix, factored by LAPACK. The number of levels minimizes a cost model of
the pair updates and the dense tail's factorization (``COST_PAIR``,
``COST_ENTRY``), decided from the pattern alone, once.

Measured on the crossed synthetic (users x items, one core): at 50,000 rows (5362 x
3226) three levels eliminate all but 847 nodes with 170k pair updates; at 200,000
rows (6037 x 3698) four levels leave 2037 with 1.9 million. The blocked layout's
dense blocks have 3226 and 3698 rows. At a million rows the heavy levels meet
nearly all others and the tail would be larger than the dense block: that problem
keeps the blocked layout, as does InstEval (its instructors meet 65 students each).

The [X y] rows are eliminated with solves: with B = Lambda' Z'W [X y] the Schur
complement is A_xy - B' M^{-1} B, whose dense Cholesky is the [X y] block of the
blocked layout's L (the same matrix, with the same r and R_X). The objective, the
modes and the preconditioner of PIRLS's conjugate gradients come from here; whoever
needs the blocks of L (conditional variances, leverage, inference) gets them from
the blocked layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotrs as _potrs

from sklmixed._core._block_types import factor_xy, trsolve
from sklmixed._core._blocks import BlockSparse

# The filled-in dense block must have at least this many rows (below, LAPACK's
# dense Cholesky takes milliseconds).
SPARSE_MIN_LEVELS = 1000
# Mean number of distinct level pairs per level of the filled-in term above which
# the levels are not even tried: the heavy levels then meet nearly all others (a
# million rows of the synthetic, 100 per item; InstEval's instructors, 65) and the
# symbolic elimination alone would cost seconds.
SPARSE_MAX_PAIRS = 40.0
# The layout is used where its modelled cost is below this fraction of the dense
# blocks' l^3 / 3 flops.
SPARSE_COST_RATIO = 0.5
# The cost model, in units of one flop of LAPACK's dense Cholesky (about 40 Gflop/s
# on one core): one pair update of an elimination level (two gathers, a product and
# a segmented sum, about 10 ns) and one entry of the dense tail moved in (1.5 ns).
COST_PAIR = 400.0
COST_ENTRY = 60.0
# The pair updates' index arrays (16 bytes a pair) are bounded by this many pairs per
# entry of M's pattern, so that the layout's memory stays O(nnz(A)): the 200k-row
# synthetic uses 28 (3.2 million pairs for 116k entries), the 50k rows 7.
MAX_PAIRS_PER_ENTRY = 64


class _Level:
    """One level of the elimination and the index arrays of its update."""

    def __init__(
        self,
        nodes: NDArray[Any],
        indptr: NDArray[Any],
        rows: NDArray[Any],
        position: Any,
        q: int,
    ) -> None:
        self.nodes = nodes  # the eliminated nodes, pairwise not adjacent
        self.indptr = indptr  # their columns' entries: CSC over the nodes
        self.rows = rows  # the row (a later node) of each entry
        lens = np.diff(indptr)
        self.entry_owner = np.repeat(np.arange(nodes.shape[0]), lens)
        cols = nodes[self.entry_owner]
        self.colpos = position(_key(rows, cols, q))  # where each entry's value is
        self.diagpos = position(_key(nodes, nodes, q))
        # every pair of entries (a >= b) of one column updates the entry (a, b)
        pa, pb = _column_pairs(indptr)
        target = position(_key(rows[pa], rows[pb], q))
        srt = np.argsort(target, kind="stable")
        # (32-bit: millions of pairs at 200k rows of the crossed synthetic)
        self.pa, self.pb = pa[srt].astype(np.int32), pb[srt].astype(np.int32)
        target = target[srt]
        first = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
        self.starts, self.upos = first, target[first]


def _key(a: NDArray[Any], b: NDArray[Any], q: int) -> NDArray[Any]:
    """One integer per unordered pair of nodes."""
    return np.asarray(np.maximum(a, b) * q + np.minimum(a, b))


def _column_pairs(indptr: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Every pair (a, b), a >= b, of entries of one column of a CSC pattern, as
    positions in its indices array (columns grouped by their length)."""
    lens = np.diff(indptr)
    pa_parts, pb_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for m in np.unique(lens[lens > 0]):
        cols = np.flatnonzero(lens == m)
        ia, ib = np.tril_indices(int(m))
        base = indptr[cols][:, None]
        pa_parts.append((base + ia[None, :]).reshape(-1))
        pb_parts.append((base + ib[None, :]).reshape(-1))
    return np.concatenate(pa_parts), np.concatenate(pb_parts)


def _independent_set(G: Any) -> NDArray[Any]:
    """A maximal set of pairwise non-adjacent nodes of degree at most half the
    nodes, taken greedily by increasing degree (a boolean mask)."""
    r = G.shape[0]
    deg = np.diff(G.indptr)
    taken = np.zeros(r, dtype=bool)
    blocked = np.zeros(r, dtype=bool)
    indptr, indices = G.indptr, G.indices
    for v in np.argsort(deg, kind="stable"):
        if deg[v] > r // 2:
            break
        if not blocked[v]:
            taken[v] = True
            blocked[indices[indptr[v] : indptr[v + 1]]] = True
    return taken


class EliminationPlan:
    """The symbolic elimination of M's pattern: levels of independent nodes, then
    a dense tail; built once.

    Parameters
    ----------
    q : int
        Rows of M.
    rows, cols : ndarray of int
        M's pattern below the diagonal (one entry per pair of adjacent nodes).
    """

    def __init__(self, q: int, rows: NDArray[Any], cols: NDArray[Any]) -> None:
        self.q = q
        ones = np.ones(2 * rows.shape[0], dtype=np.int8)
        G = sp.csr_matrix((ones, (np.r_[rows, cols], np.r_[cols, rows])), shape=(q, q))
        remaining = np.arange(q)
        found: list[tuple[NDArray[Any], NDArray[Any], NDArray[Any]]] = []
        pairs = 0
        max_pairs = MAX_PAIRS_PER_ENTRY * (q + rows.shape[0])
        best, nlev = float(q) ** 3 / 3.0 + COST_ENTRY * float(q) ** 2, 0
        while remaining.shape[0] > 1:
            taken = _independent_set(G)
            out, R = np.flatnonzero(taken), np.flatnonzero(~taken)
            if out.shape[0] < max(1, remaining.shape[0] // 100) or R.shape[0] == 0:
                break
            C = G[R][:, out].tocsc()
            C.sort_indices()
            lens = np.diff(C.indptr)
            pairs += int(np.sum(lens * (lens + 1) // 2))
            if COST_PAIR * pairs >= best or pairs > max_pairs:
                # this level's updates alone cost more than the best so far, or
                # would hold too much memory
                break
            found.append((remaining[out], C.indptr.copy(), remaining[R[C.indices]]))
            G = (G[R][:, R] + C @ C.T).tocsr()  # the rest and its fill
            G.setdiag(0)
            G.eliminate_zeros()
            G.data[:] = 1
            remaining = remaining[R]
            rr = float(remaining.shape[0])
            cost = COST_PAIR * pairs + rr**3 / 3.0 + COST_ENTRY * rr**2
            if cost < best:
                best, nlev = cost, len(found)
        self.cost = best
        levels = found[:nlev]
        front = np.zeros(q, dtype=bool)
        for lv in levels:
            front[lv[0]] = True
        self.tail = np.flatnonzero(~front)
        t = int(self.tail.shape[0])
        tail_index = np.full(q, -1, dtype=np.int64)
        tail_index[self.tail] = np.arange(t)
        # Every entry of a front node's column (an edge of the graph when the node
        # is eliminated: each edge is in exactly one such column) and every diagonal
        # of the front is stored once, at its key's rank; the tail is a column-major
        # t x t array after them.
        nodes = np.flatnonzero(front)
        keys = [_key(nodes, nodes, q)]
        for lv_nodes, indptr, rws in levels:
            keys.append(_key(rws, np.repeat(lv_nodes, np.diff(indptr)), q))
        sparse_keys = np.sort(np.concatenate(keys))
        ns = int(sparse_keys.shape[0])
        self.ns, self.size = ns, ns + t * t

        def position(k: NDArray[Any]) -> NDArray[Any]:
            ta, tb = tail_index[k // q], tail_index[k % q]
            in_tail = (ta >= 0) & (tb >= 0)
            dense = ns + np.maximum(ta, tb) + np.minimum(ta, tb) * t  # lower triangle
            return np.where(in_tail, dense, np.searchsorted(sparse_keys, k))

        self.levels = [_Level(*lv, position=position, q=q) for lv in levels]
        every = np.arange(q)
        self.offdiag_pos = position(_key(rows, cols, q))
        self.diag_pos = position(_key(every, every, q))

    def factor(self, diag: NDArray[Any], offdiag: NDArray[Any]) -> LevelFactor | None:
        """L D L' of M from its diagonal and its entries below it (in the order of
        the ``rows``, ``cols`` given); None if M is not positive definite."""
        vals = np.zeros(self.size)
        vals[self.diag_pos] = diag
        vals[self.offdiag_pos] = offdiag
        logdet = 0.0
        done: list[tuple[NDArray[Any], Any]] = []
        for lv in self.levels:
            d = vals[lv.diagpos]
            if not np.all(d > 0.0):
                return None
            c = vals[lv.colpos]
            lcol = c / d[lv.entry_owner]  # the column of L (unit diagonal)
            vals[lv.upos] -= np.add.reduceat(lcol[lv.pa] * c[lv.pb], lv.starts)
            logdet += float(np.sum(np.log(d)))
            Lk = sp.csc_matrix((lcol, lv.rows, lv.indptr), shape=(self.q, lv.nodes.shape[0]))
            done.append((d, Lk))
        t = int(self.tail.shape[0])
        tail = vals[self.ns :].reshape((t, t), order="F")
        Lt, info = _potrf(tail, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            return None
        logdet += 2.0 * float(np.sum(np.log(Lt.diagonal())))
        return LevelFactor(self, done, Lt, logdet)


class LevelFactor:
    """One numeric factorization of an :class:`EliminationPlan`: solves with M."""

    def __init__(
        self,
        plan: EliminationPlan,
        levels: list[tuple[NDArray[Any], Any]],
        tail: NDArray[Any],
        logdet: float,
    ) -> None:
        self.plan = plan
        self.levels = levels
        self.tail = tail
        self.logdet = logdet

    def solve(self, rhs: NDArray[Any]) -> NDArray[Any]:
        """M^{-1} rhs (a vector or columns), by L, D and L' in turn."""
        y = np.array(rhs, dtype=float)
        plan = self.plan
        for lv, (_, Lk) in zip(plan.levels, self.levels):
            y -= Lk @ y[lv.nodes]
        if plan.tail.shape[0]:
            y[plan.tail], info = _potrs(self.tail, y[plan.tail], lower=1)
        for lv, (d, Lk) in zip(reversed(plan.levels), reversed(self.levels)):
            scale = d if y.ndim == 1 else d[:, None]
            y[lv.nodes] = y[lv.nodes] / scale - Lk.T @ y
        return y


class SparseFactor:
    """One factorization of the system in the sparse layout.

    Attributes
    ----------
    logdet_z : float
        log |Lambda' Z'WZ Lambda + I|.
    xy : ndarray, shape (p + 1, p + 1)
        The [X y] block of L (lower): R_X, c and r as the blocked layout's.
    offsets : ndarray of int
        Each term's first row in M.
    """

    def __init__(
        self,
        lf: LevelFactor,
        B: NDArray[Any],
        Y: NDArray[Any],
        xy: NDArray[Any],
        offsets: NDArray[Any],
    ) -> None:
        self._lf = lf
        self.logdet_z = lf.logdet
        self._B = B  # Lambda' Z'W [X y], (q, p + 1)
        self._Y = Y  # M^{-1} B
        self.xy = xy
        self.offsets = offsets

    def u(self, beta: NDArray[Any]) -> NDArray[Any]:
        """The spherical modes at ``beta``, M^{-1} (Lambda' Z'W (y - X beta)), as
        one vector over all levels."""
        p = self._B.shape[1] - 1
        return np.asarray(self._Y[:, p] - self._Y[:, :p] @ beta)

    def precondition(self, r: NDArray[Any], p: int) -> NDArray[Any]:
        """The system's inverse times r: [M B_x; B_x' X'WX]^{-1} r by eliminating
        the random effects (p = 0: M^{-1} r alone)."""
        q = r.shape[0] - p
        yz = self._lf.solve(r[:q])
        if not p:
            return yz
        R = self.xy[:p, :p]
        rx = r[q:] - self._B[:, :p].T @ yz
        xx = trsolve(R, trsolve(R, rx), trans=True)  # (R R')^{-1} rx, R lower
        return np.concatenate([yz - self._Y[:, :p] @ xx, xx])


class SparseLayout:
    """The structure of the sparse layout, fixed once from the pattern of A.

    Parameters
    ----------
    nlevels : list of int
        Levels of each (scalar) term, in the core's order.
    patterns : dict
        The level pairs of A's off-diagonal random-effects blocks (i > j).
    dense_flops : float
        The flops of the blocked layout's dense diagonal blocks, l^3 / 3 each: what
        the elimination plan must beat (:meth:`choose`).
    """

    def __init__(
        self,
        nlevels: list[int],
        patterns: dict[tuple[int, int], BlockSparse],
        dense_flops: float,
    ) -> None:
        self.m = len(nlevels)
        self.dense_flops = dense_flops
        self.off = np.concatenate(([0], np.cumsum(nlevels))).astype(np.int64)
        self.q = int(self.off[-1])
        self.keys = sorted(patterns)
        # M's entries below the diagonal, block by block (term i's levels after j's)
        self._rows = np.concatenate([self.off[i] + patterns[(i, j)].brow for i, j in self.keys])
        self._cols = np.concatenate([self.off[j] + patterns[(i, j)].bcol for i, j in self.keys])
        self.plan: EliminationPlan | None = None  # the elimination, once decided

    def __getstate__(self) -> dict[str, Any]:
        # the plan's index arrays (tens of MB for a large model) are made again,
        # identically, from the pattern when a factorization needs them
        state = self.__dict__.copy()
        state["plan"] = None
        return state

    def choose(self) -> bool:
        """Plan the elimination (once) and say whether its modelled cost is below
        SPARSE_COST_RATIO times the dense blocks' flops."""
        plan = EliminationPlan(self.q, self._rows, self._cols)
        if not plan.cost < SPARSE_COST_RATIO * self.dense_flops:
            return False
        self.plan = plan
        return True

    def factor(
        self, A: dict[tuple[int, int], Any], lams: list[NDArray[Any]]
    ) -> SparseFactor | None:
        """The factorization at A and lambdas; None if not positive definite."""
        assert self.plan is not None
        m = self.m
        s = [float(lam[0, 0]) for lam in lams]
        diag = np.concatenate([A[(j, j)] * s[j] ** 2 + 1.0 for j in range(m)])
        offdiag = np.concatenate([A[(i, j)].data.reshape(-1) * (s[i] * s[j]) for i, j in self.keys])
        lf = self.plan.factor(diag, offdiag)
        if lf is None:
            return None
        # B = Lambda' Z'W [X y], the terms' blocks of A's last block row, transposed
        B = np.concatenate([A[(m, j)].T * s[j] for j in range(m)], axis=0)
        Y = lf.solve(B)
        xy = factor_xy(np.asfortranarray(A[(m, m)] - B.T @ Y))
        return SparseFactor(lf, B, Y, xy, self.off)


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
    return SparseLayout(nlevels, patterns, sum(nlevels[j] ** 3 / 3.0 for j in filled))
