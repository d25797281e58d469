"""Input checks of the estimators: responses, labels, weights, and new data.

scikit-learn's conventions (a column-vector ``y`` is raveled with a
``DataConversionWarning``; other 2-D targets, targets and weights of the wrong
length, missing values are errors), with errors from :mod:`sklmixed.exceptions`
that name what is wrong. Missing values are recognised in every representation
pandas and numpy use: ``NaN``, ``None``, ``pd.NA`` and ``pd.NaT``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy.linalg.lapack import dsyev as _syev
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import validate_data

from sklmixed.exceptions import (
    DataError,
    DataTypeError,
    PerfectFitWarning,
    UnseenLevelsWarning,
    user_stacklevel,
)

# ---------------------------------------------------------------- helpers


def _as_array(values) -> np.ndarray:
    """A numpy view of a sequence, a pandas object or an Arrow/polars column."""
    if isinstance(values, (pd.Series, pd.Index, pd.DataFrame, pd.api.extensions.ExtensionArray)):
        return values.to_numpy()
    if hasattr(values, "to_pandas") and not isinstance(values, np.ndarray):
        return _as_array(values.to_pandas())
    return np.asarray(values)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is missing: NaN (not inf), None, pd.NA or pd.NaT."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(values.shape, dtype=bool)
    return np.asarray(pd.isna(values), dtype=bool)


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(map(str, rows[:5].tolist())) + (", ..." if rows.shape[0] > 5 else "")
    return f"row{'s' if rows.shape[0] > 1 else ''} {shown}"


def _to_float(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as floats (numbers written as text too), or an error showing some
    values that are not numbers."""
    try:
        return values.astype(float)
    except (TypeError, ValueError) as exc:
        bad = []
        for v in values.ravel():
            try:
                float(v)
            except (TypeError, ValueError):
                bad.append(v)
                if len(bad) == 3:
                    break
        raise DataError(f"{what} must be numeric; got values such as {bad}") from exc


# ------------------------------------------------------- target and weights


