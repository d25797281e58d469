"""GLMMs fitted from data read in chunks (a Dask DataFrame, a pyarrow Dataset).

The passes of an out-of-core LMM fit (``_outofcore``: checks and levels, then
the moments that decide the internal centring and scaling and the estimable
columns) and, for a classifier, one more for the classes; then PIRLS, each of
whose iterations is one map-reduce over the chunks
(``sklmixed._core._glmm_chunks``). A source that can keep its chunks' model
matrices where they are (a Dask cluster's workers: :meth:`DaskSource.persist`)
builds them once; any other source rebuilds them from its chunks on every
pass. Only levels, moments, cross-products and sums travel to the client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sklmixed._core._families import get_family, get_link
from sklmixed._core._glmm_chunks import ChunkedGLMMProblem, GLMMChunk, chunked_family_supported
from sklmixed._core._lmm import estimable_columns
from sklmixed._core._scaling import Scaling, scaling_from_columns
from sklmixed._optim import fit_glmm
from sklmixed.estimators._base import check_glmm_design, optimize_glmm, warn_separation
from sklmixed.estimators._checks import binary_labels, check_no_missing
from sklmixed.estimators._outofcore import (
    ChunkedData,
    _combine_moments,
    _MomentsPass,
    prepare,
    record_features,
)
from sklmixed.estimators._sources import ChunkSource
from sklmixed.exceptions import (
    DataError,
    ParameterError,
)

__all__ = ["fit_glmm_chunked"]


# ----------------------------------------------------------------- responses


class _Raw:
    """The response as given (the passes that only check and collect it)."""

    def __call__(self, response: Any) -> np.ndarray:
        return np.asarray(response)


class _Labels:
    """A classifier's labels as 0/1 for ``classes[1]`` (picklable for workers)."""

    def __init__(self, classes: np.ndarray) -> None:
        self.classes = classes

    def __call__(self, response: Any) -> np.ndarray:
        labels = np.asarray(response)
        check_no_missing(labels, "the response")
        return (labels == self.classes[1]).astype(float)


class _Numeric:
    """A regressor's response, checked against its family's support per chunk."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __call__(self, response: Any) -> np.ndarray:
        from sklmixed.estimators._glmm import _validate_glm_response

        return _validate_glm_response(response, self.family, None)


class _ResponsePass:
    """The distinct labels (classifier) or the range (regressor) of the response
    over the rows of positive weight, with the response's own checks."""

    def __init__(self, data: ChunkedData, labels: bool) -> None:
        self.data, self.labels = data, labels

    def __call__(self, chunk: pd.DataFrame) -> Any:
        values = self.data.numeric_response(self.data.design.response(chunk))
        if self.labels:
            check_no_missing(values, "the response")
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                raise DataError("the response has infinite values")
        if self.data.weight_column is not None:
            w = chunk[self.data.weight_column].to_numpy(dtype=float)
            values = values[w > 0]
        if self.labels:
            try:
                return np.unique(values)
            except TypeError as exc:  # labels of several types cannot be sorted
                kinds = sorted({type(v).__name__ for v in values.tolist()})
                raise DataError(
                    f"the labels must be of one type (all strings or all numbers); found {kinds}"
                ) from exc
        if values.shape[0] == 0:
            return (np.inf, -np.inf)
        return (float(values.min()), float(values.max()))


def _combine_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.union1d(a, b)
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in [*a.tolist(), *b.tolist()]})
        raise DataError(
            f"the labels must be of one type (all strings or all numbers); found {kinds}"
        ) from exc


