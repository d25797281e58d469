"""The block types of the factor L, one class each, and what each one can do.

L, the lower Cholesky factor of

    [ Lambda' Z'Z Lambda + I   Lambda' Z'X   Lambda' Z'y ]
    [ X'Z Lambda               X'X           X'y         ]
    [ y'Z Lambda               y'X           y'y         ]

is stored as a lower triangle of blocks, one block row and column per
random-effects term and one for [X y]. Which type each block has follows from the
grouping factors alone and is decided once (``LMMProblem._build_structure``):

- :class:`DiagBlock`: the diagonal block of a scalar term whose earlier columns
  leave it diagonal: a vector d of length l, the matrix diag(d);
- :class:`BlockDiagBlock`: the same for a vector-valued term: l blocks k x k;
- :class:`SparseBlock`: an off-diagonal block between two terms that does not
  fill in (nesting, or levels that meet rarely): a :class:`BlockSparse`;
- :class:`DenseBlock`: a 2-D array: the blocks of the [X y] rows, diagonal blocks
  that fill in (crossed terms) and every block below those;
- :class:`XYBlock`: the last diagonal block, [X y]' [X y] less the earlier
  columns, whose factor tolerates an exact fit (r = 0).

One evaluation (``LMMProblem.update``, the model being MixedModels.jl's
``updateL!``) is the blocked Cholesky factorization written with these
operations, each a method of the types it concerns:

- ``T.scaled_inflated(A_jj, lambda)``: Lambda' A_jj Lambda + I in T's storage;
- ``T.scaled(A_ij, lambda_i, lambda_j)``: Lambda_i' A_ij Lambda_j;
- :func:`rank_update` ``(L_jj, L_ji, plan)``: L_jj -= L_ji L_ji';
- ``L_jj.factor()``: the Cholesky factor of a diagonal block, in place;
- :func:`sub_product` ``(L_ij, L_ik, L_jk, plan)``: L_ij -= L_ik L_jk';
- ``L_jj.rdiv(L_ij)``: L_ij L_jj^{-T}.

Where two types meet (a rank update, a product) the function is chosen from a
table keyed by the operands' types. The ``plan`` of a pair is built once with the
structure: which stored blocks meet and where their products land
(:class:`PatternProduct`, :class:`GramUpdate`), so that each evaluation is a few
vectorized operations. After the factorization, the diagonal blocks solve
(``solve``, ``solve_t``), give their diagonal and an explicit inverse; the
off-diagonal blocks multiply (``mul``, ``tmul``); every block has ``to_dense``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from sklmixed._core._blocks import BlockSparse, GramUpdate, PatternProduct, blas_threads

# Dense diagonal blocks of at least this many rows are factored with one BLAS
# thread. OpenBLAS's threaded Cholesky synchronizes its threads at every panel, and
# when the other core is busy (another process: the normal case on a shared machine
# or a laptop) every synchronization waits for a time slice. Measured on 2 cores at a
# load average of 4-5: the 200k-row crossed fit (a 3698-row block) took 26-28 s with
# two threads and 10-12 s with one (InstEval, 1128 rows: 11.1 s and 1.95 s). An idle
# machine factors the 3698-row block in 0.24 s with two threads and 0.40 s with one.
# Fits run on one thread throughout (``blas_for_fit`` in ``_optim``); this keeps
# other callers of the factor (prediction variances, inference) off the threaded
# Cholesky where it hurts most.
ONE_THREAD_MIN = 2000


class LBlock:
    """A block of L. Subclasses say which operations their storage supports."""

    __slots__ = ()
    kind = ""  # the type's short name, for messages and tests

    @classmethod
    def scaled_inflated(cls, Ajj: NDArray[Any], lam: NDArray[Any] | None) -> LBlock:
        """Lambda' A_jj Lambda + I (a diagonal block) in this type's storage."""
        raise NotImplementedError(f"{cls.__name__} is not a diagonal block type")

    @classmethod
    def scaled(cls, Aij: Any, lam_i: NDArray[Any] | None, lam_j: NDArray[Any] | None) -> LBlock:
        """Lambda_i' A_ij Lambda_j (an off-diagonal block) in this type's storage."""
        raise NotImplementedError(f"{cls.__name__} is not an off-diagonal block type")

    def factor(self) -> None:
        """Replace a diagonal block by its lower Cholesky factor."""
        raise NotImplementedError

    def rdiv(self, Lij: LBlock) -> LBlock:
        """Lij self^{-T} for a factored diagonal block (Lij may be updated in place)."""
        raise NotImplementedError

    def diagonal(self) -> NDArray[Any]:
        """The diagonal of a diagonal block."""
        raise NotImplementedError

    def solve(self, rhs: NDArray[Any]) -> NDArray[Any]:
        """self^{-1} rhs for a factored diagonal block (rhs a vector or columns)."""
        raise NotImplementedError

    def solve_t(self, rhs: NDArray[Any]) -> NDArray[Any]:
        """self^{-T} rhs for a factored diagonal block (rhs a vector)."""
        raise NotImplementedError

    def inverse_dense(self) -> NDArray[Any]:
        """self^{-1} as a dense array, for a factored diagonal block."""
        raise NotImplementedError

    def mul(self, Y: NDArray[Any]) -> NDArray[Any]:
        """self @ Y for a dense Y (an off-diagonal block)."""
        raise NotImplementedError

    def tmul(self, v: NDArray[Any]) -> NDArray[Any]:
        """self' v (an off-diagonal block)."""
        raise NotImplementedError

    def to_dense(self) -> NDArray[Any]:
        """The block as a dense 2-D array."""
        raise NotImplementedError


