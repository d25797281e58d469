"""MixedGLMClassifier and MixedGLMRegressor: generalized linear mixed models."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from sklmixed._core._families import FAMILIES, LINKS, get_family, get_link
from sklmixed._core._glmm import GLMMProblem
from sklmixed._optim import OPTIMIZERS, fit_glmm
from sklmixed._results import glmm_result
from sklmixed.estimators._base import (
    MixedModelBase,
    validate_sample_weight,
    warn_rank_deficient,
)
from sklmixed.exceptions import ConvergenceWarning, DataError, FitFailedError


class _GLMMBase(MixedModelBase):
    """Fitting shared by the GLMM classifier and regressor."""

    _allowed_families: tuple[str, ...] = tuple(FAMILIES)

    def _validate_params_glmm(self) -> None:
        self._validate_common()
        if self.family not in self._allowed_families:
            raise ValueError(
                f"unknown family {self.family!r} for {type(self).__name__}; choose one "
                f"of {list(self._allowed_families)}"
            )
        if self.link is not None and self.link not in LINKS:
            raise ValueError(f"unknown link {self.link!r}; choose one of {sorted(LINKS)}")
        get_link(get_family(self.family), self.link)  # family/link compatibility
        if (
            not isinstance(self.nagq, numbers.Integral)
            or isinstance(self.nagq, bool)
            or self.nagq < 1
        ):
            raise ValueError(f"nagq must be a positive integer; got {self.nagq!r}")
        if not isinstance(self.fast, (bool, np.bool_)):
            raise TypeError(f"fast must be True or False; got {self.fast!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}"
            )

    def _fit_glmm(self, design, y, sample_weight):
        family = get_family(self.family)
        link = get_link(family, self.link)
        w = validate_sample_weight(sample_weight, y.shape[0])
        if family.name == "binomial" and w is None:
            warnings.warn(
                "binomial family without sample_weight: every proportion is taken as one "
                "trial; pass the numbers of trials as sample_weight",
                UserWarning,
                stacklevel=3,
            )
        if self.nagq > 1:
            terms = design.reterms
            if len(terms) != 1 or terms[0].k != 1:
                raise ValueError(
                    f"nagq={self.nagq} (adaptive Gauss-Hermite quadrature) needs a single "
                    "scalar random-effects term such as (1|g); this model has "
                    + ", ".join(f"{t.name} ({t.k} columns)" for t in terms)
                    + "; use nagq=1 (Laplace)"
                )
        problem = GLMMProblem(
            design.X,
            y,
            design.reterms,
            family,
            link,
            weights=w,
            nagq=self.nagq,
            xnames=design.coef_names,
        )
        warn_rank_deficient(problem.lmm, design)
        try:
            beta, theta, optsum = fit_glmm(
                problem, fast=bool(self.fast), optimizer=self.optimizer, maxfeval=self.maxfeval
            )
        except (RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:  # PIRLS
            raise FitFailedError(
                f"{exc}. Try fast=True, a simpler random-effects structure, or check "
                "the response for complete separation"
            ) from exc
        result = glmm_result(
            problem, beta, theta, optsum, design.formula_text, design.coef_names, bool(self.fast)
        )
        b, u = problem.lmm.user_ranef(problem.u, theta)  # internal -> user's scale
        self._set_fitted(result, design, problem.lmm, b, u, y)
        self._problem, self._fit_weights = problem, w
        self.deviance_ = result.deviance
        self.family_ = family
        self.link_ = link
        if family.name in ("bernoulli", "binomial"):
            mu = link.inverse(problem._eta)
            extreme = int(np.sum((mu < 1e-10) | (mu > 1 - 1e-10)))
            if extreme:
                worst = self.coef_names_[int(np.nanargmax(np.abs(self.coef_ / self.stderror_)))]
                warnings.warn(
                    f"fitted probabilities numerically 0 or 1 for {extreme} observations: "
                    "the response looks (quasi-)completely separated (the largest "
                    f"|coefficient / SE| is {worst!r}); estimates and standard errors of "
                    "the separating effects are not meaningful",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        return self

    def _rebuild_problem(self):
        problem = GLMMProblem(
            self.design_.X,
            self._y_fit,
            self.design_.reterms,
            self.family_,
            self.link_,
            weights=self._fit_weights,
            nagq=self.result_.nagq,
        )
        # modes and working weights at the fit, in the core's (centred, scaled) terms
        problem.deviance(self.result_.core_theta, self.result_.core_beta)
        return problem

    def _lmm_problem(self):
        # the PIRLS factor at the final working weights
        return self.problem_.lmm

    def _mean(self, X) -> np.ndarray:
        eta = self._linear_predictor(X)  # checks that the model is fitted
        return self.link_.inverse(eta)


class MixedGLMClassifier(ClassifierMixin, _GLMMBase):
    """Binary classification with a Bernoulli generalized linear mixed model.

    Fits ``P(y = classes_[1]) = g^{-1}(X beta + Z b)`` by maximum likelihood with the
    Laplace approximation (``nagq=1``) or adaptive Gauss-Hermite quadrature, as
    MixedModels.jl's ``fit(MixedModel, f, data, Bernoulli())``.

    Parameters
    ----------
    formula : str, optional
        lme4/MixedModels.jl formula; the response may have any two labels.
    groups : str or list of str, optional
        Grouping columns for ``formula=None`` (random intercepts).
    family : {"bernoulli"}, default="bernoulli"
    link : {"logit", "probit", "cloglog", "cauchit"}, optional
        Default logit.
    nagq : int, default=1
        Adaptive Gauss-Hermite points; > 1 only for a single scalar term.
    fast : bool, default=False
        Optimize theta only, beta from PIRLS (faster, deviance slightly higher).
    contrasts, new_levels, optimizer, maxfeval
        As in :class:`MixedLMRegressor`.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Sorted labels; the model's probability is that of ``classes_[1]``.
    coef_, coef_names_, theta_, vcov_, stderror_, ranef_ :
        As in :class:`MixedLMRegressor`; ``sigma_`` is None (no dispersion).
    objective_, deviance_ : float
        The Laplace (or AGQ) deviance, MixedModels.jl's ``deviance``.
    loglik_, aic_, aicc_, bic_, dof_, nobs_, converged_, optsum_ :
        As in :class:`MixedLMRegressor`.

    Examples
    --------
    >>> from sklmixed import MixedGLMClassifier, load_dataset
    >>> df = load_dataset("contra")
    >>> clf = MixedGLMClassifier(
    ...     formula="use ~ 1 + age + I(age**2) + livch + urban + (1|dist)", fast=True
    ... ).fit(df)
    >>> clf.classes_.tolist()
    ['N', 'Y']
    >>> round(clf.deviance_, 2)
    2372.78
    """

    _allowed_families = ("bernoulli",)

    def __init__(
        self,
        formula=None,
        *,
        groups=None,
        family="bernoulli",
        link=None,
        nagq=1,
        fast=False,
        contrasts=None,
        new_levels="population",
        optimizer=None,
        maxfeval=-1,
    ):
        self.formula = formula
        self.groups = groups
        self.family = family
        self.link = link
        self.nagq = nagq
        self.fast = fast
        self.contrasts = contrasts
        self.new_levels = new_levels
        self.optimizer = optimizer
        self.maxfeval = maxfeval

    def fit(self, X, y=None, sample_weight=None):
        """Fit the model (see :class:`MixedLMRegressor.fit` for the arguments)."""
        self._validate_params_glmm()
        design, response = self._design(X, y)
        labels = np.asarray(response)
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            raise DataError("the response has NaN or infinite values")
        weights = validate_sample_weight(sample_weight, labels.shape[0])
        present = labels if weights is None else labels[weights > 0]
        y_type = type_of_target(present, input_name="y")
        if y_type not in ("binary", "unknown") or np.unique(present).shape[0] != 2:
            if y_type == "continuous":
                raise ValueError(f"Unknown label type: {y_type}; the response must be two labels")
            found = np.unique(present)
            raise ValueError(
                "Only binary classification is supported: MixedGLMClassifier needs "
                f"exactly two classes in the response; found {found.shape[0]} class"
                f"{'es' if found.shape[0] != 1 else ''}: {found[:10].tolist()}"
            )
        classes = np.unique(labels)
        self.classes_ = classes
        y01 = (labels == classes[1]).astype(float)
        return self._fit_glmm(design, y01, sample_weight)

    def decision_function(self, X) -> np.ndarray:
        """The linear predictor (log-odds for the logit link) of ``classes_[1]``."""
        return self._linear_predictor(X)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]``, shape (n, 2)."""
        p = self._mean(X)
        return np.column_stack((1.0 - p, p))

    def predict(self, X) -> np.ndarray:
        """The more probable class."""
        check_is_fitted(self, "classes_")
        return self.classes_[(self._mean(X) > 0.5).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.string = False
        return tags


class MixedGLMRegressor(RegressorMixin, _GLMMBase):
    """Generalized linear mixed model for counts, proportions or 0/1 responses.

    Families ``"poisson"`` (log link), ``"binomial"`` (response = proportion of
    successes, ``sample_weight`` = number of trials, as MixedModels.jl), and
    ``"bernoulli"``; ``predict`` returns the mean response. ``score`` is D^2, the
    fraction of deviance explained (1 - deviance / null deviance, with the null
    model the weighted mean response), which equals R^2 for a Gaussian model.

    Parameters
    ----------
    formula, groups, link, nagq, fast, contrasts, new_levels, optimizer, maxfeval
        As in :class:`MixedGLMClassifier`.
    family : {"poisson", "binomial", "bernoulli"}, default="poisson"

    Examples
    --------
    >>> import numpy as np
    >>> from sklmixed import MixedGLMRegressor, load_dataset
    >>> df = load_dataset("verbagg")
    >>> df["y"] = (df["r2"] == "Y").astype(int)
    >>> m = MixedGLMRegressor(formula="y ~ 1 + anger + (1|subj)", family="bernoulli",
    ...                       fast=True).fit(df)
    >>> m.coef_names_
    ['(Intercept)', 'anger']
    """

    def __init__(
        self,
        formula=None,
        *,
        groups=None,
        family="poisson",
        link=None,
        nagq=1,
        fast=False,
        contrasts=None,
        new_levels="population",
        optimizer=None,
        maxfeval=-1,
    ):
        self.formula = formula
        self.groups = groups
        self.family = family
        self.link = link
        self.nagq = nagq
        self.fast = fast
        self.contrasts = contrasts
        self.new_levels = new_levels
        self.optimizer = optimizer
        self.maxfeval = maxfeval

    def fit(self, X, y=None, sample_weight=None):
        """Fit the model (see :class:`MixedLMRegressor.fit` for the arguments)."""
        self._validate_params_glmm()
        design, response = self._design(X, y)
        yv = _validate_glm_response(response, self.family, sample_weight)
        if yv.shape[0] > 1 and np.all(yv == yv[0]):
            raise DataError(f"the response is constant ({yv[0]:g}); there is nothing to model")
        return self._fit_glmm(design, yv, sample_weight)

    def predict(self, X) -> np.ndarray:
        """Mean response (rate, probability or proportion) for new data."""
        return self._mean(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # counts and proportions
        return tags

    def score(self, X, y, sample_weight=None) -> float:
        """D^2: fraction of the deviance explained, ``1 - D(y, mu) / D(y, mean(y))``."""
        mu = self.family_.clamp(self.predict(X))
        y = np.asarray(y, dtype=float)
        w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, float)
        ybar = np.average(y, weights=w)
        dev = np.sum(w * self.family_.unit_deviance(y, mu))
        dev0 = np.sum(w * self.family_.unit_deviance(y, self.family_.clamp(np.full_like(y, ybar))))
        return float(1.0 - dev / dev0) if dev0 > 0 else float("nan")


def _validate_glm_response(response, family: str, sample_weight) -> np.ndarray:
    """The response as floats, checked against the family's support."""
    y = np.asarray(response)
    if y.dtype == bool:
        y = y.astype(float)
    try:
        y = y.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"the {family} response must be numeric; got values such as {y[:3].tolist()}"
        ) from exc
    if not np.all(np.isfinite(y)):
        raise DataError(f"the response has {int((~np.isfinite(y)).sum())} NaN or infinite values")
    if family == "bernoulli":
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise DataError(
                "the bernoulli response must be 0/1 (or use MixedGLMClassifier for any two "
                f"labels); found {np.unique(y[bad])[:5].tolist()}"
            )
    elif family == "binomial":
        if np.any((y < 0) | (y > 1)):
            raise DataError(
                "the binomial response is the proportion of successes and must lie in "
                f"[0, 1]; found {np.unique(y[(y < 0) | (y > 1)])[:5].tolist()} (pass "
                "counts as proportions with the numbers of trials as sample_weight)"
            )
    elif family == "poisson":
        bad = (y < 0) | (y != np.round(y))
        if bad.any():
            raise DataError(
                "the poisson response must be non-negative integer counts; found "
                f"{np.unique(y[bad])[:5].tolist()}"
            )
    return y
