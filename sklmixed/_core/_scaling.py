"""Internal centring and scaling: fits that do not depend on the data's units.

A mixed model is the same model whatever the units of its columns: adding a
constant to the response or to a covariate (where the model has an intercept
that absorbs it), or multiplying either by a constant, is a reparametrization.
The numbers are not the same, though: the augmented Cholesky factor reads r^2
off ``y'y`` minus the part the model explains, which loses every digit when the
response's mean dwarfs its residual spread (``reaction + 1e9``); a covariate
with a large mean next to the intercept makes ``X'X`` and the random-effects
blocks ill-conditioned; and the derivative-free optimizer, which starts at
lambda = I and measures its steps and tolerances in theta, needs theta of order
one, which a random-effect column in the wrong units (``days * 1e-6``) denies it.

So the core fits the model on internal columns and maps the results back:

* the response (linear models): ``y' = (y - c_y) / s_y``, centred only where the
  fixed effects contain an intercept;
* fixed-effect columns: ``x'_j = (x_j - c_j x_0 / v) / s_j`` where ``x_0`` is the
  intercept column (constant ``v``, the first column), i.e. ``X' = X T``;
* random-effect columns of each term: ``z' = z G`` with ``G`` the same kind of
  matrix. Centring a random-effect column against the term's intercept is an
  exact reparametrization only when the term's covariance is unstructured
  (``b' = G^{-1} b`` mixes the intercept with the other columns, and only a full
  lower-triangular lambda can absorb that: ``lambda' = chol(G^{-1} lambda lambda'
  G^{-T})``); ``zerocorr`` and amalgamated terms are only rescaled, which keeps
  lambda's pattern.

Every transformation is the identity unless conditioning needs it: a column is
centred only where its mean is large relative to its spread (:data:`TAU_RESPONSE`,
:data:`TAU_FIXED`, :data:`TAU_RANDOM`), and scaled only where its spread lies
outside a band around one; scale factors are exact powers of two, so that
scaling itself rounds nothing. Data that are already well conditioned (all the
reference fits) are fitted exactly as before, digit for digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from sklmixed._core._reterm import ReTerm

# A column is centred where |mean| > TAU * SD. The thresholds sit above every
# reference data set's columns (so that those fits stay bit-identical) and below
# the point where the untransformed fit loses digits; measured on sleepstudy
# (reaction ~ 1 + days + (1 + days|subj)):
# - the response: shifting reaction by 1e4 (|mean|/SD 180) moves the optimum's
#   objective by 1.6e-8, by 1e5 by 1.4e-7; at 64 the loss of r^2's precision,
#   eps (|mean| / sigma)^2, is below 1e-10 for any residual SD that is at least
#   a tenth of the response's. (The reference data sets' responses have |mean|/SD
#   up to 25, dyestuff's.) A response that the model explains almost exactly is
#   centred as well, once r^2 at the start shows it (RECENTRE_RATIO).
TAU_RESPONSE = 64.0
# - fixed-effect columns: |mean|/SD up to 8 costs X'X at most 2 * log10(8) < 2
#   digits; GLMMs also optimize over beta, where an uncentred column makes the
#   intercept and its slope nearly collinear for the optimizer (verbagg's anger,
#   |mean|/SD = 4.1, is a reference fit and stays as it is).
TAU_FIXED = 8.0
# - random-effect columns: the optimizer is sensitive to the correlation that an
#   uncentred column induces between the intercept and the slope: days + 8
#   (|mean|/SD 4.4) already stops 4.5e-7 above the optimum; days itself (1.57)
#   is a reference fit.
TAU_RANDOM = 2.0
# A column is scaled (by the power of two nearest to its spread: the SD where it
# is centred, the root mean square otherwise) where the spread lies outside
# [2^-B, 2^B]. Random-effect columns matter most (theta is measured in their
# units): days * 2^4 (RMS 85) already stops 1.4e-6 above the optimum, days * 2^-2
# reaches it; B = 3 keeps every reference column (days: RMS 5.3) as it is. The
# response and fixed-effect columns only need to stay far from overflow and from
# the optimizer's absolute tolerances (beta is optimized in GLMMs: contra's age,
# SD 9, and verbagg's anger, RMS 21, are reference fits).
BAND_RESPONSE = 20
BAND_FIXED = 6
BAND_RANDOM = 3
# Beyond this |mean| / SD, a column's variation survives in fewer than about six
# of float64's sixteen significant digits: the fit is that of the rounded data,
# and we say so.
DIGITS_LOST = 1e10


def _pow2(spread: float, band: int) -> float:
    """1.0 inside [2^-band, 2^band], else the power of two nearest to ``spread``."""
    if 2.0**-band <= spread <= 2.0**band:  # the common case, without a logarithm
        return 1.0
    if not (spread > 0.0) or not math.isfinite(spread):
        return 1.0
    e = math.log2(spread)
    if -band <= e <= band:
        return 1.0
    return float(2.0 ** round(e))


def psd_cholesky(C: NDArray[Any]) -> NDArray[Any]:
    """Lower-triangular ``L`` with ``L L' = C`` for a positive semi-definite ``C``.

    A pivot that is zero up to rounding (below ``100 eps`` of its diagonal element)
    gives a zero column, as the relative covariance factor of a singular fit has:
    its diagonal is exactly zero there, and non-negative everywhere.
    """
    k = C.shape[0]
    L = np.zeros((k, k))
    for j in range(k):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        if not d > 100.0 * np.finfo(float).eps * abs(C[j, j]):
            continue
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


@dataclass(frozen=True, eq=False)
class TermScaling:
    """Internal columns of one random-effects term: ``z_int = z G``.

    Then ``b = G b_int`` and the relative covariance maps as ``lam lam^T =
    G lam_int lam_int^T G^T``; ``centred`` says whether ``G`` has off-diagonal
    entries (then lambda maps through a Cholesky factor, else row by row).
    """

    G: NDArray[Any]
    centred: bool
    identity: bool


@dataclass(frozen=True, eq=False)
class Scaling:
    """The internal centring and scaling of one model's columns.

    Attributes
    ----------
    T : ndarray (p_full, p_full) or None
        ``X' = X T`` (None: the identity).
    y_shift, y_scale : float
        ``y' = (y - y_shift) / y_scale``.
    terms : list of TermScaling
        In the order of the terms given (the core reorders them itself).
    issues : list of str
        Conditioning the transformation could not repair, as messages naming the
        column and what to do (the optimizer driver turns them into warnings).
    intercept_value : float
        The constant of the intercept column (1 from a formula).
    has_intercept : bool
        Whether X's first column is a non-zero constant (what centring needs).
    """

    T: NDArray[Any] | None
    y_shift: float
    y_scale: float
    terms: list[TermScaling]
    issues: list[str] = field(default_factory=list)
    intercept_value: float = 1.0
    has_intercept: bool = False

    def __post_init__(self) -> None:
        # asked in every fit, often: decided once
        identity = (
            self.T is None
            and self.y_shift == 0.0
            and self.y_scale == 1.0
            and all([t.identity for t in self.terms])
        )
        object.__setattr__(self, "_identity", identity)

    @property
    def identity(self) -> bool:
        """Whether every column is used as it is (the common case)."""
        return bool(self._identity)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ data

    def apply_x(self, X: NDArray[Any]) -> NDArray[Any]:
        return X if self.T is None else np.asarray(X @ self.T)

    def apply_y(self, y: NDArray[Any]) -> NDArray[Any]:
        if self.y_shift == 0.0 and self.y_scale == 1.0:
            return y
        return (y - self.y_shift) / self.y_scale

    def apply_terms(self, terms: Sequence[ReTerm]) -> list[NDArray[Any]]:
        """The internal model-matrix columns z' of each term."""
        return [t.z if ts.identity else t.z @ ts.G for t, ts in zip(terms, self.terms)]

    # ------------------------------------------------------ fixed effects

    def _T_kept(self, keep: NDArray[Any]) -> NDArray[Any]:
        assert self.T is not None
        return np.asarray(self.T[np.ix_(keep, keep)])

    def beta_to_user(self, beta: NDArray[Any], keep: NDArray[Any]) -> NDArray[Any]:
        """beta = s_y T beta' + c_y e_0 / v over the estimable columns ``keep``."""
        out = np.asarray(beta, dtype=float)
        if self.T is not None:
            out = self._T_kept(keep) @ out
        if self.y_scale != 1.0:
            out = out * self.y_scale
        if self.y_shift != 0.0:
            out = out.copy()
            out[0] += self.y_shift / self.intercept_value
        return out

    def beta_to_internal(self, beta: NDArray[Any], keep: NDArray[Any]) -> NDArray[Any]:
        """The inverse of :meth:`beta_to_user` (a warm start's beta)."""
        out = np.array(beta, dtype=float)
        if self.y_shift != 0.0:
            out[0] -= self.y_shift / self.intercept_value
        if self.y_scale != 1.0:
            out = out / self.y_scale
        if self.T is not None:
            out = np.linalg.solve(self._T_kept(keep), out)
        return out

    def vcov_to_user(self, V: NDArray[Any], keep: NDArray[Any]) -> NDArray[Any]:
        """s_y^2 T V' T' over the estimable columns."""
        if self.T is not None:
            Tk = self._T_kept(keep)
            V = Tk @ V @ Tk.T
        return V * self.y_scale**2 if self.y_scale != 1.0 else V

    def objective_offset(self, d: int, reml: bool, keep: NDArray[Any]) -> float:
        """User objective minus the internal one: 2 d log s_y (d = n, or n - p for
        REML), and for REML log|T|^-2 = 2 sum log s_j from the X block's factor."""
        off = 0.0
        if self.y_scale != 1.0:
            off += 2.0 * d * math.log(self.y_scale)
        if reml and self.T is not None:
            diag = np.abs(np.diag(self.T)[keep])
            off -= 2.0 * float(np.sum(np.log(diag)))
        return off

    # ----------------------------------------------------- random effects

    def lambda_to_user(self, j: int, lam: NDArray[Any]) -> NDArray[Any]:
        """User lambda (lower triangular, non-negative diagonal) of term ``j``."""
        ts = self.terms[j]
        if ts.identity:
            return lam
        if not ts.centred:
            return np.asarray(ts.G @ lam)
        GL = ts.G @ lam
        return psd_cholesky(GL @ GL.T)

    def lambda_to_internal(self, j: int, lam: NDArray[Any]) -> NDArray[Any]:
        ts = self.terms[j]
        if ts.identity:
            return lam
        Ginv = np.linalg.inv(ts.G)
        if not ts.centred:
            return np.asarray(Ginv @ lam)
        GL = Ginv @ lam
        return psd_cholesky(GL @ GL.T)

    def b_to_user(self, j: int, b: NDArray[Any]) -> NDArray[Any]:
        """Random effects (l, k) on the user's scale: b = s_y G b'."""
        ts = self.terms[j]
        out = b if ts.identity else b @ ts.G.T
        return out * self.y_scale if self.y_scale != 1.0 else out

    def u_to_user(
        self, j: int, u: NDArray[Any], lam_internal: NDArray[Any], lam_user: NDArray[Any]
    ) -> NDArray[Any]:
        """Spherical random effects on the user's scale: s_y Q u' with
        ``lambda = G lambda' Q'`` (Q orthogonal; the identity unless centred)."""
        ts = self.terms[j]
        out = u
        if ts.centred:
            Q = np.linalg.pinv(lam_user) @ ts.G @ lam_internal
            out = u @ Q.T
        return out * self.y_scale if self.y_scale != 1.0 else out

    def condvar_to_user(self, j: int, V: NDArray[Any]) -> NDArray[Any]:
        """Relative conditional covariance blocks (l, k, k): G V' G'."""
        ts = self.terms[j]
        if ts.identity:
            return V
        return np.asarray(ts.G @ V @ ts.G.T)


