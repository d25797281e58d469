"""Likelihood-ratio tests of nested models (MixedModels.jl's ``likelihoodratiotest``,
lme4's ``anova`` of several fits)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from sklmixed.exceptions import ConvergenceWarning, InferenceError, user_stacklevel

# Relative size of a singular value of the column-scaled matrix below which a
# direction counts as absent: the tolerance of the fit's own rank test.
_RANK_TOL = 1e-8


def _rank(M: np.ndarray) -> int:
    """Numerical rank of M after scaling its columns to unit length."""
    if M.shape[1] == 0:
        return 0
    norms = np.sqrt(np.einsum("ij,ij->j", M, M))
    norms[norms == 0] = 1.0
    r = np.linalg.qr(M / norms, mode="r")  # same singular values as M, and small
    s = np.linalg.svd(r, compute_uv=False)
    return int(np.sum(s > _RANK_TOL * max(1.0, s[0] if s.size else 1.0)))


def _spans(big: np.ndarray, small: np.ndarray, big_names, small_names) -> bool:
    """Whether the columns of ``small`` lie in the column space of ``big``.

    A model fitted out of core keeps no rows: then by name (each of small's columns
    is one of big's), which catches fewer non-nested pairs (a column that is a
    combination of others under another name)."""
    if big.shape[0] != small.shape[0] or big.shape[0] == 0:
        return set(small_names) <= set(big_names)
    return _rank(np.hstack((big, small))) == _rank(big)


def _label(i: int, model) -> str:
    return f"model {i + 1} ({model.result_.formula})"


def _response_and_weights(model):
    """The response the model was fitted to (on the data's scale), its prior
    weights (None: all 1) and its offset (None: zero). Models with different
    offsets may be compared (an offset against the same term with a free
    coefficient tests that coefficient against 1)."""
    problem = model.problem_
    if model.result_.is_glmm:
        offset = problem.offset if np.any(problem.offset != 0) else None
        return problem.y, problem.pw, offset
    # an LMM's problem holds y - offset, centred and scaled internally: compare
    # the response as it was given
    return problem.y_data, problem.weights, problem.offset


def _response_moments(model) -> tuple[float, ...]:
    """The weighted moments of y - offset that a fit out of core keeps (see
    ``ColumnMoments.summary``), computed from the rows where they are kept."""
    from sklmixed._core._scaling import ColumnMoments

    kept = getattr(model.problem_, "response_moments", None)
    if kept is not None:
        return tuple(kept)
    y, w, o = _response_and_weights(model)
    if y is None:
        raise InferenceError(
            f"{type(model).__name__} keeps neither its rows nor a summary of its "
            "response: a likelihood-ratio test cannot check that the models share data"
        )
    y = np.asarray(y, dtype=float) - (0.0 if o is None else np.asarray(o, dtype=float))
    return ColumnMoments(y[:, None], w).summary(0)


def _check_same_data(models) -> None:
    ref = models[0]
    y0, w0, o0 = _response_and_weights(ref)
    if y0 is None or any(_response_and_weights(m)[0] is None for m in models[1:]):
        # a model fitted out of core keeps no rows: compare the responses' moments
        # (and the counts, below); sums over chunks round differently from sums
        # over rows, hence the relative tolerance
        m0 = _response_moments(ref)
        for i, m in enumerate(models[1:], start=1):
            if m.nobs_ != ref.nobs_ or not np.allclose(
                _response_moments(m), m0, rtol=1e-9, atol=0.0
            ):
                raise InferenceError(
                    f"{_label(i, m)} and {_label(0, ref)} were fitted to different "
                    "responses or weights: a likelihood-ratio test compares models of "
                    "the same data"
                )
        return
    w0 = np.ones_like(y0) if w0 is None else w0
    for i, m in enumerate(models[1:], start=1):
        if m.nobs_ != ref.nobs_:
            raise InferenceError(
                f"{_label(i, m)} was fitted to {m.nobs_} observations and "
                f"{_label(0, ref)} to {ref.nobs_}: a likelihood-ratio test compares "
                "models of the same data"
            )
        y, w, o = _response_and_weights(m)
        w = np.ones_like(y) if w is None else w
        # an LMM's response with an offset is recovered as (y - offset) + offset,
        # equal to y up to the rounding of the larger of the two
        tol = 0.0
        if o is not None or o0 is not None:
            big = [np.max(np.abs(v), initial=0.0) for v in (y0, o, o0) if v is not None]
            tol = 4 * np.finfo(float).eps * max(big)
        if y.shape != y0.shape or not np.allclose(y, y0, rtol=0.0, atol=tol):
            raise InferenceError(
                f"{_label(i, m)} and {_label(0, ref)} were fitted to different responses: "
                "a likelihood-ratio test compares models of the same data"
            )
        if not np.array_equal(w, w0):
            raise InferenceError(
                f"{_label(i, m)} and {_label(0, ref)} were fitted with different "
                "sample_weight: a likelihood-ratio test compares models of the same data"
            )


def _check_kinds(models) -> None:
    glmm = [m.result_.is_glmm for m in models]
    if any(glmm) and not all(glmm):
        i = glmm.index(not glmm[0])
        raise InferenceError(
            f"{_label(0, models[0])} and {_label(i, models[i])} mix a linear and a "
            "generalized linear mixed model, whose likelihoods are not comparable"
        )
    if glmm[0]:
        fam0 = (models[0].result_.family, models[0].result_.link)
        for i, m in enumerate(models[1:], start=1):
            fam = (m.result_.family, m.result_.link)
            if fam != fam0:
                raise InferenceError(
                    f"{_label(i, m)} ({fam[0]}, {fam[1]} link) and {_label(0, models[0])} "
                    f"({fam0[0]}, {fam0[1]} link) differ in family or link: not nested"
                )
        return
    reml = [bool(m.result_.reml) for m in models]
    if any(reml) and not all(reml):
        i = reml.index(not reml[0])
        raise InferenceError(
            f"{_label(0, models[0])} and {_label(i, models[i])} mix REML and maximum "
            "likelihood fits, whose criteria are not comparable; fit every model with "
            "reml=False"
        )
    if all(reml):
        ref = models[0]
        for i, m in enumerate(models[1:], start=1):
            same = list(m.coef_names_) == list(ref.coef_names_) and np.array_equal(
                m.design_.X, ref.design_.X
            )
            if not same:
                raise InferenceError(
                    f"{_label(i, m)} and {_label(0, ref)} are REML fits with different "
                    "fixed effects: REML criteria of different fixed-effects models are "
                    "not comparable; fit the models with reml=False (lme4's anova refits "
                    "them by maximum likelihood)"
                )


def _check_nested(small, big, i: int, j: int) -> None:
    """Necessary conditions for ``small`` to be nested in ``big``: its fixed-effects
    columns span a subspace of big's, and each of its random-effects terms has a
    term of big on the same grouping factor whose columns span at least as much."""
    if not _spans(big.design_.X, small.design_.X, big.coef_names_, small.coef_names_):
        raise InferenceError(
            f"the fixed effects of {_label(i, small)} are not nested in those of "
            f"{_label(j, big)} (some of its columns are not combinations of the larger "
            "model's): the models are not nested"
        )
    terms = {t.name: t for t in big.design_.reterms}
    for t in small.design_.reterms:
        other = terms.get(t.name)
        if other is None:
            raise InferenceError(
                f"the grouping factor {t.name!r} of {_label(i, small)} has no random effects "
                f"in {_label(j, big)}: the models are not nested"
            )
        if not _spans(other.z, t.z, other.cnames, t.cnames):
            raise InferenceError(
                f"grouping factor {t.name!r}: the random effects [{', '.join(map(str, t.cnames))}] "
                f"of {_label(i, small)} are not within those "
                f"[{', '.join(map(str, other.cnames))}] of {_label(j, big)}: the models are "
                "not nested"
            )


def lrtest(*models) -> pd.DataFrame:
    """Likelihood-ratio tests of nested mixed models fitted to the same data.

    Each model is compared with the next smaller one: ``chisq`` is the drop in
    the deviance, ``df`` the number of parameters added, ``p`` the upper tail of
    the chi-squared distribution (MixedModels.jl's ``likelihoodratiotest``,
    lme4's ``anova(m0, m1, ...)``).

    Parameters
    ----------
    *models : fitted MixedLMRegressor, MixedGLMRegressor or MixedGLMClassifier
        At least two, of one kind, fitted to the same response (and weights),
        in any order: they are sorted by the number of parameters.

    Returns
    -------
    DataFrame
        One row per model, from the fewest parameters: ``formula``, ``dof`` (the
        number of parameters), ``deviance`` (the models' ``objective_``: -2 log L,
        the REML criterion, or the GLMM deviance), ``chisq``, ``df`` and ``p``
        (NaN in the first row). The index is each model's position in the call
        (1-based).

    Raises
    ------
    InferenceError
        Fewer than two models; models of different data, responses or weights; a
        mix of LMMs and GLMMs (or of families, links, REML and ML); REML fits whose
        fixed effects differ (fit with ``reml=False``); models with equal numbers
        of parameters or that are visibly not nested.

    Notes
    -----
    A test of a variance component against zero is on the boundary of the
    parameter space, where the chi-squared p-value is conservative (about twice
    too large for one variance).

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset, lrtest
    >>> df = load_dataset("sleepstudy")
    >>> m0 = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(df)
    >>> m1 = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    >>> lrtest(m0, m1)[["dof", "deviance", "chisq", "df"]].round(4)
           dof   deviance    chisq   df
    model
    1        4  1794.0786      NaN  NaN
    2        6  1751.9393  42.1393  2.0
    """
    if len(models) < 2:
        raise InferenceError(f"lrtest needs at least two fitted models; got {len(models)}")
    for i, m in enumerate(models):
        if not hasattr(m, "result_"):
            raise InferenceError(
                f"argument {i + 1} of lrtest ({type(m).__name__}) is not a fitted mixed model"
            )
    fits = list(models)
    _check_kinds(fits)
    _check_same_data(fits)
    order = sorted(range(len(fits)), key=lambda i: fits[i].dof_)  # stable
    for a, b in zip(order, order[1:]):
        if fits[a].dof_ == fits[b].dof_:
            raise InferenceError(
                f"{_label(a, fits[a])} and {_label(b, fits[b])} both have "
                f"{fits[a].dof_} parameters: nested models must differ in their number "
                "of parameters"
            )
        _check_nested(fits[a], fits[b], a, b)

    dof = np.array([fits[i].dof_ for i in order], dtype=np.int64)
    dev = np.array([fits[i].objective_ for i in order], dtype=float)
    drop = dev[:-1] - dev[1:]
    if np.any(drop < 0):
        k = int(np.argmin(drop))
        warnings.warn(
            f"{_label(order[k + 1], fits[order[k + 1]])} has a higher deviance than the "
            f"smaller {_label(order[k], fits[order[k]])}: the larger fit may not have "
            "reached its optimum; its chi-squared statistic is set to 0",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    chisq = np.concatenate(([np.nan], np.maximum(drop, 0.0)))
    df = np.concatenate(([np.nan], np.diff(dof).astype(float)))
    p = np.concatenate(([np.nan], stats.chi2.sf(chisq[1:], df[1:])))
    return pd.DataFrame(
        {
            "formula": [fits[i].result_.formula for i in order],
            "dof": dof,
            "deviance": dev,
            "chisq": chisq,
            "df": df,
            "p": p,
        },
        index=pd.Index([i + 1 for i in order], name="model"),
    )
