"""The linear mixed model as a penalized least-squares problem.

Notation follows Bates et al. (2015), "Fitting linear mixed-effects models using
lme4", and MixedModels.jl: theta the relative covariance parameters, lambda the
lower-triangular k x k factor of one term, Lambda the block-diagonal matrix of
l copies of lambda, L the lower Cholesky factor of

    [ Lambda' Z'Z Lambda + I   Lambda' Z'X   Lambda' Z'y ]
    [ X'Z Lambda               X'X           X'y         ]
    [ y'Z Lambda               y'X           y'y         ]

stored, like A, as a lower triangle of blocks. The type of each block of L (see
``_block_types``) and every index array are fixed in ``__init__``; forming L at a
theta (:meth:`LMMProblem.set_theta`, the only work inside the optimizer loop) is
the blocked Cholesky factorization written with the types' operations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray
from scipy.linalg.lapack import dgeqrf as _geqrf

from sklmixed._core._block_types import (
    BlockDiagBlock,
    DenseBlock,
    DiagBlock,
    GramPlan,
    LBlock,
    ProductPlan,
    SparseBlock,
    XYBlock,
    rank_update,
    sub_product,
    trsolve,
)
from sklmixed._core._blocks import BlockSparse, GramUpdate, PatternProduct
from sklmixed._core._crossprod import DENSE_FRACTION, CrossProducts, RowProducts
from sklmixed._core._dense import DENSE_MAX, DenseEvaluator, logdet_z
from sklmixed._core._reterm import ReTerm
from sklmixed._core._scaling import Scaling, fit_scaling, recentred_response
from sklmixed._core._sparse import SparseFactor, SparseLayout, sparse_layout
from sklmixed.exceptions import RowsNotAvailableError

# An off-diagonal random-effects block at least this dense is stored dense: its
# products are then single BLAS calls, cheaper than sparse bookkeeping.
_DENSE_FRACTION = DENSE_FRACTION

# Relative tolerance on the diagonal of R in the QR decomposition of the
# column-scaled X that declares a column linearly dependent on earlier ones.
RANK_TOL = 1e-8


def order_terms(reterms: list[ReTerm]) -> list[ReTerm]:
    """Terms in MixedModels.jl order: most random effects (k * l) first, stable."""
    return sorted(reterms, key=lambda t: -t.nranef)


def estimable_columns(X: NDArray[Any], tol: float = RANK_TOL) -> NDArray[Any]:
    """Indices of the columns of X kept when X is rank deficient.

    Columns are scaled to unit length and taken in order: a column is dropped when
    the diagonal of R from the QR decomposition (the length of its part orthogonal
    to the earlier columns) is below ``tol``. Keeping the first of a dependent set
    keeps the intercept and matches lme4's choice of the column to drop.
    """
    p = X.shape[1]
    if p == 0:
        return np.arange(0)
    if p == 1:  # one column (an intercept-only model): estimable unless all zero
        return np.arange(1) if X.any() else np.arange(0)
    # column lengths, a zero column left as it is (a few columns: in Python)
    norms = np.array([math.sqrt(sq) or 1.0 for sq in np.einsum("ij,ij->j", X, X).tolist()])
    # R's diagonal from LAPACK's QR directly (numpy's wrapper costs several times
    # the factorization of a few columns); no rows: nothing to judge, all kept
    # (X / norms in Fortran order: LAPACK's, which f2py would otherwise copy to)
    diag = (
        [abs(d) for d in _geqrf(np.divide(X, norms, order="F"))[0].diagonal().tolist()]
        if X.shape[0]
        else []
    )
    bound = tol * max(1.0, max(diag, default=1.0))
    if all(d > bound for d in diag):
        return np.arange(p)
    # The unpivoted QR of a rank-deficient matrix is not unique after the first
    # dependent column, so add columns one at a time through a rank test.
    kept: list[int] = []
    for j in range(p):
        trial = X[:, kept + [j]] / norms[kept + [j]]
        s = np.linalg.svd(trial, compute_uv=False)
        if s[-1] > tol * max(1.0, s[0]):
            kept.append(j)
    return np.asarray(kept, dtype=np.int64)


class LMMProblem:
    """Data-dependent structure of a linear mixed model and its per-theta factor.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects model matrix (full; rank-deficient columns are dropped here).
    y : ndarray, shape (n,)
        Response.
    reterms : list[Any] of ReTerm
        Random-effects terms; reordered here by decreasing number of random effects.
    weights : ndarray, shape (n,), optional
        Prior (case) weights; the rows of Z, X and y are scaled by their square roots.
    reml : bool
        Whether :meth:`objective` is the REML criterion.
    offset : ndarray, shape (n,), optional
        A known part of the mean (coefficient 1): the model is fitted to
        y - offset, which is what ``self.y`` holds; ``self.offset`` keeps it (None
        without one) for whoever simulates or compares responses on the data's scale.
    scale_response : bool
        Whether the response may be centred and scaled internally (linear models;
        a GLMM's working response is on the linear predictor's scale).
    xnames : list of str, optional
        Names of X's columns, for the messages about conditioning.
    scaling : Scaling, optional
        Use this centring and scaling (of terms in the core's order) instead of
        deciding one from the data: a companion problem on another problem's
        internal columns.

    Notes
    -----
    The problem is solved on internal columns, centred and scaled where
    conditioning needs it (see ``_scaling``): ``X``, ``y``, ``zs``, theta, beta,
    u and L are all internal, and :attr:`scaling` maps results back to the
    user's scale (``user_theta``, ``user_ranef``, ``objective_offset``).
    ``terms`` are the user's ReTerm records in the core's order; their ``z`` is
    the user's, so the numerics read ``zs`` instead.
    """

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        reterms: list[ReTerm],
        weights: ArrayLike | None = None,
        reml: bool = False,
        offset: ArrayLike | None = None,
        *,
        scale_response: bool = True,
        xnames: list[str] | None = None,
        scaling: Scaling | None = None,
    ) -> None:
        X = np.asarray(X, dtype=float)
        self.offset = None if offset is None else np.asarray(offset, dtype=float).reshape(-1)
        y = np.asarray(y, dtype=float).reshape(-1)
        # the response as given (the user's scale, offset included), for whoever
        # compares the data of two fits; the numerics read the internal self.y
        self.y_data: NDArray[Any] | None = y
        if self.offset is not None:
            y = np.asarray(y - self.offset)
        self.n = int(y.shape[0])
        self.p_full = int(X.shape[1])
        self.reml = bool(reml)
        self.terms = order_terms(list(reterms))
        self.m = len(self.terms)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.scaling: Scaling = (
            fit_scaling(X, y if scale_response else None, self.terms, self.weights, xnames)
            if scaling is None
            else scaling
        )
        X = self.scaling.apply_x(X)
        self.zs: list[NDArray[Any]] = self.scaling.apply_terms(self.terms)
        # Estimability is judged on the weighted rows: a zero weight removes a row.
        self.keep = estimable_columns(
            X if weights is None else X * np.sqrt(np.asarray(weights, dtype=float))[:, None]
        )
        self.X = X[:, self.keep]
        self.p = int(self.keep.shape[0])
        self.y = self.scaling.apply_y(y)
        # ML with prior weights: the likelihood carries -sum(log w) (lme4, MixedModels.jl)
        # Zero weights remove an observation: it counts neither in n nor in the sum.
        self._logw_sum = 0.0
        self.nobs = self.n
        if self.weights is not None:
            positive = self.weights > 0
            self._logw_sum = float(np.sum(np.log(self.weights[positive])))
            self.nobs = int(positive.sum())
        self._rows: RowProducts | None = RowProducts(self.X, self.terms, self.zs)
        self._recentre: Any = None
        # levels met in rows of positive weight, per term (None: read off the rows)
        self.nlevels_present: list[int] | None = None
        self._init_structure(self._rows.patterns, dense=self._rows.dense_pairs)
        self.set_weights(self.weights)

    @classmethod
    def from_crossproducts(
        cls,
        cp: CrossProducts,
        terms: list[ReTerm],
        scaling: Scaling,
        keep: NDArray[Any],
        p_full: int,
        reml: bool = False,
        *,
        recentre: Any = None,
    ) -> LMMProblem:
        """A problem that knows its data only through their cross-products.

        Parameters
        ----------
        cp : CrossProducts
            A = [Z X y]' W [Z X y] on the internal columns of ``scaling``, the
            fixed-effects columns restricted to ``keep``, terms in the core's
            order (``order_terms(terms)``).
        terms : list of ReTerm
            The terms (their ``refs`` and ``z`` may hold no rows: only names,
            levels, columns and the pattern of lambda are read).
        scaling : Scaling
            The internal centring and scaling, decided from the data's moments.
        keep : ndarray of int
            Estimable columns of the internal X (of ``p_full``).
        p_full : int
            Number of columns of the full fixed-effects matrix.
        reml : bool
            Whether :meth:`objective` is the REML criterion.
        recentre : callable, optional
            ``recentre(scaling, yty, r2)`` -> (Scaling, CrossProducts) or None:
            what :meth:`recentre_response` does without the rows (a new pass
            over the data with a centred response).

        Notes
        -----
        Everything the likelihood, the estimates and their covariances need is
        there; what needs the rows (fitted values, residuals, leverage, a new
        response, new weights, dense Z) raises :class:`RowsNotAvailableError`.
        """
        self = cls.__new__(cls)
        ordered = order_terms(list(terms))
        if [t.name for t in ordered] != [t.name for t in terms]:
            raise ValueError("the terms must be in the core's order (order_terms)")
        if cp.shapes != [(t.nlevels, t.k) for t in ordered]:
            raise ValueError("the cross-products are not those of these terms")
        self.offset = None
        self.y_data = None
        self.n = int(cp.n)
        self.p_full = int(p_full)
        self.reml = bool(reml)
        self.terms = ordered
        self.m = len(ordered)
        self.weights = None
        self.scaling = scaling
        self.keep = np.asarray(keep, dtype=np.int64)
        self.p = int(self.keep.shape[0])
        self._logw_sum = float(cp.logw_sum)
        self.nobs = int(cp.nobs)
        self.sqrtw = None
        self._rows = None
        self._recentre = recentre
        self.nlevels_present = (
            None if cp.present is None else [int(mask.sum()) for mask in cp.present]
        )
        patterns = {key: b for key, b in cp.pairs.items() if isinstance(b, BlockSparse)}
        self._init_structure(patterns, dense=[key for key in cp.pairs if key not in patterns])
        self._install(cp)
        return self

    def _init_structure(
        self,
        patterns: dict[tuple[int, int], BlockSparse],
        dense: list[tuple[int, int]] | None = None,
    ) -> None:
        """theta's layout, the block patterns and the empty factor."""
        self.theta_slices = []
        start, q = 0, 0
        for t in self.terms:
            self.theta_slices.append(slice(start, start + t.ntheta))
            start += t.ntheta
            q += t.nranef
        self.ntheta = start
        self._diag_pos: NDArray[Any] | None = None
        self._q = q  # random effects: the rows of L before [X y]
        self._qtot = q + self.p + 1
        # Off-diagonal random-effects blocks: the level pairs that meet in the data,
        # and whether the block is dense enough to store as an array.
        self._patterns = patterns
        # The storage of A's off-diagonal blocks: an array, or BlockSparse.
        self.Atype: dict[tuple[int, int], type] = {key: np.ndarray for key in dense or []}
        for (i, j), pattern in patterns.items():
            full = self.terms[i].nlevels * self.terms[j].nlevels
            dense_enough = pattern.nblocks >= _DENSE_FRACTION * full
            self.Atype[(i, j)] = np.ndarray if dense_enough else BlockSparse
        self._build_structure()
        self._theta: NDArray[Any] | None = None  # see set_theta
        self._L: dict[tuple[int, int], LBlock] = {}
        self._L_at: tuple[NDArray[Any], Any] | None = None  # (theta, A) of self._L
        # The sparse layout (see _sparse) where it may pay; decided on first use.
        # (It needs two terms, each pair with a sparse block of A.)
        sparse_patterns = {k: v for k, v in patterns.items() if self.Atype[k] is BlockSparse}
        self._sparse: SparseLayout | None = (
            sparse_layout(
                [t.nlevels for t in self.terms],
                all(t.k == 1 for t in self.terms),
                [j for j in range(self.m) if self.Ltype[(j, j)] is DenseBlock],
                sparse_patterns,
            )
            if sparse_patterns
            else None
        )
        self._sf: tuple[NDArray[Any], Any, SparseFactor | None] | None = None  # (theta, A, f)
        self._kept: dict[tuple[int, int], LBlock] | SparseFactor | None = None
        self._dense: DenseEvaluator | None = None
        # the small layout's whole factor: (theta, A, L), see _dense_factor
        self._dL: tuple[NDArray[Any], Any, NDArray[Any] | None] | None = None
        self.last_r2 = np.nan  # r^2 of the last objective evaluation
        self.exact_fit = False  # set by the driver: y in the span of X, no random effects

    def release_source(self) -> None:
        """Drop the means of reading the data again (the recentring pass of a
        problem built from cross-products): a fitted model keeps no reference to
        the data, and pickles."""
        self._recentre = None

    def _require_rows(self, what: str) -> RowProducts:
        if self._rows is None:
            raise RowsNotAvailableError(
                f"{what} needs the rows of the data, and this model was fitted from "
                "their cross-products only (out of core); fit it on data in memory"
            )
        return self._rows

    # ------------------------------------------------------------------ setup

    def _build_structure(self) -> None:
        """Block patterns of L, decided once from those of A."""
        self._build_l_structure(self._patterns)

    def _build_l_structure(self, patterns: dict[tuple[int, int], BlockSparse]) -> None:
        """The type of every block of L, decided column by column as the
        factorization will fill them in, and the plan of every product between
        two sparse blocks (``patterns``: the level pairs of A's off-diagonal blocks)."""
        terms, m = self.terms, self.m
        Ltype: dict[tuple[int, int], type[LBlock]] = {}
        # Plans of the rank updates L_jj -= L_ji L_ji' (key (j, i)) and of the
        # products L_ij -= L_ik L_jk' (key (i, j, k)) between sparse blocks.
        self._rank_plans: dict[tuple[int, int], Any] = {}
        self._sub_plans: dict[tuple[int, int, int], ProductPlan] = {}
        for j in range(m):
            diag: type[LBlock] = DiagBlock if terms[j].k == 1 else BlockDiagBlock
            for i in range(j):
                # S S' is block diagonal iff no column of S has two blocks (nesting).
                if Ltype[(j, i)] is DenseBlock or _column_shared(patterns[(j, i)]):
                    diag = DenseBlock
            for i in range(j):
                if Ltype[(j, i)] is not SparseBlock:
                    continue
                S = patterns[(j, i)]
                if diag is DenseBlock:
                    # GramUpdate's memory is O(nnz) (the pairs of a PatternProduct
                    # grow with the square of the levels' activity).
                    gram = GramUpdate(*_scalar_entries(S), S.shape)
                    weighted = i == 0 and terms[0].k == 1 and terms[j].k == 1
                    self._rank_plans[(j, i)] = GramPlan(gram, weighted)
                else:
                    self._rank_plans[(j, i)] = PatternProduct(S, S, symmetric=True)
            Ltype[(j, j)] = diag
            for i in range(j + 1, m):
                below: type[LBlock] = (
                    SparseBlock if self.Atype[(i, j)] is BlockSparse else DenseBlock
                )
                if diag is DenseBlock:
                    below = DenseBlock
                for kk in range(j):
                    if Ltype[(i, kk)] is SparseBlock and Ltype[(j, kk)] is SparseBlock:
                        pp = PatternProduct(patterns[(i, kk)], patterns[(j, kk)])
                        if pp.nout == 0:
                            continue
                        idx = pp.within(patterns[(i, j)]) if below is SparseBlock else None
                        if below is SparseBlock and idx is None:
                            below = DenseBlock
                        self._sub_plans[(i, j, kk)] = ProductPlan(pp, idx)
                    else:
                        below = DenseBlock
                Ltype[(i, j)] = below
        for j in range(m):
            Ltype[(m, j)] = DenseBlock
        Ltype[(m, m)] = XYBlock
        self.Ltype = Ltype

    @property
    def Lkind(self) -> dict[tuple[int, int], str]:
        """The short names of the blocks' types of L's random-effects part
        (``"diag"``, ``"bdiag"``, ``"sparse"``, ``"dense"``), for messages and tests."""
        return {key: T.kind for key, T in self.Ltype.items() if key[0] < self.m}

    @property
    def _gram(self) -> dict[tuple[int, int], GramUpdate]:
        """The rank updates that go through a :class:`GramUpdate`."""
        return {k: v.gram for k, v in self._rank_plans.items() if isinstance(v, GramPlan)}

    def set_weights(self, weights: ArrayLike | None, y: ArrayLike | None = None) -> None:
        """(Re)compute A for prior or working weights, and optionally a new
        response (PIRLS installs working weights and working response each step).

        A = [Z X y]' W [Z X y] from the unweighted columns (``_crossprod``).
        """
        rows = self._require_rows("new weights")
        if y is not None:
            self.y = np.asarray(y, dtype=float)
        w = None if weights is None else np.asarray(weights, dtype=float)
        self.sqrtw = None if w is None else np.sqrt(w)
        self._install(rows.compute(w, self.y))

    def _install(self, cp: CrossProducts) -> None:
        """A's blocks from the cross-products, in the storage decided in ``Atype``."""
        m = self.m
        A: dict[tuple[int, int], Any] = {}
        for j in range(m):
            A[(j, j)] = cp.diag[j]
            A[(m, j)] = cp.zxy[j]
        for (i, j), blocks in cp.pairs.items():
            dense = self.Atype[(i, j)] is np.ndarray and isinstance(blocks, BlockSparse)
            A[(i, j)] = blocks.to_dense() if dense else blocks
        A[(m, m)] = cp.xy
        self.A = A
        self._dense = None  # rebuilt from the new A on the next objective()

    def set_response(self, y: ArrayLike) -> None:
        """Install a new response, keeping every block that does not depend on it.

        Only the last row of A changes: Z_j' W y for each term, and X' W y, y' W y
        (the weights are those installed last). This is the whole per-replicate
        setup of a parametric bootstrap; the block patterns, the Z'Z and X'X
        blocks and the small-problem dense evaluator are reused in place. ``y`` is
        on the data's scale: the problem's offset (if any) is subtracted here, and
        the fit's internal centring and scaling applied (so that results map back
        to the user's scale as the fit's do).
        """
        rows = self._require_rows("a new response")
        values: NDArray[Any] = np.asarray(y, dtype=float).reshape(-1)
        if values.shape[0] != self.n:
            raise ValueError(f"the new response has {values.shape[0]} values for {self.n} rows")
        if self.offset is not None:
            values = values - self.offset
        values = np.asarray(self.scaling.apply_y(values), dtype=float)
        self.y = values
        rows.Xy[:, -1] = values
        # A changes in place below: the factors are stale
        self._L_at = self._sf = self._dL = None
        wy = values if self.sqrtw is None else values * self.sqrtw**2
        m = self.m
        zy, last = rows.response_row(wy)  # last: [X y]' W y, the last row of A_mm
        for j in range(m):
            self.A[(m, j)][-1, :] = zy[j]
        self.A[(m, m)][-1, :] = last
        self.A[(m, m)][:, -1] = last
        if self._dense is not None:  # the same row and column of its dense copy of A
            Ad, q = self._dense.A, self._dense.q
            row = np.concatenate([self.A[(m, j)][-1, :] for j in range(m)] + [last])
            Ad[q + self.p, :] = row
            Ad[:, q + self.p] = row

    # ------------------------------------------------------ theta bookkeeping

    def initial_theta(self) -> NDArray[Any]:
        """lambda = I for every term."""
        theta = np.zeros(self.ntheta)
        theta[self.diag_positions()] = 1.0
        return theta

    def diag_positions(self) -> NDArray[Any]:
        """Indices in theta of the diagonal elements of the lambdas (a copy)."""
        if self._diag_pos is None:
            # (a few pairs per term: plain Python costs less than numpy's calls)
            positions = [
                s.start + i
                for t, s in zip(self.terms, self.theta_slices)
                for i, (row, col) in enumerate(t.inds.tolist())
                if row == col
            ]
            self._diag_pos = np.array(positions, dtype=np.int64)
        return self._diag_pos.copy()

    def lower_bounds(self) -> NDArray[Any]:
        """0 for diagonal elements of lambda, -inf otherwise."""
        lower = np.full(self.ntheta, -np.inf)
        lower[self.diag_positions()] = 0.0
        return lower

    def boundary_trap(self, theta: NDArray[Any]) -> bool:
        """Whether some lambda has a zero diagonal with nonzero entries below it."""
        for t, s in zip(self.terms, self.theta_slices):
            if t.k == 1:  # a scalar term has nothing below its diagonal
                continue
            lam = t.lambda_from_theta(np.asarray(theta)[s])
            for c in range(t.k):
                if lam[c, c] == 0.0 and np.any(lam[c + 1 :, c] != 0.0):
                    return True
        return False

    def flip_theta(self, theta: NDArray[Any]) -> NDArray[Any]:
        """theta with every lambda column's diagonal made non-negative."""
        out = np.array(theta, dtype=float)
        for t, s in zip(self.terms, self.theta_slices):
            lam = t.lambda_from_theta(out[s])
            neg = np.diag(lam) < 0
            if neg.any():
                lam[:, neg] *= -1.0
                out[s] = lam[t.inds[:, 0], t.inds[:, 1]]
        return out

    # ------------------------------------------------------------- per theta

    def lambdas(self, theta: NDArray[Any]) -> list[NDArray[Any]]:
        return [t.lambda_from_theta(theta[s]) for t, s in zip(self.terms, self.theta_slices)]

    # The problem owns theta: set_theta installs it (and is the only way to a
    # factor), objective() installs it too, and every reader of L goes through
    # factor(), which forms L at the installed theta when it is not there yet
    # (the small-problem objective does not form it). So theta and L cannot
    # disagree, as MixedModels.jl's objective!(m, theta) = objective(updateL!(setθ!(m, theta))).

    @property
    def theta(self) -> NDArray[Any] | None:
        """The (internal) theta installed last, None before the first."""
        return self._theta

    def set_theta(self, theta: NDArray[Any]) -> bool:
        """Install ``theta`` and form the factor L there.

        Returns False if a diagonal block is not positive definite (then
        :meth:`factor` raises until another theta is installed). A factor already
        at ``theta`` with the same A is kept (an optimizer's final point is
        evaluated again by the driver; each is a factorization).
        """
        self._theta = np.array(theta, dtype=float)
        if self._sparse_layout() is not None:
            return self._sparse_factor() is not None
        if self._dense_factor() is not None:
            return True
        try:
            self.factor()
        except np.linalg.LinAlgError:
            return False
        return True

    # the name of set_theta in earlier versions (the core's tests use both)
    update = set_theta

    def factor(self) -> dict[tuple[int, int], LBlock]:
        """The blocks of L at the installed theta, formed here if needed.

        Raises
        ------
        RuntimeError
            If no theta has been installed.
        numpy.linalg.LinAlgError
            If L is not positive definite at it.
        """
        theta = self._theta
        if theta is None:
            raise RuntimeError("no theta installed: call set_theta(theta) first")
        last = self._L_at
        if (
            last is not None
            and last[1] is self.A
            and (last[0] is theta or np.array_equal(last[0], theta))
        ):
            if not self._L:
                raise np.linalg.LinAlgError("the factor is not positive definite at theta")
            return self._L
        # release the previous factor (and the kept one, which may be the same
        # blocks) before building the next: at a million rows each holds a
        # 3706 x 3706 dense block
        self._L, self._kept = {}, None
        self._L_at = (theta, self.A)
        self._L = self._updated_L(theta)
        self._kept = self._L
        return self._L

    @property
    def L(self) -> dict[tuple[int, int], LBlock]:
        """The blocks of L at the installed theta (:meth:`factor`)."""
        return self.factor()

    def last_factor(self) -> dict[tuple[int, int], LBlock] | SparseFactor | None:
        """The last factor formed (the blocks of L, or the sparse layout's), whatever
        theta and A are installed now, or None: a preconditioner for nearby systems
        (PIRLS's conjugate gradients, ``_pcg``), never a factor of the current one."""
        return self._kept or None

    # ------------------------------------------------------ the sparse layout

    @property
    def layout(self) -> str:
        """How the optimizer's factorizations are laid out: ``"dense"`` (one dense
        block, small systems: ``_dense``), ``"sparse"`` (the random effects as one
        sparse matrix in a fill-reducing order: ``_sparse``) or ``"blocked"``."""
        if self._qtot <= DENSE_MAX:
            return "dense"
        return "sparse" if self._sparse_layout() is not None else "blocked"

    def _sparse_layout(self) -> SparseLayout | None:
        """The sparse layout if this problem's factorizations use it (decided on
        the first call, from the pattern of A alone; see ``_sparse``)."""
        layout = self._sparse
        if layout is not None and layout.plan is None and not layout.choose():
            self._sparse = layout = None
        return layout

    def _sparse_factor(self) -> SparseFactor | None:
        """The sparse layout's factorization at the installed theta and A (formed
        here if needed); None if the system is not positive definite there or the
        problem does not use the layout."""
        layout, theta = self._sparse_layout(), self._theta
        if layout is None or theta is None:
            return None
        last = self._sf
        if last is not None and last[1] is self.A and np.array_equal(last[0], theta):
            return last[2]
        self._sf = None  # release the previous factor before forming the next
        if isinstance(self._kept, SparseFactor):
            self._kept = None
        f = layout.factor(self.A, self.lambdas(theta))
        self._sf = (theta, self.A, f)
        if f is not None:
            self._kept = f
        return f

    def _dense_evaluator(self) -> DenseEvaluator | None:
        """The small-problem layout (one dense block, ``_dense``) if the system is
        small enough; built from A on first use."""
        if self._dense is None and self._qtot <= DENSE_MAX:
            self._dense = DenseEvaluator(self)
        return self._dense

    def _dense_factor(self) -> NDArray[Any] | None:
        """The small layout's whole factor L (Q x Q) at the installed theta and A,
        formed here if needed: what the fit's results read (the [X y] block, the
        log-determinant, u) at a tenth of the blocked factor's cost. None for a
        larger problem, before the optimizer has evaluated the objective on this A,
        or where LAPACK stops (the blocked factor then decides: an exact fit's
        r = 0 is not a failure there). The blocks of L, for whoever
        needs them, are the blocked layout's (:meth:`factor`).

        REML fits keep the blocked factor: their criterion is printed to all 17
        digits (as MixedModels.jl prints it), and the two layouts round its last
        three differently (dyestuff: 319.6542768422588 blocked, ...5193 dense), so
        the summaries stay as they were."""
        theta, dense = self._theta, self._dense
        # Only where the optimizer has built the dense system of this A: PIRLS
        # changes A at every step, and rebuilding the system each time made a
        # GLMM's fit 8% slower (contra) than the blocked factor of its one term.
        if theta is None or self.reml or dense is None:
            return None
        last = self._dL
        if last is None or last[0] is not theta or last[1] is not self.A:
            last = self._dL = (theta, self.A, dense.factor(theta))
        return last[2]

    def __getstate__(self) -> dict[str, Any]:
        # The sparse layout's factor (and its plan, see SparseLayout) are formed
        # again on demand: a pickled model does not carry them.
        state = self.__dict__.copy()
        state["_sf"] = state["_dL"] = None
        if isinstance(state.get("_kept"), SparseFactor):
            state["_kept"] = None
        return state

    def _updated_L(self, theta: NDArray[Any]) -> dict[tuple[int, int], LBlock]:
        """The blocked Cholesky factorization of the system at ``theta``."""
        m, A, types = self.m, self.A, self.Ltype
        lams: list[NDArray[Any] | None] = [*self.lambdas(theta), None]  # [X y]: Lambda = I
        L: dict[tuple[int, int], LBlock] = {}
        for j in range(m + 1):
            Ljj = types[(j, j)].scaled_inflated(A[(j, j)], lams[j])  # Lambda' A_jj Lambda + I
            for i in range(j):
                rank_update(Ljj, L[(j, i)], self._rank_plans.get((j, i)))  # - L_ji L_ji'
            Ljj.factor()
            L[(j, j)] = Ljj
            for i in range(j + 1, m + 1):
                Lij = types[(i, j)].scaled(A[(i, j)], lams[i], lams[j])  # Lambda_i' A_ij Lambda_j
                for kk in range(j):
                    sub_product(Lij, L[(i, kk)], L[(j, kk)], self._sub_plans.get((i, j, kk)))
                L[(i, j)] = Ljj.rdiv(Lij)  # L_ij L_jj^{-T}
        return L

    def objective(self, theta: NDArray[Any]) -> float:
        """-2 log-likelihood (ML) or the REML criterion at ``theta``; inf if not PD."""
        dense = self._dense_evaluator()
        if dense is not None:
            # theta is installed without forming L (factor() forms it on demand)
            self._theta = np.array(theta, dtype=float)
            parts = dense.logdets(self._theta, with_x=self.reml)
            if parts is None:
                self.last_r2 = np.nan
                return np.inf
            self.last_r2 = parts[2]
            return self._assemble_objective(*parts)
        if not self.set_theta(theta):
            self.last_r2 = np.nan
            return np.inf
        self.last_r2 = self.pwrss()
        return self.objective_from_factor()

    def recentre_response(self, r2: float) -> bool:
        """Centre the internal response if r^2 (at the start) is tiny beside y'y.

        The decision made from the data alone (``_scaling``) centres only a
        response whose mean is large beside its spread; one that the model
        explains almost exactly loses r^2's digits with a smaller mean too.
        Returns whether the response changed (A is then rebuilt). A problem
        built from cross-products asks its ``recentre`` hook (another pass over
        the data), or keeps its response where it has none.
        """
        if self._rows is None:
            if self._recentre is None:
                return False
            out = self._recentre(self.scaling, self.yty(), r2)
            if out is None:
                return False
            self.scaling, cp = out
            self._L_at = None
            self._install(cp)
            return True
        new = recentred_response(self.scaling, self.y, self.weights, self.yty(), r2)
        if new is None:
            return False
        self.scaling, y = new
        self.set_weights(self.weights, y)
        return True

    @property
    def has_rows(self) -> bool:
        """Whether the problem holds its data's rows (False when built from
        cross-products only, out of core)."""
        return self._rows is not None

    def xy_factor(self, theta: NDArray[Any]) -> tuple[float, NDArray[Any]] | None:
        """log|L_Z|^2 and the [X y] block of L (p + 1 square, lower) at ``theta``.

        Everything the likelihood needs as a function of beta and sigma as well
        as theta (profiles, derivatives): with R = the block's leading p x p part,
        c its last row and r its corner, beta-hat solves R' beta = c, the unscaled
        covariance of beta is (R R')^{-1} and r^2 is the penalized residual sum of
        squares. None if the factor is not positive definite. Small problems use
        the dense evaluator; otherwise the blocked factor is updated (and kept).
        """
        theta = np.asarray(theta, dtype=float)
        dense = self._dense_evaluator()
        if dense is not None:
            self._theta = theta.copy()
            return dense.xy_factor(theta)
        if not self.set_theta(theta):
            return None
        return self.logdet_re(), np.array(self._xy_block())

    def logdet_re(self) -> float:
        """log |Lambda' Z'Z Lambda + I| = 2 sum log diag(L_ZZ)."""
        sf = self._sparse_factor()
        if sf is not None:
            return sf.logdet_z
        dL = self._dense_factor()
        if dL is not None:
            return logdet_z(dL, self._q)
        L = self.factor()
        total = 0.0
        for j in range(self.m):
            total += 2.0 * np.sum(np.log(L[(j, j)].diagonal()))
        return float(total)

    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares, r^2."""
        return float(self._xy_block()[-1, -1] ** 2)

    def _xy_block(self) -> NDArray[Any]:
        """The [X y] block of L at the installed theta (p + 1 square, lower)."""
        sf = self._sparse_factor()
        if sf is not None:
            return sf.xy
        dL = self._dense_factor()
        if dL is not None:
            return dL[self._q :, self._q :]
        blk = self.factor()[(self.m, self.m)]
        assert isinstance(blk, XYBlock)
        return blk.a

    def objective_from_factor(self) -> float:
        """The objective at the installed theta from the factor L."""
        Lxx = self._xy_block()
        logdet_x = 0.0  # read by REML only
        if self.reml:
            logdet_x = 2.0 * float(np.sum(np.log(np.abs(np.diag(Lxx)[: self.p]))))
        return self._assemble_objective(self.logdet_re(), logdet_x, float(Lxx[-1, -1] ** 2))

    _objective_from_L = objective_from_factor  # the name of earlier versions

    def _assemble_objective(self, logdet_z: float, logdet_x: float, r2: float) -> float:
        """objective = log|L_Z|^2 [+ log|L_X|^2] + d (1 + log(2 pi r^2 / d))."""
        val = logdet_z
        d = self.nobs
        if self.reml:
            d = self.nobs - self.p
            val += logdet_x
        if d <= 0 or not r2 >= 0:
            return np.inf
        if r2 == 0:  # y in the span of X with no random effects: a perfect fit
            return -np.inf
        val += d * (1.0 + math.log(2.0 * math.pi * r2 / d)) - self._logw_sum
        return float(val)

    # ------------------------------------------------------ after convergence

    def beta(self) -> NDArray[Any]:
        """Fixed effects for the estimable columns (length p)."""
        Lxx = self._xy_block()
        if self.p == 1:  # an intercept-only model: the triangular solve's one division
            return np.array([Lxx[1, 0] / Lxx[0, 0]])
        R = Lxx[: self.p, : self.p]
        c = Lxx[self.p, : self.p]
        return trsolve(R, c, trans=True) if self.p else np.zeros(0)

    def u(self, beta: NDArray[Any] | None = None) -> list[NDArray[Any]]:
        """Spherical random effects per term, each (l, k): back-substitution."""
        if beta is None:
            beta = self.beta()
        sf = self._sparse_factor()
        if sf is not None:
            u, off = sf.u(beta), sf.offsets
            return [u[off[j] : off[j + 1]].reshape(-1, 1) for j in range(self.m)]
        dL = self._dense_factor()
        if dL is not None:  # L_ZZ' u = l_yZ - L_XZ' beta, the dense layout's rows
            q, p = self._q, self.p
            rhs = dL[q + p, :q] - dL[q : q + p, :q].T @ beta
            u = trsolve(dL[:q, :q], rhs, trans=True) if q else np.zeros(0)
            out, start = [], 0
            for t in self.terms:
                out.append(u[start : start + t.nranef].reshape(t.nlevels, t.k))
                start += t.nranef
            return out
        m, L, p = self.m, self.factor(), self.p
        us: list[NDArray[Any] | None] = [None] * m
        for j in reversed(range(m)):
            Lmj = L[(m, j)].to_dense()
            rhs = Lmj[p, :] - Lmj[:p, :].T @ beta
            for i in range(j + 1, m):
                ui = us[i]
                assert ui is not None  # filled in reverse order
                rhs = rhs - L[(i, j)].tmul(ui.reshape(-1))
            us[j] = L[(j, j)].solve_t(rhs).reshape(self.terms[j].nlevels, self.terms[j].k)
        return us  # type: ignore[return-value]

    def b(self, us: list[NDArray[Any]], theta: NDArray[Any]) -> list[NDArray[Any]]:
        """Random effects on the original scale, each (l, k): b = Lambda u."""
        return [u @ lam.T for u, lam in zip(us, self.lambdas(theta))]

    def sigma2(self) -> float:
        """Residual variance of the internal problem (``y_scale**2`` times smaller
        than the user's)."""
        return self.pwrss() / self.dof_residual()

    def dof_residual(self) -> int:
        """d in the objective: n for ML, n - p for REML."""
        return self.nobs - self.p if self.reml else self.nobs

    def yty(self) -> float:
        """The (weighted) internal response's sum of squares, y'Wy: the scale
        against which r^2 is computed, and so the reference for an exact fit."""
        return float(self.A[(self.m, self.m)][-1, -1])

    # -------------------------------------------------- the user's scale

    def user_theta(self, theta: NDArray[Any]) -> NDArray[Any]:
        """theta of the user's columns from the internal theta."""
        return self._map_theta(theta, self.scaling.lambda_to_user)

    def internal_theta(self, theta: NDArray[Any]) -> NDArray[Any]:
        """The internal theta of a theta of the user's columns.

        Through a Cholesky factor where a column is centred, and then only as
        accurate as the user's theta is conditioned: a column shifted far from
        its mean makes the user's lambda nearly singular. Results therefore keep
        the internal theta itself (``FitResult.core_theta``) to restore the core.
        """
        return self._map_theta(theta, self.scaling.lambda_to_internal)

    def _map_theta(self, theta: NDArray[Any], fun: Any) -> NDArray[Any]:
        theta = np.asarray(theta, dtype=float)
        if all(ts.identity for ts in self.scaling.terms):
            return theta
        parts = []
        for j, (t, s) in enumerate(zip(self.terms, self.theta_slices)):
            lam = fun(j, t.lambda_from_theta(theta[s]))
            parts.append(lam[t.inds[:, 0], t.inds[:, 1]])
        return np.concatenate(parts) if parts else np.zeros(0)

    def user_beta(self, beta: NDArray[Any]) -> NDArray[Any]:
        """Fixed effects (estimable columns) of the user's columns."""
        return self.scaling.beta_to_user(beta, self.keep)

    def internal_beta(self, beta: NDArray[Any]) -> NDArray[Any]:
        """The internal fixed effects of user-scale ones (estimable columns)."""
        return self.scaling.beta_to_internal(beta, self.keep)

    def user_vcov(self, V: NDArray[Any]) -> NDArray[Any]:
        """A covariance of the internal beta mapped to the user's columns."""
        return self.scaling.vcov_to_user(V, self.keep)

    def user_ranef(
        self, us: list[NDArray[Any]], theta: NDArray[Any]
    ) -> tuple[list[NDArray[Any]], list[NDArray[Any]]]:
        """(b, u) per term on the user's scale from the internal u and theta."""
        lams = self.lambdas(theta)  # once, for b = Lambda u and for the user's scale
        bs = [u @ lam.T for u, lam in zip(us, lams)]
        if self.scaling.identity:
            return bs, us
        ulams = [self.scaling.lambda_to_user(j, lam) for j, lam in enumerate(lams)]
        b_user = [self.scaling.b_to_user(j, b) for j, b in enumerate(bs)]
        u_user = [
            self.scaling.u_to_user(j, u, lam, ulam)
            for j, (u, lam, ulam) in enumerate(zip(us, lams, ulams))
        ]
        return b_user, u_user

    def user_sigma(self) -> float:
        """The residual standard deviation on the user's scale."""
        return float(np.sqrt(self.sigma2()) * self.scaling.y_scale)

    def user_x(self) -> NDArray[Any]:
        """The estimable fixed-effects columns of the user's X (offset-free)."""
        self._require_rows("the fixed-effects matrix")
        if self.scaling.T is None:
            return self.X
        return np.asarray(np.linalg.solve(self.scaling._T_kept(self.keep).T, self.X.T).T)

    def user_y(self) -> NDArray[Any]:
        """The response on the user's scale, the offset subtracted."""
        self._require_rows("the response")
        s = self.scaling
        if s.y_shift == 0.0 and s.y_scale == 1.0:
            return self.y
        return np.asarray(self.y * s.y_scale + s.y_shift)

    def user_dense_z(self) -> NDArray[Any]:
        """Z of the user's columns, dense n x q (small models only)."""
        self._require_rows("the random-effects matrix")
        if all(ts.identity for ts in self.scaling.terms):
            return self.dense_z()
        blocks = []
        for t in self.terms:
            Zj = np.zeros((self.n, t.nranef))
            rows = np.repeat(np.arange(self.n), t.k)
            cols = (t.refs[:, None] * t.k + np.arange(t.k)).reshape(-1)
            Zj[rows, cols] = t.z.reshape(-1)
            blocks.append(Zj)
        return np.hstack(blocks) if blocks else np.zeros((self.n, 0))

    def internal_rows(self, X: NDArray[Any]) -> NDArray[Any]:
        """Rows of the user's full fixed-effects matrix (p_full columns) as the
        core's estimable internal columns."""
        return np.asarray(self.scaling.apply_x(np.asarray(X, dtype=float)))[:, self.keep]

    def internal_z(self, j: int, z: NDArray[Any]) -> NDArray[Any]:
        """Rows of term ``j``'s user columns (core order) as its internal columns."""
        ts = self.scaling.terms[j]
        return z if ts.identity else np.asarray(z @ ts.G)

    def user_xy_factor(self, theta: NDArray[Any]) -> tuple[float, NDArray[Any]] | None:
        """:meth:`xy_factor` of the user's columns at a theta of the user's columns.

        With internal ``[X' y'] = [X y] M`` for an upper triangular M (``X' = X
        T``, ``y' = (y - c_y) / s_y`` where c_y is the intercept column times c_y /
        v), the user's system is ``M^{-T} A' M^{-1}``, whose factor is ``M^{-T}
        L'``: lower triangular with a positive diagonal, so it is the user's
        Cholesky factor exactly. log|L_Z|^2 does not depend on the columns' units.
        """
        s = self.scaling
        if s.identity:
            return self.xy_factor(theta)
        out = self.xy_factor(self.internal_theta(theta))
        if out is None:
            return None
        ldz, Lxy = out
        p = self.p
        Minv = np.eye(p + 1)  # [X y] = [X' y'] M^{-1}
        if s.T is not None:
            Minv[:p, :p] = np.linalg.inv(s._T_kept(self.keep))
        Minv[p, p] = s.y_scale
        if s.y_shift != 0.0:
            # y = s_y y' + c_y x_0 / v, and x_0 = X' (T^{-1} e_0)
            e0 = np.zeros(p)
            e0[0] = s.y_shift / s.intercept_value
            Minv[:p, p] = Minv[:p, :p] @ e0
        return ldz, np.asarray(Minv.T @ Lxy)

    def objective_offset(self) -> float:
        """The user's objective minus the internal one (exact: see ``_scaling``)."""
        return self.scaling.objective_offset(self.dof_residual(), self.reml, self.keep)

    def user_objective(self, theta: NDArray[Any]) -> float:
        """The objective at a theta of the user's columns, on the user's scale."""
        return self.objective(self.internal_theta(theta)) + self.objective_offset()

    def rxx_inverse(self) -> NDArray[Any]:
        """(R_X R_X')^{-1}, the unscaled covariance of beta (p x p)."""
        if self.p == 0:  # no fixed effects (LAPACK rejects empty matrices)
            return np.zeros((0, 0))
        R = self._xy_block()[: self.p, : self.p]
        if self.p == 1:  # LAPACK's 1 / R and its square, without the calls
            r = 1.0 / float(R[0, 0])
            return np.array([[r * r]])
        Rinv = trsolve(R, np.eye(self.p))
        return np.asarray(Rinv.T @ Rinv)

    def dense_lzz(self) -> NDArray[Any]:
        """L_ZZ as one dense q x q lower-triangular matrix (small models only)."""
        sizes = [t.nranef for t in self.terms]
        off = np.concatenate(([0], np.cumsum(sizes)))
        out = np.zeros((off[-1], off[-1]))
        L = self.factor()
        for i, j in self.Ltype:
            if i == self.m:
                continue
            out[off[i] : off[i + 1], off[j] : off[j + 1]] = L[(i, j)].to_dense()
        return out

    def solve_lower(self, rhs: list[NDArray[Any]]) -> list[NDArray[Any]]:
        """L^{-1} R for L the factor at the installed theta without its y row.

        ``rhs`` holds R by block rows: one (q_j, c) array per term in the core's
        order, then X's (p, c); so does the result.
        """
        L, m, p = self.factor(), self.m, self.p
        sols: list[NDArray[Any]] = []
        for j in range(m):
            r = rhs[j]
            for i in range(j):
                r = r - L[(j, i)].mul(sols[i])
            sols.append(L[(j, j)].solve(r))
        r = rhs[m]
        for i in range(m):
            r = r - L[(m, i)].to_dense()[:p, :] @ sols[i]
        if p:
            Lxx = self._xy_block()[:p, :p]
            sols.append(np.asarray(sla.solve_triangular(Lxx, r, lower=True, check_finite=False)))
        return sols

    def dense_lambda(self, theta: NDArray[Any]) -> NDArray[Any]:
        mats = [np.kron(np.eye(t.nlevels), lam) for t, lam in zip(self.terms, self.lambdas(theta))]
        return sla.block_diag(*mats) if mats else np.zeros((0, 0))

    def dense_z(self) -> NDArray[Any]:
        """Z (unweighted) as a dense n x q matrix (small models only)."""
        self._require_rows("the random-effects matrix")
        blocks = []
        for t, z in zip(self.terms, self.zs):
            Zj = np.zeros((self.n, t.nranef))
            rows = np.repeat(np.arange(self.n), t.k)
            cols = (t.refs[:, None] * t.k + np.arange(t.k)).reshape(-1)
            Zj[rows, cols] = z.reshape(-1)
            blocks.append(Zj)
        return np.hstack(blocks) if blocks else np.zeros((self.n, 0))


# ------------------------------------------------------ structure helpers


def _column_shared(S: BlockSparse) -> bool:
    """Whether some block column of S holds two blocks (then S S' is not block diagonal)."""
    return bool(S.nblocks) and int(np.bincount(S.bcol).max()) > 1


def _scalar_entries(S: BlockSparse) -> tuple[NDArray[Any], NDArray[Any]]:
    """Row and column of each scalar entry of S, in the order of ``S.data.reshape(-1)``."""
    a = np.arange(S.ki)[None, :, None]
    b = np.arange(S.kj)[None, None, :]
    rows = S.brow[:, None, None] * S.ki + a + 0 * b
    cols = S.bcol[:, None, None] * S.kj + b + 0 * a
    return rows.reshape(-1), cols.reshape(-1)


# ------------------------------------------------------ conditional variances


def conditional_variances(problem: LMMProblem, theta: NDArray[Any]) -> list[NDArray[Any]]:
    """Per term, the (l, k, k) blocks of Lambda (Lambda'Z'Z Lambda + I)^{-1} Lambda'.

    ``theta`` is internal and installed here (the factor is formed there if it
    is not already); the blocks are those of the user's columns. (Multiply by
    the user's sigma^2 for the conditional covariance of b given y.) Uses the
    factor: (L L')^{-1} = L^{-T} L^{-1}, so the block of level b of term j is
    sum over blocks i >= j of Y_i[:, b]' Y_i[:, b] with Y = L^{-1} E_j and E_j the
    identity columns of term j; Y_j = L_jj^{-1} is (block) diagonal and only the
    blocks below it need a forward substitution.

    Raises
    ------
    numpy.linalg.LinAlgError
        If the factor is not positive definite at ``theta``.
    """
    problem.set_theta(theta)
    L, terms, m = problem.factor(), problem.terms, problem.m
    lams = problem.lambdas(np.asarray(theta, dtype=float))
    out = []
    for j, tj in enumerate(terms):
        nl, k = tj.nlevels, tj.k
        Ys = {j: L[(j, j)].inverse_dense()}
        for i in range(j + 1, m):
            rhs = np.zeros((terms[i].nranef, tj.nranef))
            for kk in range(j, i):
                rhs -= L[(i, kk)].mul(Ys[kk])
            Ys[i] = L[(i, i)].solve(rhs)
        G = np.zeros((nl, k, k))
        for Y in Ys.values():
            Y3 = Y.reshape(Y.shape[0], nl, k)
            G += np.einsum("qla,qlb->lab", Y3, Y3)
        lam = lams[j]
        out.append(problem.scaling.condvar_to_user(j, lam @ G @ lam.T))
    return out


def leverage(problem: LMMProblem, theta: NDArray[Any], chunk: int = 2048) -> NDArray[Any]:
    """Diagonal of the hat matrix: ||L^{-1} [Lambda' z_i; x_i]||^2 for each row i.

    L here is the factor of the system without y (the leading q + p rows), at the
    internal ``theta`` (installed here): the hat matrix does not depend on the
    parametrization, so the internal columns give the user's leverage. The work
    is dense in q + p and done in chunks of observations.

    Raises
    ------
    numpy.linalg.LinAlgError
        If the factor is not positive definite at ``theta``.
    """
    problem.set_theta(theta)
    Lm = problem.factor()
    sizes = [t.nranef for t in problem.terms]
    q = int(sum(sizes))
    p = problem.p
    Lfull = np.zeros((q + p, q + p))
    Lfull[:q, :q] = problem.dense_lzz()
    off = np.concatenate(([0], np.cumsum(sizes)))
    for j in range(problem.m):
        Lfull[q:, off[j] : off[j + 1]] = Lm[(problem.m, j)].to_dense()[:p, :]
    Lfull[q:, q:] = Lm[(problem.m, problem.m)].to_dense()[:p, :p]
    lams = problem.lambdas(np.asarray(theta, dtype=float))
    sw = problem.sqrtw if problem.sqrtw is not None else np.ones(problem.n)
    out = np.empty(problem.n)
    for start in range(0, problem.n, chunk):
        rows = np.arange(start, min(start + chunk, problem.n))
        rhs = np.zeros((q + p, rows.shape[0]))
        for j, t in enumerate(problem.terms):
            # Lambda' z_i for the level's block
            zl = (problem.zs[j][rows] @ lams[j]) * sw[rows, None]
            cols = off[j] + t.refs[rows][:, None] * t.k + np.arange(t.k)
            rhs[cols, np.arange(rows.shape[0])[:, None]] = zl
        rhs[q:, :] = (problem.X[rows] * sw[rows, None]).T
        Y = sla.solve_triangular(Lfull, rhs, lower=True, check_finite=False)
        out[rows] = np.einsum("ij,ij->j", Y, Y)
    return out