# Columns whose one-pass |mean| / SD exceeds this are looked at again exactly (two
# passes, and a test for constancy): the one-pass variance, E[x^2] - E[x]^2,
# loses 2 log10(ratio) digits, which is harmless below every threshold above.
_RECHECK = min(TAU_RANDOM, TAU_FIXED, TAU_RESPONSE)


class ColumnSummary(NamedTuple):
    """What the decisions need to know about one column."""

    mean: float
    sd: float
    ratio: float  # |mean| / sd, inf for sd 0
    const: bool
    first: float  # its first value


_IDENTITY_TERMS: dict[int, TermScaling] = {}


def _identity_term(k: int) -> TermScaling:
    """The (shared, immutable) TermScaling of a term used as it is."""
    if k not in _IDENTITY_TERMS:
        eye = np.eye(k)
        eye.flags.writeable = False
        _IDENTITY_TERMS[k] = TermScaling(eye, centred=False, identity=True)
    return _IDENTITY_TERMS[k]


def _describe(A: NDArray[Any], w: NDArray[Any] | None) -> list[ColumnSummary]:
    """Per column of A: mean, SD (weighted), |mean| / SD and constancy.

    One pass (two reductions over all columns at once) decides almost every
    column; only those with a large |mean| / SD (intercepts, shifted columns)
    are summarized again exactly. This runs in every fit, so it is kept to a few
    numpy calls: for small models their overhead is the whole cost.
    """
    if w is None:
        sw = float(A.shape[0])
        s1 = A.sum(axis=0)
        s2 = np.einsum("ij,ij->j", A, A)
    else:
        sw = float(w.sum())
        s1 = w @ A
        s2 = np.einsum("i,ij,ij->j", w, A, A)
    first = A[0].tolist()
    second = A[1].tolist() if A.shape[0] > 1 else first
    out = []
    for j, (a, b) in enumerate(zip(s1.tolist(), s2.tolist())):
        mean = a / sw
        var = b / sw - mean * mean
        if var == 0.0 and mean == first[j] and b / sw == mean * mean:
            # constant for certain: sum(x) = n x0 and sum(x^2) = n x0^2 exactly (a
            # column of ones, every intercept from a formula); no second look
            out.append(ColumnSummary(mean, 0.0, math.inf, True, first[j]))
            continue
        ratio = abs(mean) / math.sqrt(var) if var > 0.0 else math.inf
        if not ratio <= _RECHECK:
            col = A[:, j]
            # (two different first values settle it without a pass: the response)
            if first[j] == second[j] and bool((col == col[0]).all()):
                out.append(ColumnSummary(float(col[0]), 0.0, math.inf, True, first[j]))
                continue
            dev = col - mean
            var = float((dev @ dev) / sw if w is None else (w @ (dev * dev)) / sw)
            ratio = abs(mean) / math.sqrt(var) if var > 0.0 else math.inf
        out.append(ColumnSummary(mean, math.sqrt(max(var, 0.0)), ratio, False, first[j]))
    return out