def validate_target(y, n_rows: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n_rows`` values without missing values.

    The values keep their type (labels may be strings); a column vector is
    raveled with scikit-learn's ``DataConversionWarning``.
    """
    arr = _as_array(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change "
            "the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=user_stacklevel(),
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise DataError(f"y should be a 1d array, got an array of shape {arr.shape} instead.")
    if arr.shape[0] != n_rows:
        raise DataError(f"y has {arr.shape[0]} values but X has {n_rows} rows")
    check_no_missing(arr, "y")
    return arr


def check_no_missing(values: np.ndarray, what: str) -> None:
    """Raise, naming the rows, if ``values`` has missing values of any kind."""
    missing = missing_mask(values)
    if missing.any():
        k = int(missing.sum())
        raise DataError(
            f"{what} has {k} missing value{'s' if k > 1 else ''} (NaN, None, NA or NaT) "
            f"at {_rows(missing)}; remove or impute those rows before fitting"
        )


def numeric_response(response, what: str) -> np.ndarray:
    """The response as finite floats (numbers written as text too); ``what`` names
    it in the error for values that are not numbers."""
    y = np.asarray(response)
    kind = y.dtype.kind
    if kind in "iub" or (kind == "f" and np.isfinite(y).all()):
        return y.astype(float)  # numbers, none missing: what the checks below find
    check_no_missing(y, "the response")
    y = _to_float(y, what)
    if not np.all(np.isfinite(y)):
        raise DataError(f"the response has {int((~np.isfinite(y)).sum())} NaN or infinite values")
    return y


def check_not_constant(y: np.ndarray, weights: np.ndarray | None, what: str) -> np.ndarray:
    """Raise if ``y`` is constant over the rows of positive weight (zero-weight rows
    count nowhere, as in lme4); return those rows' values."""
    ypos = y if weights is None else y[weights > 0]
    if ypos.shape[0] > 1 and np.all(ypos == ypos[0]):
        raise DataError(f"{what} is constant ({ypos[0]:g}); there is nothing to model")
    return ypos


def validate_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """Finite, non-negative weights, one per observation (None passes through).

    A scalar is a weight for every observation, as in scikit-learn; anything
    else must be 1-D of length ``n``.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        arr = np.full(n, sample_weight, dtype=float)
    else:
        arr = _as_array(sample_weight)
    if arr.ndim != 1:
        raise DataError(
            f"Sample weights must be 1D array or scalar; sample_weight has shape {arr.shape}"
        )
    if arr.shape[0] != n:
        raise DataError(f"sample_weight has {arr.shape[0]} values for {n} observations")
    missing = missing_mask(arr)
    if missing.any():
        raise DataError(
            f"sample_weight has {int(missing.sum())} missing (NaN, None, NA or NaT) "
            f"value{'s' if missing.sum() > 1 else ''} at {_rows(missing)}"
        )
    w = _to_float(arr, "sample_weight")
    if not np.all(np.isfinite(w)):
        raise DataError(f"sample_weight has infinite values at {_rows(~np.isfinite(w))}")
    if np.any(w < 0):
        raise DataError(f"sample_weight contains negative values (at {_rows(w < 0)})")
    if np.all(w == 0):
        raise DataError(
            "sample_weight is zero for every observation: Sample weights must "
            "contain at least one non-zero number"
        )
    return w


def binary_labels(labels: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y01)`` of a binary response; classes are the sorted labels of
    the rows with positive weight (a label met only in zero-weight rows is no
    class: those rows do not count in the fit), and ``y01`` is 1 for ``classes[1]``.
    """
    present = labels if weights is None else labels[weights > 0]
    y_type = type_of_target(present, input_name="y")
    if y_type == "continuous":
        raise DataError(f"Unknown label type: {y_type}; the response must be two labels")
    try:
        found = np.unique(present)
    except TypeError as exc:  # labels of several types cannot be sorted
        kinds = sorted({type(v).__name__ for v in present.tolist()})
        raise DataError(
            f"the labels must be of one type (all strings or all numbers); found {kinds}"
        ) from exc
    if y_type not in ("binary", "unknown") or found.shape[0] != 2:
        among = " among the rows with positive sample_weight" if weights is not None else ""
        raise DataError(
            "Only binary classification is supported: MixedGLMClassifier needs "
            f"exactly two classes in the response{among}; found {found.shape[0]} class"
            f"{'es' if found.shape[0] != 1 else ''}: {found[:10].tolist()}"
        )
    return found, (labels == found[1]).astype(float)


# ------------------------------------------------------- leaked responses


def check_response_not_among_features(
    X: np.ndarray,
    names: list,
    y: np.ndarray,
    weights: np.ndarray | None,
    *,
    affine: bool,
) -> None:
    """Raise if a fixed-effects column is the response (or, with ``affine``, a
    rescaled or shifted copy of it), naming the column.

    That is a mistake (typically ``formula=None`` with the response left among
    the columns of X), not a model: for a linear mixed model the fixed effects
    then fit y exactly, the residual variance is zero and the likelihood is
    unbounded whatever the variance components, so the fit would return
    ``-inf`` and arbitrary variances. ``affine`` is for linear models, where any
    column perfectly correlated with y does that. Only rows with positive weight
    count. O(n p): no decomposition of X.
    """
    rows = slice(None) if weights is None else weights > 0
    Xr, yr = X[rows], np.asarray(y, dtype=float)[rows]
    if Xr.shape[1] == 0 or yr.shape[0] < 2:
        return
    # a copy of y: only columns equal to it in the first row can be (one pass over
    # those columns rather than all of X)
    maybe = np.flatnonzero(Xr[0] == yr[0])
    same = maybe[np.all(Xr[:, maybe] == yr[:, None], axis=0)] if maybe.size else maybe
    culprits = [names[j] for j in same.tolist()]
    if not culprits and affine:
        yc = yr - yr.mean()
        Xc = Xr - Xr.mean(axis=0)
        ny = np.sqrt(yc @ yc)
        nx = np.sqrt(np.einsum("ij,ij->j", Xc, Xc))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.abs(Xc.T @ yc) / (nx * ny)
        # 1e-12: a copy of y survives centring and rescaling to ~1e-15; a real
        # covariate is never that close to perfectly correlated with a response.
        culprits = [names[j] for j in np.flatnonzero((nx > 0) & (corr >= 1.0 - 1e-12))]
    if culprits:
        raise DataError(
            f"fixed-effects column{'s' if len(culprits) > 1 else ''} "
            f"{', '.join(map(repr, culprits))} "
            f"{'are' if len(culprits) > 1 else 'is'} "
            f"{'the response or a linear function of it' if affine else 'the response'}: "
            "the model would reproduce y exactly. Remove the response from the "
            "features (with formula=None every column of X except groups is a "
            "fixed effect)"
        )


def check_exact_fit(
    X: np.ndarray, names: list, y: np.ndarray, weights: np.ndarray | None, random_effects: bool
) -> bool:
    """Before an LMM fit: an error (with random effects) or a warning (without) when
    the fixed effects reproduce the response exactly; returns whether it warned.

    With random effects the likelihood is then unbounded whatever the variance
    components (the fit would return -inf and arbitrary variances); without them
    the model is a linear regression with an exact, if degenerate, solution. The
    test projects y on the column space of X: the residual of an exact fit is
    rounding, ~1e-15 of y's spread, where real data leave far more than the 1e-10
    allowed here. (The fitted sigma cannot tell: the factor computes it by
    cancellation, to ~1e-8 of y.)
    """
    rows = slice(None) if weights is None else weights > 0
    Xr, yr = X[rows], np.asarray(y, dtype=float)[rows]
    if Xr.shape[1] == 0 or yr.shape[0] < 2:
        return False
    if weights is not None:
        sw = np.sqrt(weights[rows])
        Xr, yr = Xr * sw[:, None], yr * sw
    spread = float(np.linalg.norm(yr - yr.mean()))
    if spread == 0.0 or _projection_residual(Xr, yr) > 1e-10 * spread:
        return False
    shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
    message = (
        f"the fixed effects ({shown}) reproduce the response exactly: is the response, "
        "or a combination of columns equal to it, among the fixed effects"
        + (" (or are there as many columns as observations)?" if X.shape[1] >= yr.shape[0] else "?")
    )
    if random_effects:
        raise DataError(message + " The variance components are undefined for such data")
    warnings.warn(
        message + " The coefficients are the exact fit's; the residual variance is zero",
        PerfectFitWarning,
        stacklevel=user_stacklevel(),
    )
    return True


def check_fixed_effects(
    X: np.ndarray, names: list, y: np.ndarray, weights: np.ndarray | None, random_effects: bool
) -> bool:
    """Before an LMM fit: :func:`check_response_not_among_features` (with random
    effects, ``affine``) and then :func:`check_exact_fit`, whose result it returns.

    Most data are far from both, which :func:`_far_from_fits` proves at a fifth of
    their cost; they run in full wherever it cannot.
    """
    if weights is None and _far_from_fits(X, np.asarray(y, dtype=float)):
        return False
    if random_effects:
        check_response_not_among_features(X, names, y, weights, affine=True)
    return check_exact_fit(X, names, y, weights, random_effects)


# Where _far_from_fits answers at all: up to 10^7 rows the rounding of a sum
# (n eps) stays below 2.2e-9, and up to 64 columns that of the eigenvalues and
# of the checks' residual below 1e-10 (see there).
_SCREEN_MAX_ROWS = 10**7
_SCREEN_MAX_COLS = 64
_EPS = float(np.finfo(float).eps)


def _far_from_fits(X: np.ndarray, y: np.ndarray) -> bool:
    """True only if neither check of :func:`check_fixed_effects` can report
    anything (unweighted rows): y is provably far from the span of X's columns.

    It needs X's first column constant (the intercept), so that span(X) holds
    (1, x_j) for every column j, and takes the eigenvalues of the Gram matrix S
    of [X y] scaled to a unit diagonal: one product and one small symmetric
    eigenproblem, where the checks make two passes over X, centre it and
    decompose its Gram matrix. With lam the smallest eigenvalue of S:

    * y's residual sum of squares on X, relative to y'y, is rho = min over b of
      [-b; 1]' S [-b; 1] >= lam, and that on the intercept alone is
      s = 1 - S_0y^2 (||y - mean||^2 / y'y);
    * every eigenvalue of X's block of S is at least lam (interlacing), and so is
      1 - |S_0j|, which bounds column j's mean against its spread:
      ||x_j|| / ||x_j - mean|| <= lam^-1/2.

    The computed S is off by at most delta = 2 (n + p + 8) eps in each entry (the
    sums' rounding), its computed eigenvalues by (p + 1)^3 eps more (LAPACK's
    backward error, generously); both are taken off lam and added to s. It answers
    True when lam >= 1e-6 and lam >= 1e-4 s. Then no column is y (rho would be
    0); for every column j, 1 - corr_j^2 >= rho / s >= 1e-4, so |corr_j| <= 1 -
    5e-5, which the first check's centring and sums cannot bring to its
    1 - 1e-12 (they move it by at most n eps lam^-1/2 < 2e-6); and the projection's
    residual, at least 1e-3 ||y||, is far from the 1e-10 of y's spread at which
    check_exact_fit reports (its evaluation errs by less than
    (p + 1) eps (1 + 2 p / lam) ||y|| < 2e-6 ||y||).
    """
    n, p = X.shape
    if not (0 < p <= _SCREEN_MAX_COLS and 2 <= n <= _SCREEN_MAX_ROWS):
        return False
    c = X[0, 0]
    if c == 0.0 or not (X[:, 0] == c).all():
        return False
    Z = np.empty((n, p + 1))
    Z[:, :p] = X
    Z[:, p] = y
    S = Z.T @ Z
    d = np.sqrt(S.diagonal())
    # no column near underflow or overflow, where the bounds above do not hold
    # (NaN fails the comparison too)
    if not all(1e-100 <= v <= 1e100 for v in d.tolist()):
        return False
    S /= d[:, None] * d
    # LAPACK's dsyev directly: numpy's eigvalsh wraps it in 3 us of checks
    w, _, info = _syev(S, compute_v=0)
    if info != 0:
        return False
    error = (2.0 * (n + p + 8) + (p + 1) ** 2) * (p + 1) * _EPS
    lam = float(w[0]) - error
    s = 1.0 - float(S[0, p]) ** 2 + error
    return lam >= 1e-6 and lam >= 1e-4 * s


def _pinv_symmetric(G: np.ndarray, rcond: float) -> np.ndarray:
    """The pseudo-inverse of a symmetric matrix: ``np.linalg.pinv(G, rcond,
    hermitian=True)`` from one eigendecomposition, without numpy's general
    SVD wrapping (5 us here against its 35 us for sleepstudy's 2 x 2; a
    small fit's check ran mostly in that wrapping)."""
    w, V = np.linalg.eigh(G)
    aw = np.abs(w)
    large = aw > rcond * aw.max()
    inv = np.zeros_like(w)
    inv[large] = 1.0 / w[large]
    return (V * inv) @ V.T


def _projection_residual(X: np.ndarray, y: np.ndarray) -> float:
    """||y - P y|| for P the projection on the column space of X.

    Semi-normal equations with two steps of iterative refinement (Bjorck,
    Numerical Methods for Least Squares Problems, 2.5.4): X'X and a few products
    with X, accurate to ~cond(X) eps after column scaling, where a QR of X costs
    10-100 times more (1.2 s for InstEval's 73421 x 28 X, against 40 ms here).
    Dependent columns are handled by the pseudo-inverse of the small Gram matrix.
    """
    G = X.T @ X
    d = np.sqrt(np.diag(G))
    d[d == 0] = 1.0
    Gs = G / np.outer(d, d)  # unit diagonal: the Gram matrix of the scaled columns
    pinv = _pinv_symmetric(Gs, rcond=1e-12)
    Xty = (X.T @ y) / d
    c = pinv @ Xty
    # Screen: y'y - c'X'y is the residual sum of squares up to cancellation of
    # ~1e-16 y'y; above 1e-6 y'y the fit is certainly not exact (most data stop here
    # after one pass over X).
    yty = float(y @ y)
    if yty - float(c @ Xty) > 1e-6 * yty:
        return float(np.sqrt(yty - float(c @ Xty)))
    r = y - X @ (c / d)
    for _ in range(2):
        c = c + pinv @ ((X.T @ r) / d)
        r = y - X @ (c / d)
    return float(np.linalg.norm(r))


# ------------------------------------------------------------ new data


def _kind(series: pd.Series) -> str:
    """``"number"``, ``"text"`` or ``"other"``: what a column's values are."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":  # the common case, first
        return "number"
    if isinstance(dtype, pd.StringDtype):  # text by construction: no scan of the values
        return "text"
    if isinstance(dtype, pd.CategoricalDtype):
        return _kind(pd.Series(dtype.categories))
    if pd.api.types.is_bool_dtype(dtype):
        return "other"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) or dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "string":
            return "text"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "number"
    return "other"


def feature_names(labels: pd.Index) -> np.ndarray:
    """``np.asarray(labels, dtype=object)``: the names of an Index of str. Arrow
    strings go through Arrow's list of them; pandas' conversion of an Arrow-backed
    Index costs ~30 us inside a fit (a tenth of a small model's design), this ~5 us."""
    if isinstance(labels.dtype, pd.StringDtype) and labels.dtype.storage == "pyarrow":
        import pyarrow as pa  # present: it holds these labels

        return np.array(pa.array(labels.array).to_pylist(), dtype=object)
    return np.asarray(labels, dtype=object)


def column_kinds(df: pd.DataFrame, columns: list, fetched: dict | None = None) -> dict:
    """What each column used by a fit held, and whether it was a pandas
    Categorical (see :func:`conform_columns`); ``fetched`` holds columns of
    ``df`` (or their values) looked up already (pandas builds a new Series for
    each lookup)."""
    fetched = fetched or {}
    out = {}
    for c in columns:
        if c in fetched or c in df.columns:
            series = fetched[c] if c in fetched else df[c]
            out[c] = (_kind(series), isinstance(series.dtype, pd.CategoricalDtype))
    return out


def _as_text(value):
    if isinstance(value, (bool, np.bool_)) or value is None or missing_mask(np.array([value]))[0]:
        return value
    if isinstance(value, (numbers.Integral, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def conform_columns(df: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    """New data with the column types of the training data, where they changed
    in a way that keeps the values: numbers read back as text (``"1.5"``) become
    numbers again, numeric codes of a text column (``308`` for ``"308"``) text.

    Returns ``df`` itself when nothing changes, else a shallow copy (the caller's
    frame is never modified). A text value in a numeric column is an error that
    names the column.
    """
    changed = {}
    for col, (kind, categorical) in kinds.items():
        if col not in df.columns or kind == "other":
            continue
        s = df[col]
        new = _kind(s)
        # a Categorical of numbers where plain numbers were fitted: their values
        # (formulaic would not compute with it)
        new_categorical = isinstance(s.dtype, pd.CategoricalDtype)
        if new == kind and (kind == "text" or categorical or not new_categorical):
            continue
        if new == "other" and kind == "text":
            continue
        if kind == "number":
            converted = pd.to_numeric(s.astype(object), errors="coerce")
            bad = converted.isna().to_numpy() & ~missing_mask(s.to_numpy(dtype=object))
            if bad.any():
                examples = pd.unique(s[bad].astype(str))[:3].tolist()
                raise DataError(
                    f"column {col!r} was numeric in fit but has values that are not "
                    f"numbers: {examples}"
                )
            changed[col] = converted.astype(float)
        elif new == "number":  # numeric codes of a column of text levels
            changed[col] = pd.Series(
                [_as_text(v) for v in s.to_numpy(dtype=object)], index=s.index, dtype=object
            )
    if not changed:
        return df
    out = df.copy(deep=False)
    for col, values in changed.items():
        out[col] = values
    return out


def validate_new_array(estimator, X) -> np.ndarray:
    """A 2-D numeric array for ``predict`` on array input (fit on arrays): numbers
    written as text are converted; errors are :class:`~sklmixed.exceptions.DataError`."""
    if isinstance(X, (list, tuple, np.ndarray)):
        arr = np.asarray(X)
        # scikit-learn refuses str arrays outright (object arrays it converts itself)
        if arr.dtype.kind in "US":
            try:
                X = arr.astype(float)
            except ValueError as exc:
                raise DataError(f"X must be numeric, as in fit: {exc}") from exc
    return validate_array(estimator, X, reset=False)


def validate_array(estimator, X, y=None, **kwargs):
    """scikit-learn's ``validate_data`` with its errors as sklmixed's classes
    (messages unchanged, so that scikit-learn's checks still recognise them)."""
    if y is not None:  # named rows, and pd.NA, which scikit-learn's checks trip over
        check_no_missing(_as_array(y), "y")
    try:
        if y is None:
            return validate_data(estimator, X, **kwargs)
        return validate_data(estimator, X, y, **kwargs)
    except TypeError as exc:
        raise DataTypeError(str(exc)) from exc
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def term_values(df: pd.DataFrame, name: str) -> np.ndarray | None:
    """The values of grouping factor ``name`` in ``df``: one column (matched by its
    name as printed, so integer column labels work), tuples for an interaction
    ``"a & b"``, or None if the columns are not all there."""
    by_name = {str(c): c for c in df.columns}
    parts = [name] if name in by_name else name.split(" & ")
    if not all(p in by_name for p in parts):
        return None
    if len(parts) == 1:
        return df[by_name[parts[0]]].to_numpy(dtype=object)
    keys = zip(*(df[by_name[p]] for p in parts))
    out = np.empty(df.shape[0], dtype=object)
    out[:] = list(keys)
    return out


def warn_all_unseen(name: str, df: pd.DataFrame, levels) -> None:
    """Warn that no level of grouping factor ``name`` in ``df`` was seen in fit."""
    values = term_values(df, name)
    shown_new = [] if values is None else [str(v) for v in pd.unique(values)[:3]]
    shown_fit = [str(v) for v in list(levels)[:3]]
    warnings.warn(
        f"none of the levels of grouping factor {name!r} in the new data was seen in "
        f"fit (new: {shown_new}, fit: {shown_fit}, ...): every row gets the population "
        "prediction for this factor. Expected for held-out groups (GroupKFold; filter "
        "UnseenLevelsWarning); otherwise check whether the codes changed type or "
        "spelling since fit",
        UnseenLevelsWarning,
        stacklevel=user_stacklevel(),
    )
