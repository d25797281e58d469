"""Scorers for cross-validating mixed models: held-out predictive log-likelihoods.

Each scorer is a callable ``scorer(estimator, X, y=None, sample_weight=None)``
returning a float, usable as ``GridSearchCV(..., scoring=marginal_loglik)``, in
``cross_validate`` and ``cross_val_score``, with an sklmixed estimator or a
``Pipeline`` that ends in one. With ``y=None`` the response is the column named
on the left of the model's formula (X is the data frame, as in ``fit``).

Why not R^2? With ``GroupKFold`` every held-out group is new, its random effects
are zero in ``predict``, and every random-effects structure predicts (almost) the
same means: R^2 and MSE cannot tell them apart. What a structure does change is
the *distribution* of a new group's observations (a random slope makes a
subject's observations vary and covary more at later days), which is what the
marginal log-likelihood of the held-out rows measures.

===========================  ===================================================
``marginal_loglik``          mean log predictive density per held-out row, the
                             random effects integrated out (higher is better)
``conditional_loglik``       mean log density per row given the conditional
                             modes (zero for new levels; higher is better)
``marginal_deviance``        -2 x the sum of the marginal log density (lower is
                             better)
``conditional_deviance``     -2 x the sum of the conditional log density (lower
                             is better)
===========================  ===================================================

scikit-learn maximizes scores: choose with a log-likelihood scorer and report the
deviances (in ``cross_validate``, or as extra metrics with ``refit=`` naming the
log-likelihood).

The scorers declare that they consume ``sample_weight`` (prior weights are part
of a mixed model: the residual variance of a weighted LMM row is sigma^2 / w, the
number of trials of a binomial row is its weight), so with metadata routing
enabled the weights passed to ``GridSearchCV.fit`` or ``cross_validate(params=)``
reach them without ``set_score_request``; rows of weight zero are left out. They
consume ``offset`` the same way: the held-out rows' offsets of a model fitted with
the ``offset`` parameter (the formula's ``offset(expr)`` terms are evaluated on the
held-out rows by themselves).

Examples
--------
>>> from sklearn.model_selection import GridSearchCV, GroupKFold
>>> from sklmixed import MixedLMRegressor, load_dataset
>>> from sklmixed.scorers import marginal_loglik
>>> df = load_dataset("sleepstudy")
>>> search = GridSearchCV(
...     MixedLMRegressor(),
...     {"formula": ["reaction ~ 1 + days + (1|subj)",
...                  "reaction ~ 1 + days + (1 + days|subj)"]},
...     scoring=marginal_loglik, cv=GroupKFold(5),
... ).fit(df, groups=df["subj"])
>>> search.best_params_["formula"]
'reaction ~ 1 + days + (1 + days|subj)'
"""

from __future__ import annotations

import functools

from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import check_is_fitted

from sklmixed.estimators import _predictive
from sklmixed.estimators._base import MixedModelBase, as_frame
from sklmixed.exceptions import DataError

__all__ = [
    "conditional_deviance",
    "conditional_loglik",
    "marginal_deviance",
    "marginal_loglik",
]


class _Scorer:
    """A scorer function that declares (for metadata routing) that it consumes
    ``sample_weight`` and ``offset``, and pickles as a reference to its
    module-level name."""

    def __init__(self, func):
        functools.update_wrapper(self, func)
        self._func = func
        self._name: str = func.__name__

    def __call__(self, estimator, X, y=None, sample_weight=None, offset=None) -> float:
        return self._func(estimator, X, y, sample_weight, offset)

    def __repr__(self) -> str:
        return f"sklmixed.scorers.{self._name}"

    def __reduce__(self):
        return self._name

    def get_metadata_routing(self) -> MetadataRequest:
        request = MetadataRequest(owner=self._name)
        request.score.add_request(param="sample_weight", alias=True)
        request.score.add_request(param="offset", alias=True)
        return request

    def _accept_sample_weight(self) -> bool:  # scikit-learn's check without routing
        return True