def _decide(
    cols: Sequence[ColumnSummary], icol: int | None, may_centre: bool, tau: float, band: int
) -> tuple[list[float], list[float]]:
    """Centres and (power-of-two) scales of the columns. Only columns after the
    constant ``icol`` are centred against it (see :func:`fit_scaling`)."""
    centre, scale = [], []
    for j, c in enumerate(cols):
        if c.const:
            centre.append(0.0)
            scale.append(_pow2(abs(c.first), band))
        elif may_centre and icol is not None and j > icol and c.ratio > tau:
            centre.append(c.mean)
            scale.append(_pow2(c.sd, band))
        else:
            centre.append(0.0)
            scale.append(_pow2(math.sqrt(c.mean * c.mean + c.sd * c.sd), band))
    return centre, scale


def _shear(centre: list[float], scale: list[float], icol: int | None, v: float) -> NDArray[Any]:
    """M with A M = (A - centre * A[:, icol] / v) / scale, column by column."""
    sc = np.asarray(scale)
    M = np.diag(1.0 / sc)
    if icol is not None:
        M[icol, :] -= np.asarray(centre) / (v * sc)
        M[icol, icol] = 1.0 / sc[icol]
    return M


def fit_scaling(
    X: NDArray[Any],
    y: NDArray[Any] | None,
    terms: Sequence[ReTerm],
    weights: NDArray[Any] | None = None,
    xnames: Sequence[str] | None = None,
) -> Scaling:
    """Decide the internal centring and scaling of a model's columns.

    Parameters
    ----------
    X : ndarray (n, p)
        Fixed-effects model matrix (all columns; estimability is judged later, on
        the internal columns).
    y : ndarray (n,) or None
        The response of a linear model; None leaves it alone (GLMMs, whose
        response is on the family's scale).
    terms : list of ReTerm
    weights : ndarray (n,), optional
        Prior weights: means and spreads are weighted (zero weights drop a row).
    xnames : list of str, optional
        Names of X's columns, for the messages in ``issues``.

    Notes
    -----
    The intercept is X's first column where that is a non-zero constant, and
    only later columns are centred against it: estimability is decided column
    by column in order, and centring a column against an earlier one keeps the
    span of every leading set of columns. A random-effects term is centred
    against its first constant column the same way.
    """
    n, p = X.shape
    w = None if weights is None else np.asarray(weights, dtype=float)
    if n == 0:
        return Scaling(None, 0.0, 1.0, [_identity_term(t.k) for t in terms])
    blocks = [X] + ([] if y is None else [np.asarray(y, dtype=float)[:, None]])
    blocks += [t.z for t in terms]
    cols = _describe(np.concatenate(blocks, axis=1) if len(blocks) > 1 else X, w)
    return scaling_from_columns(cols, p, y is not None, terms, xnames)