def _combine_range(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (min(a[0], b[0]), max(a[1], b[1]))


# --------------------------------------------------------------- the chunks


class _ToChunk:
    """A chunk of the data as the GLMM core's rows (internal columns)."""

    def __init__(self, data: ChunkedData, scaling: Scaling, keep: np.ndarray) -> None:
        self.data, self.scaling, self.keep = data, scaling, keep

    def __call__(self, chunk: pd.DataFrame) -> GLMMChunk:
        data = self.data
        X, parts = data.design.transform(chunk)
        y = data.numeric_response(data.design.response(chunk))
        n = y.shape[0]
        offset = data.design.offset_for(chunk)
        if data.offset_column is not None:
            extra = chunk[data.offset_column].to_numpy(dtype=float)
            offset = extra if offset is None else offset + extra
        pw = np.ones(n)
        if data.weight_column is not None:
            pw = chunk[data.weight_column].to_numpy(dtype=float)
            if np.any(pw < 0):
                raise DataError(
                    f"sample_weight column {data.weight_column!r} contains negative values"
                )
        from sklmixed.formula._chunks import chunk_terms

        terms = chunk_terms(data.design, parts, data.terms)
        s = self.scaling
        return GLMMChunk(
            np.asarray(s.apply_x(X))[:, self.keep],
            y,
            pw,
            np.zeros(n) if offset is None else np.asarray(offset, dtype=float),
            terms,
            s.apply_terms(terms),
        )


class _Converted:
    """A source whose chunks become GLMM rows on every pass (nothing is kept)."""

    def __init__(self, source: ChunkSource, convert: _ToChunk) -> None:
        self.source, self.convert = source, convert

    def map_reduce(self, map_fn: Any, combine_fn: Any) -> Any:
        return self.source.map_reduce(_Then(self.convert, map_fn), combine_fn)


class _Then:
    def __init__(self, first: Any, then: Any) -> None:
        self.first, self.then = first, then

    def __call__(self, chunk: Any) -> Any:
        return self.then(self.first(chunk))


# ------------------------------------------------------------------ the fit


def fit_glmm_chunked(est: Any, source: ChunkSource, y: Any, sample_weight: Any, offset: Any) -> Any:
    """``MixedGLMClassifier.fit`` / ``MixedGLMRegressor.fit`` for a chunk source."""
    from sklmixed._results import glmm_result
    from sklmixed.estimators._base import warn_rank_deficient

    if y is not None:
        raise ParameterError(
            "for data read in chunks, the response comes from the formula's left-hand "
            "side; y must be None"
        )
    classifier = hasattr(est, "predict_proba")
    family = get_family(est.family)
    link = get_link(family, est.link)
    if not chunked_family_supported(family):
        raise ParameterError(
            f"the {family.name} family cannot be fitted from data read in chunks (its "
            "dispersion and Laplace approximation need the rows); bernoulli, binomial "
            "and poisson can. Bring the data into memory (.compute(), or "
            "dataset.to_table().to_pandas())"
        )
    source, data, sample = prepare(
        source, est.formula, est.contrasts, sample_weight, offset, _Raw()
    )
    design = data.design
    if not design.has_response:
        raise DataError("the formula has no response (left of '~') and y was not given")
    check_glmm_design(est, family, design.reterms, sample_weight is not None)
    # the response: classes, or the family's support and a range
    if classifier:
        found = source.map_reduce(_ResponsePass(data, True), _combine_labels)
        est.classes_, _ = binary_labels(found, None)
        data.numeric_response = _Labels(est.classes_)
    else:
        data.numeric_response = _Numeric(family.name)
        lo, hi = source.map_reduce(_ResponsePass(data, False), _combine_range)
        if lo == hi:
            raise DataError(f"the response is constant ({lo:g}); there is nothing to model")
    # moments: the internal centring and scaling of X and Z (not of the
    # response, on the family's scale) and the estimable columns
    m = source.map_reduce(_MomentsPass(data), _combine_moments)
    if m.nobs == 0:
        raise DataError(
            "sample_weight is zero for every observation: Sample weights must "
            "contain at least one non-zero number"
        )
    p = len(design.coef_names)
    cols = m.moments.summarize()
    cols = cols[:p] + cols[p + 1 :]  # without the response's column
    scaling = scaling_from_columns(cols, p, False, data.terms, design.coef_names)
    R = np.zeros((p, p))
    R[: m.R.shape[0]] = m.R
    keep = estimable_columns(R if scaling.T is None else R @ scaling.T)
    convert = _ToChunk(data, scaling, keep)
    persist = getattr(source, "persist", None)
    chunks = persist(convert) if persist is not None else _Converted(source, convert)
    problem = None
    try:
        problem = ChunkedGLMMProblem(
            chunks, data.terms, scaling, keep, p, family, link, nagq=est.nagq
        )
        warn_rank_deficient(problem.lmm, design)
        theta0, beta0 = est._warm_start(problem.lmm, design.coef_names)
        beta, params, optsum = optimize_glmm(est, problem, theta0, beta0, fit_glmm)
        theta = params[: problem.ntheta]
        result = glmm_result(problem, beta, theta, optsum, design.formula_text, design.coef_names)
        extreme = problem.extreme_means() if family.name in ("bernoulli", "binomial") else 0
    finally:
        release = getattr(chunks, "release", None)
        if release is not None:
            release()  # the model matrices kept on the workers
        if problem is not None:
            problem.chunks = None  # the fitted model keeps no reference to the data
            problem.forget_passes()
    b, u = problem.lmm.user_ranef(problem.state.u, theta)
    record_features(est, source, sample, design)
    est._set_fitted(result, design, problem.lmm, b, u, np.zeros(0))
    est._problem, est._fit_weights, est._fit_offset = problem, None, None
    est._offset_param = offset is not None
    est._out_of_core = True
    est.family_ = problem.family
    est.link_ = link
    warn_separation(est, extreme)
    return est
