"""Linear mixed models fitted from data read in chunks (out of core).

An LMM's likelihood sees its data only through the cross-products
A = [Z X y]' W [Z X y] (``sklmixed._core._crossprod``), so a fit needs the rows
only to accumulate A, chunk by chunk, and never holds more than one chunk and
A. Three passes over a :class:`~sklmixed.estimators._sources.ChunkSource`,
each a map over chunks and a combine of their results:

1. checks and levels: rows, missing values per used column (the same error as
   for a DataFrame, with the count over all chunks), the distinct levels of
   grouping factors and categorical columns, so that every chunk's model
   matrices have the columns and levels of the whole data;
2. moments: the weighted means and spreads of the model-matrix columns (what the
   internal centring and scaling decides from, ``_core._scaling``) and the R of
   a QR decomposition of sqrt(w) X, stacked chunk by chunk (the singular values
   of R's columns are X's, which is what decides the estimable columns);
3. cross-products of the internal columns, summed.

The optimizer then works on A alone, as for data in memory. A response that the
model explains almost exactly is centred in a fourth pass, as the in-memory
fit centres it. What needs the rows afterwards (fitted values, residuals,
leverage, simulation, bootstrap) raises ``RowsNotAvailableError``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sklmixed._core._crossprod import CrossProducts
from sklmixed._core._lmm import LMMProblem, estimable_columns, order_terms
from sklmixed._core._reterm import ReTerm
from sklmixed._core._scaling import (
    ColumnMoments,
    Scaling,
    recentre_needed,
    recentred_scaling,
    scaling_from_columns,
)
from sklmixed.estimators._sources import ChunkSource
from sklmixed.exceptions import DataError, ParameterError, UnseenLevelsWarning, user_stacklevel
from sklmixed.formula import Design
from sklmixed.formula._chunks import (
    ChunkCheck,
    FormulaColumns,
    build_chunked_design,
    chunk_terms,
    collect_levels,
    combine_levels,
    formula_columns,
)
from sklmixed.formula._design import check_columns_available, missing_values_error

# Rows of the first chunk that the design is built from (with one row per level)
_SAMPLE_ROWS = 1024


@dataclass
class ChunkedData:
    """Everything a pass needs to turn a chunk into model-matrix rows.

    Picklable (a distributed source ships it to its workers with the map
    functions).
    """

    design: Design
    terms: list[ReTerm]  # the design's stubs, in the core's order
    numeric_response: Callable[[Any], np.ndarray]
    weight_column: Any = None
    offset_column: Any = None

    def rows(
        self, chunk: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[ReTerm]]:
        """(X, y - offset, weights, terms with the chunk's rows) of one chunk."""
        X, parts = self.design.transform(chunk)
        y = self.numeric_response(self.design.response(chunk))
        offset = self.design.offset_for(chunk)
        if self.offset_column is not None:
            extra = chunk[self.offset_column].to_numpy(dtype=float)
            offset = extra if offset is None else offset + extra
        if offset is not None:
            y = y - offset
        w = None
        if self.weight_column is not None:
            w = chunk[self.weight_column].to_numpy(dtype=float)
            if np.any(w < 0):
                raise DataError(
                    f"sample_weight column {self.weight_column!r} contains negative values"
                )
        return X, y, w, chunk_terms(self.design, parts, self.terms)


@dataclass
class _Moments:
    moments: ColumnMoments
    R: np.ndarray  # R of sqrt(w) X, at most p rows
    nobs: int
    ymin: float  # over rows of positive weight
    ymax: float


def _qr_r(M: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.qr(M, mode="r")) if M.shape[0] else M


class _MomentsPass:
    def __init__(self, data: ChunkedData) -> None:
        self.data = data

    def __call__(self, chunk: pd.DataFrame) -> _Moments:
        X, y, w, terms = self.data.rows(chunk)
        cols = np.column_stack([X, y] + [t.z for t in terms])
        Xw = X if w is None else X * np.sqrt(w)[:, None]
        ypos = y if w is None else y[w > 0]
        return _Moments(
            ColumnMoments(cols, w),
            _qr_r(Xw),
            int(ypos.shape[0]),
            float(ypos.min()) if ypos.shape[0] else np.inf,
            float(ypos.max()) if ypos.shape[0] else -np.inf,
        )


def _combine_moments(a: _Moments, b: _Moments) -> _Moments:
    return _Moments(
        a.moments.combine(b.moments),
        _qr_r(np.vstack([a.R, b.R])),
        a.nobs + b.nobs,
        min(a.ymin, b.ymin),
        max(a.ymax, b.ymax),
    )


class _CrossPass:
    def __init__(self, data: ChunkedData, scaling: Scaling, keep: np.ndarray) -> None:
        self.data, self.scaling, self.keep = data, scaling, keep

    def __call__(self, chunk: pd.DataFrame) -> CrossProducts:
        X, y, w, terms = self.data.rows(chunk)
        s = self.scaling
        Xi = np.asarray(s.apply_x(X))[:, self.keep]
        return CrossProducts.from_rows(Xi, s.apply_y(y), terms, s.apply_terms(terms), w)


def _combine_cross(a: CrossProducts, b: CrossProducts) -> CrossProducts:
    return a.combine(b)


class _LevelsPass:
    def __init__(self, columns: FormulaColumns) -> None:
        self.columns = columns

    def __call__(self, chunk: pd.DataFrame) -> ChunkCheck:
        return collect_levels(chunk, self.columns)


def _first(chunk: pd.DataFrame) -> pd.DataFrame:
    # the design needs the columns' types, not the rows (the levels come from the
    # first pass): a head, so that a large partition does not travel to the client
    return chunk.head(_SAMPLE_ROWS)


def _check_levels(check: ChunkCheck, columns: FormulaColumns) -> None:
    if check.n == 0:
        raise DataError("cannot fit a model to empty data (0 rows)")
    for col in columns.used:
        if check.missing[col]:
            raise missing_values_error(col, check.missing[col])


def prepare(
    source: ChunkSource,
    formula: str | None,
    contrasts: dict[Any, Any] | None,
    sample_weight: Any,
    offset: Any,
    numeric_response: Callable[[Any], np.ndarray],
) -> tuple[ChunkSource, ChunkedData, pd.DataFrame]:
    """Pass 1 (checks and levels): the source restricted to the columns used,
    what turns its chunks into rows, and the first chunk (for column types)."""
    if formula is None:
        raise ParameterError(
            "a fit out of core needs a formula (the columns of a formula-free model "
            "are those of an in-memory table)"
        )
    for name, value in (("sample_weight", sample_weight), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise ParameterError(
                f"out of core, {name} must be the name of a column of the data; got "
                f"{type(value).__name__}"
            )
    columns = formula_columns(formula, contrasts, with_response=True)
    needed = list(columns.used)
    for extra in (sample_weight, offset):
        if extra is not None and extra not in needed:
            needed.append(extra)
    check_columns_available(source.columns, needed)
    columns.used = needed
    source = source.select(needed)
    check = source.map_reduce(_LevelsPass(columns), combine_levels)
    if check is None:
        raise DataError("cannot fit a model to empty data (0 rows)")
    _check_levels(check, columns)
    sample = next(iter(source.map_chunks(_first)))
    design = build_chunked_design(formula, sample, check, contrasts, with_response=True)
    data = ChunkedData(
        design, order_terms(list(design.reterms)), numeric_response, sample_weight, offset
    )
    return source, data, sample


def fit_problem(source: ChunkSource, data: ChunkedData, reml: bool) -> tuple[LMMProblem, int]:
    """Passes 2 and 3: the problem (cross-products only) and the rows seen."""
    design = data.design
    m = source.map_reduce(_MomentsPass(data), _combine_moments)
    if m.nobs == 0:
        raise DataError(
            "sample_weight is zero for every observation: Sample weights must "
            "contain at least one non-zero number"
        )
    if m.nobs > 1 and m.ymin == m.ymax:
        raise DataError(f"the response is constant ({m.ymin:g}); there is nothing to model")
    for term in design.reterms:
        if term.nlevels >= m.nobs:
            raise DataError(
                f"grouping factor {term.name!r} has as many levels ({term.nlevels}) as "
                "observations: its variance cannot be told apart from the residual's"
            )
    p = len(design.coef_names)
    cols = m.moments.summarize()
    scaling = scaling_from_columns(cols, p, True, data.terms, design.coef_names)
    R = np.zeros((p, p))
    R[: m.R.shape[0]] = m.R  # fewer rows than columns: zero rows keep the rank
    keep = estimable_columns(R if scaling.T is None else R @ scaling.T)
    ycol = cols[p]

    def recentre(current: Scaling, yty: float, r2: float) -> tuple[Scaling, CrossProducts] | None:
        if not recentre_needed(current, yty, r2):
            return None
        new = recentred_scaling(current, ycol)
        if new is None:
            return None
        return new, source.map_reduce(_CrossPass(data, new, keep), _combine_cross)

    cp = source.map_reduce(_CrossPass(data, scaling, keep), _combine_cross)
    problem = LMMProblem.from_crossproducts(
        cp, data.terms, scaling, keep, p, reml, recentre=recentre
    )
    # what a likelihood-ratio test compares in place of the rows: the weighted
    # moments of y - offset (see inference._lrtest)
    problem.response_moments = m.moments.summary(p)  # type: ignore[attr-defined]
    return problem, int(m.moments.n)


def record_features(est: Any, source: ChunkSource, sample: pd.DataFrame, design: Design) -> None:
    """The fitted feature attributes of a fit read from ``source`` (scikit-learn's
    ``n_features_in_`` and ``feature_names_in_``; the column kinds from a sample)."""
    from sklmixed.estimators._checks import column_kinds

    names = source.columns
    est.n_features_in_ = len(names)
    if all(isinstance(c, str) for c in names):
        est.feature_names_in_ = np.asarray(names, dtype=object)
    elif hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    est._column_kinds = column_kinds(sample, design.used_columns)


def fit_lmm_out_of_core(
    est: Any, source: ChunkSource, y: Any, sample_weight: Any, offset: Any
) -> Any:
    """``MixedLMRegressor.fit`` for a chunk source: the same fitted attributes
    as a fit in memory, from the data's cross-products."""
    from sklmixed._optim import fit_lmm
    from sklmixed.estimators._base import optimize_lmm, warn_rank_deficient
    from sklmixed.estimators._lmm import _numeric_response

    if y is not None:
        raise ParameterError(
            "out of core, the response comes from the formula's left-hand side; y must be None"
        )
    source, data, sample = prepare(
        source, est.formula, est.contrasts, sample_weight, offset, _numeric_response
    )
    design = data.design
    if not design.has_response:
        raise DataError("the formula has no response (left of '~') and y was not given")
    problem, _ = fit_problem(source, data, est.reml)
    warn_rank_deficient(problem, design)
    theta0, _ = est._warm_start(problem, design.coef_names)
    result, b, u = optimize_lmm(est, problem, design, theta0, fit_lmm)
    record_features(est, source, sample, design)
    est._set_fitted(result, design, problem, b, u, np.zeros(0))
    est._problem, est._fit_weights, est._fit_reml = problem, None, est.reml
    est._fit_offset = None
    est._offset_param = offset is not None
    est._out_of_core = True
    problem.release_source()  # a closure over the source: not kept (nor pickled)
    return est


def predict_chunks(est: Any, source: ChunkSource, return_std: bool, offset: Any) -> Any:
    """``predict`` on data read in chunks: one array for all rows, in order
    (``offset``: None, or the name of a column holding the rows' offsets)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "coef_")
    if offset is not None and not isinstance(offset, str):
        raise ParameterError(
            f"out of core, offset must be the name of a column of the data; got "
            f"{type(offset).__name__}"
        )
    needed = list(est.design_.predictor_columns)
    if offset is not None and offset not in needed:
        needed.append(offset)
    check_columns_available(source.columns, needed)
    parts, unseen = [], None
    for out, chunk_unseen in source.select(needed).map_chunks(_Predict(est, return_std, offset)):
        parts.append(out)
        # a factor none of whose levels was seen in fit: in every chunk, not in one
        unseen = (
            chunk_unseen if unseen is None else {k: unseen[k] for k in unseen if k in chunk_unseen}
        )
    for warning in (unseen or {}).values():
        warnings.warn(warning.message, warning.category, stacklevel=user_stacklevel())
    if not parts:
        empty = np.zeros(0)
        return (empty, empty.copy()) if return_std else empty
    if return_std:
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
    return np.concatenate(parts)


class _Predict:
    def __init__(self, est: Any, return_std: bool, offset: Any) -> None:
        self.est, self.return_std, self.offset = est, return_std, offset

    def __call__(self, chunk: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
        """The chunk's predictions, and its UnseenLevelsWarnings by factor (the
        caller warns for the factors unseen in every chunk); other warnings pass."""
        extra = None if self.offset is None else chunk[self.offset].to_numpy(dtype=float)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self.est.predict(chunk, return_std=self.return_std, offset=extra)
        unseen: dict[str, Any] = {}
        for w in caught:
            factor = _UNSEEN.search(str(w.message)) if w.category is UnseenLevelsWarning else None
            if factor is not None:
                unseen.setdefault(factor.group(1), w)
            else:
                warnings.warn(w.message, w.category, stacklevel=user_stacklevel())
        return out, unseen


_UNSEEN = re.compile(r"grouping factor '(.*?)' in the new data")


def score_target_chunks(est: Any, source: ChunkSource) -> np.ndarray:
    """The formula's response of every chunk, in order (for ``score``)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "design_")
    design = est.design_
    if not design.has_response:
        raise DataError(f"{type(est).__name__}.score needs y: the formula has no response")
    needed = list(design.used_columns)
    check_columns_available(source.columns, needed)
    parts = list(source.select(needed).map_chunks(design.response))
    return np.concatenate(parts) if parts else np.zeros(0)