def scaling_from_columns(
    cols: Sequence[ColumnSummary],
    p: int,
    has_response: bool,
    terms: Sequence[ReTerm],
    xnames: Sequence[str] | None = None,
) -> Scaling:
    """The decisions of :func:`fit_scaling` from the columns' summaries.

    ``cols`` describes X's ``p`` columns, then the response (``has_response``),
    then each term's columns in the order of ``terms``: what
    :func:`fit_scaling` computes from rows in memory, or what a pass over data
    that do not fit in memory accumulates (:func:`summarize_columns`).
    """
    xcols = cols[:p]
    ycol = cols[p] if has_response else None
    issues: list[str] = []

    def xname(j: int) -> str:
        return repr(xnames[j]) if xnames is not None and j < len(xnames) else f"number {j}"

    # ---- fixed effects
    T: NDArray[Any] | None = None
    has_intercept = bool(p and xcols[0].const and xcols[0].first != 0.0)
    v = xcols[0].first if has_intercept else 1.0
    if p:
        icol = 0 if has_intercept else None
        centre, scale = _decide(xcols, icol, True, TAU_FIXED, BAND_FIXED)
        if any(centre) or scale.count(1.0) != p:
            T = _shear(centre, scale, icol, v)
        for j, c in enumerate(xcols):
            # (both messages need |mean| / SD > TAU_FIXED: most columns stop here)
            if c.const or not c.ratio > TAU_FIXED:
                continue
            if centre[j] == 0.0 and p > 1:
                issues.append(
                    f"fixed-effects column {xname(j)} has a mean {c.ratio:.3g} times its "
                    "standard deviation and the model has no intercept to centre it "
                    "against: the fit may lose precision; centre the column, or add an "
                    "intercept"
                )
            if c.ratio > DIGITS_LOST:
                issues.append(_digits_message(f"fixed-effects column {xname(j)}", c.ratio))

    # ---- the response
    y_shift, y_scale = 0.0, 1.0
    if ycol is not None and not ycol.const:
        if has_intercept and ycol.ratio > TAU_RESPONSE:
            y_shift, y_scale = ycol.mean, _pow2(ycol.sd, BAND_RESPONSE)
        else:
            y_scale = _pow2(math.sqrt(ycol.mean**2 + ycol.sd**2), BAND_RESPONSE)
            if ycol.ratio > TAU_RESPONSE:
                issues.append(
                    f"the response has a mean {ycol.ratio:.3g} times its standard deviation "
                    "and the fixed effects have no intercept to absorb it: the fit may lose "
                    "precision; add an intercept, or subtract a constant from the response"
                )
        if ycol.ratio > DIGITS_LOST:
            issues.append(_digits_message("the response", ycol.ratio))

    # ---- random-effects terms
    tscales: list[TermScaling] = []
    start = p + 1 if has_response else p
    for t in terms:
        k = t.k
        zcols = cols[start : start + k]
        start += k
        icol = None  # the term's first non-zero constant column
        for a, c in enumerate(zcols):
            if c.const and c.first != 0.0:
                icol = a
                break
        unstructured = t.ntheta == k * (k + 1) // 2
        centre, scale = _decide(zcols, icol, unstructured, TAU_RANDOM, BAND_RANDOM)
        for a, c in enumerate(zcols):
            if c.const:
                continue
            if icol is not None and not unstructured and c.ratio > TAU_FIXED:
                issues.append(
                    f"random-effects column {t.cnames[a]!r} of {t.name!r} has a mean "
                    f"{c.ratio:.3g} times its standard deviation in a term whose "
                    "covariance is not unstructured, where centring it would change "
                    "the model: the fit may lose precision. If the model with the "
                    "centred column is the one you mean, centre it yourself"
                )
            if c.ratio > DIGITS_LOST:
                issues.append(
                    _digits_message(f"random-effects column {t.cnames[a]!r} of {t.name!r}", c.ratio)
                )
        if not any(centre) and scale.count(1.0) == k:
            tscales.append(_identity_term(k))
            continue
        centred = any(centre)
        vz = zcols[icol].first if icol is not None else 1.0
        G = _shear(centre, scale, icol if centred else None, vz)
        tscales.append(TermScaling(G, centred=centred, identity=False))

    return Scaling(
        T, y_shift, y_scale, tscales, issues, intercept_value=v, has_intercept=has_intercept
    )