def _final_step(estimator, X, scorer: str):
    """The sklmixed model at the end of ``estimator`` and the data it sees."""
    while isinstance(estimator, Pipeline):
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator.steps[-1][1]
    if not isinstance(estimator, MixedModelBase):
        raise TypeError(
            f"{scorer} scores sklmixed mixed models (MixedLMRegressor, MixedGLMRegressor, "
            "MixedGLMClassifier) or a Pipeline ending in one; got "
            f"{type(estimator).__name__}"
        )
    check_is_fitted(estimator, "result_")
    return estimator, X


def _response(model, Xt, X, y, scorer: str):
    """``y`` if given, else the formula's response column from the data."""
    if y is not None:
        return y
    if model.formula is None:
        raise DataError(
            f"{scorer}: y was not given and the model has no formula to name the "
            "response; pass y (GridSearchCV.fit(X, y), cross_validate(..., y=y))"
        )
    name = model.design_.response_name
    for frame in (Xt, X):
        try:
            df = as_frame(frame)
        except DataError:
            continue
        if name in df.columns:
            return df[name].to_numpy()
    raise DataError(
        f"{scorer}: y was not given and the data have no column {name!r} (the response "
        "of the formula); pass y or include the column"
    )


def _evaluate(which, scorer: str, estimator, X, y, sample_weight, offset) -> tuple[float, int]:
    model, Xt = _final_step(estimator, X, scorer)
    y = _response(model, Xt, X, y, scorer)
    return which(model, Xt, y, sample_weight, offset)


@_Scorer
def marginal_loglik(estimator, X, y=None, sample_weight=None, offset=None) -> float:
    """Mean log predictive density of the held-out rows, random effects integrated out.

    Answers: *how probable are new data under the fitted model, as a whole?* For
    groups not seen in fit (every group, with ``GroupKFold``) the random effects
    are integrated out under the fitted covariance, so the score rewards a
    structure that describes how a new group's observations vary and covary (a
    random slope: spread growing with the covariate); this is the score for
    choosing a random-effects structure that generalizes to new groups. For
    groups seen in fit, their random effects are integrated out under their
    conditional distribution given the training data (mode and ``condvar``).

    The held-out rows' joint density, divided by their number. Linear mixed
    models: exactly the multivariate normal density with covariance
    ``Z_new C Z_new' + sigma^2 W^-1``, C block diagonal with ``sigma^2 lambda
    lambda'`` for each unseen level and the level's conditional covariance for
    each seen one; rows sharing a level of any random term (crossed terms
    included) are correlated. Generalized linear mixed models: the integral over
    those random effects by the Laplace approximation (at the joint mode, the
    Hessian from the GLM working weights, as in the fit), or by adaptive
    Gauss-Hermite quadrature with the fit's ``nagq`` nodes (the negative
    binomial, Gamma and inverse Gaussian at their fitted shape or dispersion,
    with the observed information, as they are fitted). Approximations in
    both: the fixed effects and covariance parameters are plugged in, and seen
    levels' random effects are taken as independent of each other and of beta
    (their posterior correlations, non-zero for crossed terms, are ignored). The
    estimator's ``new_levels`` does not apply: unseen levels are integrated, not
    refused.

    Parameters
    ----------
    estimator : fitted MixedLMRegressor, MixedGLMRegressor or MixedGLMClassifier
        Or a fitted Pipeline ending in one (the earlier steps transform X).
    X : DataFrame
        Held-out rows.
    y : array-like of shape (n_samples,), optional
        Their response; by default the formula's response column of X.
    sample_weight : array-like of shape (n_samples,), optional
        Prior weights as in ``fit`` (LMM precision weights, binomial trials).
    offset : array-like of shape (n_samples,), optional
        The held-out rows' offsets, for a model fitted with the ``offset``
        parameter (required then); they add to the formula's offsets.

    Returns
    -------
    float
        Higher is better.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> from sklmixed.scorers import marginal_loglik
    >>> df = load_dataset("sleepstudy")
    >>> train, test = df[df["subj"] != "S308"], df[df["subj"] == "S308"]
    >>> for re in ["(1|subj)", "(1 + days|subj)"]:  # how well each predicts a new subject
    ...     m = MixedLMRegressor(formula=f"reaction ~ 1 + days + {re}").fit(train)
    ...     print(re, round(marginal_loglik(m, test), 3))
    (1|subj) -6.329
    (1 + days|subj) -6.136
    """
    total, n = _evaluate(
        _predictive.marginal_loglik, "marginal_loglik", estimator, X, y, sample_weight, offset
    )
    return total / n