# ------------------------------------------------------------- diagonal types


class DiagBlock(LBlock):
    """diag(d): the diagonal block of a scalar term (d: length l)."""

    __slots__ = ("d",)
    kind = "diag"

    def __init__(self, d: NDArray[Any]) -> None:
        self.d = d

    @classmethod
    def scaled_inflated(cls, Ajj: NDArray[Any], lam: NDArray[Any] | None) -> DiagBlock:
        assert lam is not None
        return cls(Ajj * lam[0, 0] ** 2 + 1.0)

    def factor(self) -> None:
        if np.any(self.d <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        self.d = np.asarray(np.sqrt(self.d))

    def rdiv(self, Lij: LBlock) -> LBlock:
        """Lij diag(d)^{-1}."""
        if isinstance(Lij, SparseBlock):
            Lij.S.data /= self.d[Lij.S.bcol][:, None, None]
            Lij.divisor = self.d
            return Lij
        assert isinstance(Lij, DenseBlock)
        return DenseBlock(Lij.a / self.d[None, :])

    def diagonal(self) -> NDArray[Any]:
        return self.d

    def solve(self, rhs: NDArray[Any]) -> NDArray[Any]:
        """L^{-1} rhs (a vector, or a matrix of columns)."""
        return np.asarray(rhs / (self.d if rhs.ndim == 1 else self.d[:, None]))

    def solve_t(self, rhs: NDArray[Any]) -> NDArray[Any]:
        """L^{-T} rhs."""
        return self.solve(rhs)

    def inverse_dense(self) -> NDArray[Any]:
        return np.diag(1.0 / self.d)

    def to_dense(self) -> NDArray[Any]:
        return np.diag(self.d)


class BlockDiagBlock(LBlock):
    """The block-diagonal matrix of l blocks k x k (``b``, shape (l, k, k)): the
    diagonal block of a vector-valued term. ``inv`` holds the inverses of the
    factor's blocks (for the right divisions below it)."""

    __slots__ = ("b", "inv")
    kind = "bdiag"

    def __init__(self, b: NDArray[Any]) -> None:
        self.b = b
        self.inv: NDArray[Any] | None = None

    @classmethod
    def scaled_inflated(cls, Ajj: NDArray[Any], lam: NDArray[Any] | None) -> BlockDiagBlock:
        assert lam is not None
        return cls(_scaled_blocks(Ajj, lam))

    def factor(self) -> None:
        self.b = np.linalg.cholesky(self.b)
        self.inv = np.linalg.inv(self.b)

    def rdiv(self, Lij: LBlock) -> LBlock:
        """Lij L^{-T}, block by block."""
        inv = self.inv
        assert inv is not None  # computed with the factor
        if isinstance(Lij, SparseBlock):
            S = Lij.S
            S.data = np.matmul(S.data, inv[S.bcol].transpose(0, 2, 1))
            return Lij
        assert isinstance(Lij, DenseBlock)
        rows = Lij.a.shape[0]
        nl, k, _ = inv.shape
        M3 = Lij.a.reshape(rows, nl, k)
        return DenseBlock(np.einsum("rlk,lmk->rlm", M3, inv).reshape(rows, nl * k))

    def diagonal(self) -> NDArray[Any]:
        k = self.b.shape[1]
        return self.b[:, np.arange(k), np.arange(k)].reshape(-1)

    def solve(self, rhs: NDArray[Any]) -> NDArray[Any]:
        nl, k, _ = self.b.shape
        if rhs.ndim == 1:
            return np.linalg.solve(self.b, rhs.reshape(nl, k, 1)).reshape(-1)
        return np.linalg.solve(self.b, rhs.reshape(nl, k, -1)).reshape(nl * k, -1)

    def solve_t(self, rhs: NDArray[Any]) -> NDArray[Any]:
        nl, k, _ = self.b.shape
        r = rhs.reshape(nl, k, 1)
        return np.linalg.solve(self.b.transpose(0, 2, 1), r).reshape(-1)

    def inverse_dense(self) -> NDArray[Any]:
        return bdiag_dense(np.linalg.inv(self.b))

    def to_dense(self) -> NDArray[Any]:
        return bdiag_dense(self.b)


# ------------------------------------------------------------ general types


class SparseBlock(LBlock):
    """A block between two random-effects terms that keeps A's sparsity pattern.

    ``source`` and ``divisor`` record, while they hold, that the block is
    ``c * A_ij diag(d)^{-1}`` with A_ij constant: a rank update from it then
    reuses operands made once from A_ij (see :class:`GramPlan`).
    """

    __slots__ = ("S", "source", "divisor")
    kind = "sparse"

    def __init__(self, S: BlockSparse, source: tuple[BlockSparse, float] | None = None) -> None:
        self.S = S
        self.source = source
        self.divisor: NDArray[Any] | None = None

    @classmethod
    def scaled(
        cls, Aij: Any, lam_i: NDArray[Any] | None, lam_j: NDArray[Any] | None
    ) -> SparseBlock:
        assert isinstance(Aij, BlockSparse) and lam_i is not None and lam_j is not None
        if Aij.ki == 1 and lam_j.shape[0] == 1:
            c = float(lam_i[0, 0] * lam_j[0, 0])
            return cls(Aij.with_data(Aij.data * c), (Aij, c))
        return cls(Aij.with_data(np.matmul(np.matmul(lam_i.T, Aij.data), lam_j)))

    def mul(self, Y: NDArray[Any]) -> NDArray[Any]:
        """self @ Y for a dense Y."""
        return np.asarray(self.S.to_scipy() @ Y)

    def tmul(self, v: NDArray[Any]) -> NDArray[Any]:
        """self' v."""
        return np.asarray(self.S.to_scipy().T @ v)

    def to_dense(self) -> NDArray[Any]:
        return np.asarray(self.S.to_dense())


class DenseBlock(LBlock):
    """A dense 2-D block ``a``. As a diagonal block, Fortran-ordered: the rank
    updates and LAPACK's Cholesky then work in place, without copies of a block
    that can hold 100 MB."""

    __slots__ = ("a",)
    kind = "dense"

    def __init__(self, a: NDArray[Any]) -> None:
        self.a = a

    @classmethod
    def scaled_inflated(cls, Ajj: NDArray[Any], lam: NDArray[Any] | None) -> DenseBlock:
        assert lam is not None
        # The transpose of a symmetric C-ordered array is the same matrix, Fortran-ordered.
        if Ajj.ndim == 1:  # scalar term
            return cls(np.diag(Ajj * lam[0, 0] ** 2 + 1.0).T)
        return cls(bdiag_dense(_scaled_blocks(Ajj, lam)).T)

    @classmethod
    def scaled(cls, Aij: Any, lam_i: NDArray[Any] | None, lam_j: NDArray[Any] | None) -> DenseBlock:
        """Lambda_i' A_ij Lambda_j (Lambda_i = I, ``lam_i`` None, for the [X y] rows)."""
        assert lam_j is not None
        if isinstance(Aij, BlockSparse):
            assert lam_i is not None
            if Aij.ki == 1 and lam_j.shape[0] == 1:
                data = Aij.data * (lam_i[0, 0] * lam_j[0, 0])
            else:
                data = np.matmul(np.matmul(lam_i.T, Aij.data), lam_j)
            return cls(Aij.with_data(data).to_dense())
        rows = Aij.shape[0]
        kj = lam_j.shape[0]
        if kj == 1:
            out = Aij * lam_j[0, 0]
        else:
            out = (Aij.reshape(rows, -1, kj) @ lam_j).reshape(rows, -1)
        if lam_i is not None:
            ki = lam_i.shape[0]
            if ki == 1:
                out = out * lam_i[0, 0]
            else:
                cols = out.shape[1]
                out = (lam_i.T @ out.reshape(-1, ki, cols)).reshape(rows, cols)
        return cls(out)

    def factor(self) -> None:
        if self.a.shape[0] >= ONE_THREAD_MIN:
            with blas_threads(1):
                self.a = chol(self.a, overwrite=True)
        else:
            self.a = chol(self.a, overwrite=True)

    def rdiv(self, Lij: LBlock) -> LBlock:
        """Lij L^{-T} by a triangular solve (every block below a dense one is dense)."""
        assert isinstance(Lij, DenseBlock)
        return DenseBlock(trsolve(self.a, Lij.a.T).T)

    def diagonal(self) -> NDArray[Any]:
        return np.diag(self.a)

    def solve(self, rhs: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(sla.solve_triangular(self.a, rhs, lower=True, check_finite=False))

    def solve_t(self, rhs: NDArray[Any]) -> NDArray[Any]:
        return trsolve(self.a, rhs, trans=True)

    def inverse_dense(self) -> NDArray[Any]:
        return np.asarray(sla.solve_triangular(self.a, np.eye(self.a.shape[0]), lower=True))

    def mul(self, Y: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(self.a @ Y)

    def tmul(self, v: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(self.a.T @ v)

    def to_dense(self) -> NDArray[Any]:
        return np.asarray(self.a)


class XYBlock(DenseBlock):
    """The last diagonal block, of the [X y] rows: no Lambda, no I, and a factor
    that allows r = 0 (y in the span of X, possible only without random effects)."""

    __slots__ = ()
    kind = "xy"

    @classmethod
    def scaled_inflated(cls, Ajj: NDArray[Any], lam: NDArray[Any] | None) -> XYBlock:
        return cls(Ajj.copy())

    def factor(self) -> None:
        self.a = factor_xy(self.a)


# ------------------------------------------------------- where two types meet


class GramPlan:
    """The rank update of a dense block from a sparse one: a :class:`GramUpdate`.

    With ``column_weighted`` (a scalar term below the first, scalar, term), the
    sparse block is ``c * A_j0 diag(L00)^{-1}`` with A_j0 constant, so that its
    Gram matrix is ``c^2 A_j0 diag(1 / L00^2) A_j0'``: the GramUpdate's operands
    are made once from A_j0 and cached with it.
    """

    __slots__ = ("gram", "column_weighted")

    def __init__(self, gram: GramUpdate, column_weighted: bool) -> None:
        self.gram = gram
        self.column_weighted = column_weighted


def _rank_dense_dense(Ljj: LBlock, Lji: LBlock, plan: Any) -> None:
    assert isinstance(Ljj, DenseBlock) and isinstance(Lji, DenseBlock)
    Ljj.a -= Lji.a @ Lji.a.T


def _rank_dense_sparse(Ljj: LBlock, Lji: LBlock, plan: Any) -> None:
    assert isinstance(Ljj, DenseBlock) and isinstance(Lji, SparseBlock)
    assert isinstance(plan, GramPlan)
    if plan.column_weighted:
        assert Lji.source is not None and Lji.divisor is not None
        A, c = Lji.source
        plan.gram.subtract_from_dense(
            Ljj.a, A.data.reshape(-1), 1.0 / Lji.divisor**2, c * c, cache_key=A
        )
    else:
        plan.gram.subtract_from_dense(Ljj.a, Lji.S.data.reshape(-1))


def _rank_diag_sparse(Ljj: LBlock, Lji: LBlock, plan: Any) -> None:
    # the product is block diagonal by construction (nesting)
    assert isinstance(Lji, SparseBlock) and isinstance(plan, PatternProduct)
    vals = plan.values(Lji.S, Lji.S)
    if isinstance(Ljj, BlockDiagBlock):
        Ljj.b[plan.urow] -= vals
    else:
        # below a vector-valued term the product's 1 x 1 blocks come as (nout, 1, 1)
        assert isinstance(Ljj, DiagBlock)
        Ljj.d[plan.urow] -= vals.reshape(plan.nout)


_RANK_UPDATE: dict[tuple[type, type], Callable[[LBlock, LBlock, Any], None]] = {
    (DenseBlock, DenseBlock): _rank_dense_dense,
    (XYBlock, DenseBlock): _rank_dense_dense,
    (DenseBlock, SparseBlock): _rank_dense_sparse,
    (DiagBlock, SparseBlock): _rank_diag_sparse,
    (BlockDiagBlock, SparseBlock): _rank_diag_sparse,
}


def rank_update(Ljj: LBlock, Lji: LBlock, plan: Any) -> None:
    """Ljj -= Lji Lji' in place (only the lower triangle of a dense Ljj is needed)."""
    _RANK_UPDATE[type(Ljj), type(Lji)](Ljj, Lji, plan)


class ProductPlan:
    """Lij -= S T' for sparse S and T: the pairs of their blocks that meet
    (``pp``) and, for a sparse Lij, where each product lands among its blocks."""

    __slots__ = ("pp", "idx")

    def __init__(self, pp: PatternProduct, idx: NDArray[Any] | None) -> None:
        self.pp = pp
        self.idx = idx


def _sub_dense_dense(Lij: LBlock, S: LBlock, T: LBlock, plan: Any) -> None:
    assert isinstance(Lij, DenseBlock) and isinstance(S, DenseBlock) and isinstance(T, DenseBlock)
    Lij.a -= S.a @ T.a.T


def _sub_dense_sparse(Lij: LBlock, S: LBlock, T: LBlock, plan: Any) -> None:
    assert isinstance(Lij, DenseBlock) and isinstance(S, DenseBlock)
    assert isinstance(T, SparseBlock)
    if T.S.nblocks:
        Lij.a -= (T.S.to_scipy() @ S.a.T).T


def _sub_sparse_dense(Lij: LBlock, S: LBlock, T: LBlock, plan: Any) -> None:
    assert isinstance(Lij, DenseBlock) and isinstance(S, SparseBlock)
    assert isinstance(T, DenseBlock)
    if S.S.nblocks:
        Lij.a -= S.S.to_scipy() @ T.a.T


def _sub_sparse_sparse(Lij: LBlock, S: LBlock, T: LBlock, plan: Any) -> None:
    assert isinstance(S, SparseBlock) and isinstance(T, SparseBlock)
    if plan is None:  # no block of S meets one of T
        return
    assert isinstance(plan, ProductPlan)
    if isinstance(Lij, DenseBlock):
        plan.pp.subtract_from_dense(Lij.a, S.S, T.S)
        return
    assert isinstance(Lij, SparseBlock) and plan.idx is not None
    Lij.S.data[plan.idx] -= plan.pp.values(S.S, T.S).reshape(-1, S.S.ki, T.S.ki)
    Lij.source = None  # no longer a multiple of A's block


_SUB_PRODUCT: dict[tuple[type, type], Callable[[LBlock, LBlock, LBlock, Any], None]] = {
    (DenseBlock, DenseBlock): _sub_dense_dense,
    (DenseBlock, SparseBlock): _sub_dense_sparse,
    (SparseBlock, DenseBlock): _sub_sparse_dense,
    (SparseBlock, SparseBlock): _sub_sparse_sparse,
}


def sub_product(Lij: LBlock, S: LBlock, T: LBlock, plan: Any) -> None:
    """Lij -= S T' in place."""
    _SUB_PRODUCT[type(S), type(T)](Lij, S, T, plan)


# ------------------------------------------------------------------ kernels


def _scaled_blocks(Ajj: NDArray[Any], lam: NDArray[Any]) -> NDArray[Any]:
    """lambda' A_b lambda + I for every block A_b of a vector term's (l, k, k) A_jj."""
    blk = np.matmul(np.matmul(lam.T, Ajj), lam)
    k = lam.shape[0]
    blk[:, np.arange(k), np.arange(k)] += 1.0
    return np.asarray(blk)


def bdiag_dense(blk: NDArray[Any]) -> NDArray[Any]:
    """The block-diagonal matrix of the blocks (l, k, k) as a dense (l k, l k) array."""
    nl, k, _ = blk.shape
    out = np.zeros((nl, k, nl, k))
    lv = np.arange(nl)
    out[lv, :, lv, :] = blk
    return out.reshape(nl * k, nl * k)


def dense_a_block(blk: Any) -> NDArray[Any]:
    """A block of A as a dense 2-D array: a scalar term's diagonal (a vector), a
    vector term's diagonal blocks (l, k, k), a BlockSparse or a dense array."""
    if isinstance(blk, BlockSparse):
        return np.asarray(blk.to_dense())
    if blk.ndim == 1:
        return np.diag(blk)
    if blk.ndim == 3:
        return bdiag_dense(blk)
    return np.asarray(blk)


def chol(M: NDArray[Any], overwrite: bool = False) -> NDArray[Any]:
    """Lower Cholesky factor by LAPACK directly (scipy's wrapper costs more than
    the factorization for the small blocks of most models). With ``overwrite``, a
    Fortran-ordered M is factored in place."""
    L, info = _potrf(M, lower=1, clean=1, overwrite_a=1 if overwrite else 0)
    if info != 0:
        raise np.linalg.LinAlgError("not positive definite")
    return np.asarray(L)


def trsolve(L: NDArray[Any], B: NDArray[Any], trans: bool = False) -> NDArray[Any]:
    """L^{-1} B (or L^{-T} B) for lower-triangular L, by LAPACK's trtrs."""
    x, info = _trtrs(L, B, lower=1, trans=1 if trans else 0)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return np.asarray(x)


def factor_xy(M: NDArray[Any]) -> NDArray[Any]:
    """Cholesky of the [X y] block; an exact fit (y in the span of X, possible
    only without random effects) gives r = 0 instead of a failure."""
    try:
        return chol(M)
    except np.linalg.LinAlgError:
        p = M.shape[0] - 1
        R = chol(M[:p, :p])  # X itself must be fine
        c = trsolve(R, M[:p, p])
        L = np.zeros_like(M)
        L[:p, :p] = R
        L[p, :p] = c
        r2 = M[p, p] - c @ c
        if r2 < -1e-8 * max(M[p, p], 1.0):
            raise
        L[p, p] = np.sqrt(max(r2, 0.0))
        return L