# The response is also centred, whatever its mean, where the fit's residual sum
# of squares at the start is below 2^-20 of y'y: r^2 then keeps fewer than ten of
# float64's sixteen digits (a model that explains the response almost exactly).
RECENTRE_RATIO = 2.0**20


def recentred_response(
    scaling: Scaling, y: NDArray[Any], weights: NDArray[Any] | None, yty: float, r2: float
) -> tuple[Scaling, NDArray[Any]] | None:
    """Centre an uncentred internal response when r^2 is tiny beside y'y.

    ``y`` is the internal response, ``yty`` its (weighted) sum of squares and
    ``r2`` the penalized residual sum of squares at the start. Returns the new
    scaling and internal response, or None where nothing changes (no intercept,
    already centred, or r^2 well resolved).
    """
    if not recentre_needed(scaling, yty, r2):
        return None
    y_user = y * scaling.y_scale  # exact: the scale is a power of two
    (col,) = _describe(y_user[:, None], weights)
    new = recentred_scaling(scaling, col)
    if new is None:
        return None
    return new, new.apply_y(y_user)


def recentre_needed(scaling: Scaling, yty: float, r2: float) -> bool:
    """Whether :func:`recentred_response` would look at the response again."""
    return scaling.has_intercept and scaling.y_shift == 0.0 and yty > RECENTRE_RATIO * r2