@_Scorer
def conditional_loglik(estimator, X, y=None, sample_weight=None, offset=None) -> float:
    """Mean log density of the held-out rows given the conditional modes.

    Answers: *how well do the model's predictions, with its residual scale, fit
    new observations?* Each row is scored independently under the family's
    distribution at ``predict``'s mean: fixed effects plus the conditional modes
    of levels seen in fit, zero for unseen levels (or an error, as the
    estimator's ``new_levels`` says); an LMM row has variance sigma^2 / w. For new
    observations of known groups (folds within groups) this rewards structures
    whose modes predict well; for new groups it scores only the fixed effects and
    the residual scale, and so cannot credit random effects.

    Parameters
    ----------
    estimator : fitted MixedLMRegressor, MixedGLMRegressor or MixedGLMClassifier
        Or a fitted Pipeline ending in one (the earlier steps transform X).
    X : DataFrame
        Held-out rows.
    y : array-like of shape (n_samples,), optional
        Their response; by default the formula's response column of X.
    sample_weight : array-like of shape (n_samples,), optional
        Prior weights as in ``fit`` (LMM precision weights, binomial trials).
    offset : array-like of shape (n_samples,), optional
        The held-out rows' offsets, for a model fitted with the ``offset``
        parameter (required then); they add to the formula's offsets.

    Returns
    -------
    float
        Higher is better.
    """
    total, n = _evaluate(
        _predictive.conditional_loglik, "conditional_loglik", estimator, X, y, sample_weight, offset
    )
    return total / n


@_Scorer
def marginal_deviance(estimator, X, y=None, sample_weight=None, offset=None) -> float:
    """-2 x the summed marginal log predictive density of the held-out rows.

    The question of ``marginal_loglik`` on the deviance scale (that of
    ``objective_``, AIC and the likelihood-ratio test), summed rather than
    averaged. Lower is better: report it, but choose with
    ``marginal_loglik``, since scikit-learn's searches maximize.

    Parameters
    ----------
    estimator : fitted MixedLMRegressor, MixedGLMRegressor or MixedGLMClassifier
        Or a fitted Pipeline ending in one (the earlier steps transform X).
    X : DataFrame
        Held-out rows.
    y : array-like of shape (n_samples,), optional
        Their response; by default the formula's response column of X.
    sample_weight : array-like of shape (n_samples,), optional
        Prior weights as in ``fit`` (LMM precision weights, binomial trials).
    offset : array-like of shape (n_samples,), optional
        The held-out rows' offsets, for a model fitted with the ``offset``
        parameter (required then); they add to the formula's offsets.

    Returns
    -------
    float
        Lower is better.
    """
    total, _ = _evaluate(
        _predictive.marginal_loglik, "marginal_deviance", estimator, X, y, sample_weight, offset
    )
    return -2.0 * total


@_Scorer
def conditional_deviance(estimator, X, y=None, sample_weight=None, offset=None) -> float:
    """-2 x the summed log density of the held-out rows given the conditional modes.

    The question of ``conditional_loglik`` on the deviance scale, summed.
    Lower is better (choose with ``conditional_loglik``).

    Parameters
    ----------
    estimator : fitted MixedLMRegressor, MixedGLMRegressor or MixedGLMClassifier
        Or a fitted Pipeline ending in one (the earlier steps transform X).
    X : DataFrame
        Held-out rows.
    y : array-like of shape (n_samples,), optional
        Their response; by default the formula's response column of X.
    sample_weight : array-like of shape (n_samples,), optional
        Prior weights as in ``fit`` (LMM precision weights, binomial trials).
    offset : array-like of shape (n_samples,), optional
        The held-out rows' offsets, for a model fitted with the ``offset``
        parameter (required then); they add to the formula's offsets.

    Returns
    -------
    float
        Lower is better.
    """
    total, _ = _evaluate(
        _predictive.conditional_loglik,
        "conditional_deviance",
        estimator,
        X,
        y,
        sample_weight,
        offset,
    )
    return -2.0 * total
