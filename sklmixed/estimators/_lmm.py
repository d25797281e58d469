"""MixedLMRegressor: linear mixed models as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from sklmixed._core._lmm import LMMProblem, leverage
from sklmixed._optim import OPTIMIZERS, fit_lmm
from sklmixed._results import lmm_result
from sklmixed.estimators._base import (
    MixedModelBase,
    validate_sample_weight,
    warn_rank_deficient,
)
from sklmixed.exceptions import DataError, FitFailedError


class MixedLMRegressor(RegressorMixin, MixedModelBase):
    """Linear mixed-effects model, fit by maximum likelihood or REML.

    The model ``y = X beta + Z b + e`` with ``b ~ N(0, Sigma(theta))`` and
    ``e ~ N(0, sigma^2 I)``, specified by an lme4/MixedModels.jl formula, fit as
    MixedModels.jl fits it (penalized least squares, blocked sparse Cholesky,
    derivative-free optimization of the relative covariance parameters theta).

    Parameters
    ----------
    formula : str, optional
        ``"y ~ 1 + x + (1 + x|g)"``: fixed effects as in formulaic, random-effects
        terms ``(expr|g)``, ``zerocorr(expr|g)``, ``(expr||g)``, ``(1|a/b)``,
        ``fulldummy(x)``. A random term has an intercept only where ``1`` is
        written. With ``formula=None`` every column of X except ``groups`` is a
        fixed effect and each ``groups`` column gets a random intercept.
    groups : str or list of str, optional
        Grouping columns, used only when ``formula`` is None.
    reml : bool, default=False
        Fit by REML instead of maximum likelihood.
    contrasts : dict, optional
        Column -> coding (``"dummy"``, ``"effects"``, ``"helmert"``); marks a
        column categorical, as MixedModels.jl's ``contrasts`` keyword.
    new_levels : {"population", "error"}, default="population"
        How ``predict`` treats grouping-factor levels not seen in ``fit``:
        random effects of zero, or an error.
    optimizer : str, optional
        nlopt algorithm name (``"LN_NEWUOA"``, ``"LN_BOBYQA"``, ...); by default
        LN_BOBYQA for one covariance parameter, LN_NEWUOA otherwise.
    maxfeval : int, default=-1
        Maximum number of objective evaluations (-1: no limit).

    Attributes
    ----------
    coef_ : ndarray of shape (p,)
        Fixed-effects estimates, intercept included (-0.0 for dropped columns).
    coef_names_ : list of str
        MixedModels.jl names of the coefficients.
    theta_ : ndarray
        Relative covariance parameters, lower triangles of the lambdas.
    sigma_ : float
        Residual standard deviation.
    vcov_ : ndarray of shape (p, p)
        Covariance matrix of the fixed-effects estimates.
    stderror_ : ndarray of shape (p,)
        Standard errors of the fixed effects.
    ranef_ : dict of DataFrame
        Conditional modes per grouping factor (levels x random-effect columns).
    objective_, loglik_, aic_, aicc_, bic_ : float
        -2 log-likelihood (or the REML criterion) and the information criteria.
    dof_, nobs_ : int
        Degrees of freedom consumed and number of observations.
    converged_ : bool
        Whether the optimizer reported convergence.
    optsum_ : dict
        The optimizer's record: initial and final theta, fmin, evaluations, log.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> df = load_dataset("sleepstudy")
    >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    >>> round(m.objective_, 4)
    1751.9393
    >>> m.coef_names_
    ['(Intercept)', 'days']
    >>> m.predict(df.head(2)).round(2).tolist()
    [254.22, 273.76]
    """

    def __init__(
        self,
        formula=None,
        *,
        groups=None,
        reml=False,
        contrasts=None,
        new_levels="population",
        optimizer=None,
        maxfeval=-1,
    ):
        self.formula = formula
        self.groups = groups
        self.reml = reml
        self.contrasts = contrasts
        self.new_levels = new_levels
        self.optimizer = optimizer
        self.maxfeval = maxfeval

    def _validate_params_lmm(self) -> None:
        self._validate_common()
        if not isinstance(self.reml, (bool, np.bool_)):
            raise TypeError(f"reml must be True or False; got {self.reml!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}"
            )
        if not isinstance(self.maxfeval, (int, np.integer)) or isinstance(self.maxfeval, bool):
            raise TypeError(f"maxfeval must be an integer; got {self.maxfeval!r}")

    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The data. With a two-sided formula and ``y=None`` the response is
            taken from X.
        y : array-like of shape (n_samples,), optional
            The response (overrides the formula's left-hand side).
        sample_weight : array-like of shape (n_samples,), optional
            Prior (case) weights, as lme4's ``weights``.

        Returns
        -------
        self : MixedLMRegressor
        """
        self._validate_params_lmm()
        design, response = self._design(X, y)
        yv = _numeric_response(response)
        if yv.shape[0] > 1 and np.all(yv == yv[0]):
            raise DataError(f"the response is constant ({yv[0]:g}); there is nothing to model")
        for term in design.reterms:
            if term.nlevels >= yv.shape[0]:
                raise DataError(
                    f"grouping factor {term.name!r} has as many levels ({term.nlevels}) as "
                    "observations: its variance cannot be told apart from the residual's"
                )
        w = validate_sample_weight(sample_weight, yv.shape[0])
        problem = LMMProblem(
            design.X, yv, design.reterms, weights=w, reml=self.reml, xnames=design.coef_names
        )
        warn_rank_deficient(problem, design)
        try:
            theta, optsum = fit_lmm(problem, optimizer=self.optimizer, maxfeval=self.maxfeval)
            result = lmm_result(problem, theta, optsum, design.formula_text, design.coef_names)
            b, u = problem.user_ranef(problem.u(), theta)  # internal theta -> user's scale
        except np.linalg.LinAlgError as exc:  # a safety net: never numpy's error
            raise FitFailedError(
                f"the factorization failed ({exc}); try a simpler random-effects structure"
            ) from exc
        self._set_fitted(result, design, problem, b, u, yv)
        self._problem, self._fit_weights, self._fit_reml = problem, w, self.reml
        return self

    def _rebuild_problem(self):
        problem = LMMProblem(
            self.design_.X,
            self._y_fit,
            self.design_.reterms,
            weights=self._fit_weights,
            reml=self._fit_reml,
        )
        problem.update(self.result_.core_theta)  # the core's (centred, scaled) theta
        return problem

    def predict(self, X):
        """Predicted mean response: fixed effects plus the conditional modes of
        the levels seen in fit (unseen levels follow ``new_levels``)."""
        return self._linear_predictor(X)

    def leverage(self) -> np.ndarray:
        """Diagonal of the hat matrix; its sum is the effective degrees of freedom.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> round(float(m.leverage().sum()), 6)
        4.69516
        """
        check_is_fitted(self, "problem_")
        theta = self.result_.core_theta  # the core's (centred, scaled) theta
        self.problem_.update(theta)
        return leverage(self.problem_, theta)

    def _lmm_problem(self):
        return self.problem_


def _numeric_response(response) -> np.ndarray:
    y = np.asarray(response)
    if y.dtype == object or y.dtype.kind in "USO":
        try:
            y = y.astype(float)
        except (TypeError, ValueError) as exc:
            raise DataError(
                "the response of a linear mixed model must be numeric; got "
                f"values such as {y[:3].tolist()}"
            ) from exc
    y = y.astype(float)
    if not np.all(np.isfinite(y)):
        raise DataError(f"the response has {int((~np.isfinite(y)).sum())} NaN or infinite values")
    return y