def recentred_scaling(scaling: Scaling, col: ColumnSummary) -> Scaling | None:
    """The scaling with the response centred, from the summary of the response
    on the user's scale (offset subtracted); None for a constant response."""
    if col.const:
        return None
    return replace(scaling, y_shift=col.mean, y_scale=_pow2(col.sd, BAND_RESPONSE))


class ColumnMoments:
    """Weighted moments of columns, accumulated over chunks of rows.

    What :func:`summarize` needs to decide the centring and scaling of data
    seen one chunk at a time, as :func:`fit_scaling` decides it from all rows:
    the weights' sum, the one-pass sums of x and x^2 (those of ``_describe``),
    the mean and the sum of squared deviations merged chunk by chunk (Chan,
    Golub and LeVeque's update: the exact spread of shifted columns), each
    column's first value and its minimum and maximum (constancy).
    """

    def __init__(self, A: NDArray[Any], w: NDArray[Any] | None = None) -> None:
        A = np.asarray(A, dtype=float)
        n = A.shape[0]
        if w is None:
            self.sw = float(n)
            self.s1 = A.sum(axis=0)
            self.s2 = np.einsum("ij,ij->j", A, A)
        else:
            self.sw = float(w.sum())
            self.s1 = w @ A
            self.s2 = np.einsum("i,ij,ij->j", w, A, A)
        self.n = n
        self.mean = self.s1 / self.sw if self.sw > 0 else np.zeros(A.shape[1])
        dev = A - self.mean
        self.m2 = (
            np.einsum("ij,ij->j", dev, dev) if w is None else np.einsum("i,ij,ij->j", w, dev, dev)
        )
        if self.sw <= 0:
            self.m2 = np.zeros(A.shape[1])
        self.first = A[0].copy() if n else np.full(A.shape[1], np.nan)
        self.lo = A.min(axis=0) if n else np.full(A.shape[1], np.inf)
        self.hi = A.max(axis=0) if n else np.full(A.shape[1], -np.inf)

    def summary(self, j: int) -> tuple[float, ...]:
        """(sum of weights, weighted mean, weighted sum of squared deviations,
        min, max) of column ``j``: what two fits of the same data share (a
        likelihood-ratio test compares a response kept in no other form)."""
        return (
            float(self.sw),
            float(self.mean[j]),
            float(self.m2[j]),
            float(self.lo[j]),
            float(self.hi[j]),
        )

    def combine(self, other: ColumnMoments) -> ColumnMoments:
        """The moments of both chunks' rows (``self``'s first)."""
        out = object.__new__(ColumnMoments)
        out.n = self.n + other.n
        out.sw = self.sw + other.sw
        out.s1 = self.s1 + other.s1
        out.s2 = self.s2 + other.s2
        if other.sw <= 0:
            out.mean, out.m2 = self.mean, self.m2
        elif self.sw <= 0:
            out.mean, out.m2 = other.mean, other.m2
        else:
            delta = other.mean - self.mean
            out.mean = self.mean + delta * (other.sw / out.sw)
            out.m2 = self.m2 + other.m2 + delta * delta * (self.sw * other.sw / out.sw)
        out.first = self.first if self.n else other.first
        out.lo = np.minimum(self.lo, other.lo)
        out.hi = np.maximum(self.hi, other.hi)
        return out

    def summarize(self) -> list[ColumnSummary]:
        """The columns' summaries, decided as ``_describe`` decides them."""
        sw = self.sw
        out = []
        for j, (a, b) in enumerate(zip(self.s1.tolist(), self.s2.tolist())):
            first = float(self.first[j])
            mean = a / sw
            var = b / sw - mean * mean
            if var == 0.0 and mean == first and b / sw == mean * mean:
                out.append(ColumnSummary(mean, 0.0, math.inf, True, first))
                continue
            ratio = abs(mean) / math.sqrt(var) if var > 0.0 else math.inf
            if not ratio <= _RECHECK:
                if self.lo[j] == self.hi[j]:
                    out.append(ColumnSummary(first, 0.0, math.inf, True, first))
                    continue
                var = float(self.m2[j]) / sw
                ratio = abs(mean) / math.sqrt(var) if var > 0.0 else math.inf
            out.append(ColumnSummary(mean, math.sqrt(max(var, 0.0)), ratio, False, first))
        return out


def _digits_message(what: str, ratio: float) -> str:
    digits = max(0, int(16 - math.log10(ratio)))
    return (
        f"{what} has a mean {ratio:.3g} times its standard deviation: its variation "
        f"survives in only about {digits} significant digits of float64, and the fit is "
        "that of the rounded values; subtract a constant near its mean before storing "
        "or passing it"
    )
