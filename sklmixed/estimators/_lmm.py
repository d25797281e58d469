"""MixedLMRegressor: linear mixed models as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from sklmixed._core._lmm import LMMProblem, leverage
from sklmixed._optim import fit_lmm, on_one_blas_thread
from sklmixed.estimators._base import (
    MixedModelBase,
    optimize_lmm,
    validate_sample_weight,
    warn_rank_deficient,
)
from sklmixed.estimators._checks import (
    check_fixed_effects,
    check_not_constant,
    numeric_response,
)
from sklmixed.estimators._dask import dask_predict
from sklmixed.estimators._offset import total_offset
from sklmixed.estimators._outofcore import (
    fit_lmm_out_of_core,
    predict_chunks,
    score_target_chunks,
)
from sklmixed.estimators._params import LMM_CONSTRAINTS
from sklmixed.estimators._sources import as_source
from sklmixed.exceptions import DataError


class MixedLMRegressor(RegressorMixin, MixedModelBase):
    """Linear mixed-effects model, fit by maximum likelihood or REML.

    The model ``y = X beta + Z b + e``, with b normal with mean 0 and covariance
    ``Sigma(theta)`` and e normal with mean 0 and covariance ``sigma^2 I``,
    specified by an lme4/MixedModels.jl formula and fit as MixedModels.jl fits it:
    penalized least squares with a blocked sparse Cholesky factor, and
    derivative-free optimization of the relative covariance parameters theta.
    The estimates and the printed summary are MixedModels.jl's.

    Parameters
    ----------
    formula : str, optional
        ``"y ~ 1 + x + (1 + x|g)"``: fixed effects as in formulaic, random-effects
        terms ``(expr|g)``, ``zerocorr(expr|g)``, ``(expr||g)``, ``(1|a/b)``,
        ``fulldummy(x)`` (see the formula page). A random term has an intercept
        only where ``1`` is written. Without a formula every column of X except
        ``groups`` is a fixed effect and each ``groups`` column gets a random
        intercept.
    groups : str or list of str, optional
        Grouping columns, used only when ``formula`` is None.
    reml : bool, default=False
        Fit by REML (restricted maximum likelihood, lme4's default) instead of
        maximum likelihood (MixedModels.jl's default).
    contrasts : dict of str to str, optional
        Column name -> coding, ``"dummy"``, ``"effects"`` or ``"helmert"``;
        marks the column categorical with that coding, as MixedModels.jl's
        ``contrasts`` keyword.
    new_levels : {"population", "error"}, default="population"
        What ``predict`` does with grouping-factor levels not seen in ``fit``:
        ``"population"`` predicts them from the fixed effects alone (random
        effects of zero), ``"error"`` raises ``DataError`` naming them.
    optimizer : str, optional
        An nlopt derivative-free algorithm: ``"LN_BOBYQA"``, ``"LN_NEWUOA"``,
        ``"LN_COBYLA"``, ``"LN_NELDERMEAD"``, ``"LN_SBPLX"`` or ``"LN_PRAXIS"``.
        By default LN_BOBYQA with the diagonal of each lambda bounded at zero,
        followed by an unbounded LN_NEWUOA run from its optimum when BOBYQA
        stops with a correlated term's diagonal element on its bound, and, for
        models with more than 127 random and fixed effects and at most four
        covariance parameters, by a Newton step on central differences that
        puts the estimates where the optimum is rather than where the optimizer
        stopped (to about 1e-9: independent of the rows' order). A named
        algorithm runs alone, to its tolerances.
    maxfeval : int, default=-1
        Maximum number of objective evaluations; -1 for no limit. Reaching it
        emits a ``ConvergenceWarning``.
    warm_start : bool, default=False
        When refitting this estimator (scikit-learn's convention: a later ``fit``
        on the same object, not a clone), start the optimizer from the previous
        ``theta_`` when the new model has the same covariance-parameter layout
        (same grouping factors, columns and correlation pattern); otherwise, and
        on the first fit, start from lambda = I. Fewer evaluations when fitting
        related data in turn (folds, bootstrap-like resamples); the optimum is the
        same within the optimizer's tolerances.

    Attributes
    ----------
    coef_ : ndarray of shape (n_coef,)
        Fixed-effects estimates, one per column of X, intercept included;
        -0.0 for columns dropped as linearly dependent.
    coef_names_ : list of str
        MixedModels.jl's names of the coefficients: ``"(Intercept)"``,
        ``"days"``, ``"dept: D02"``, ``"service: Y & dept: D02"``.
    fixef_ : ndarray of shape (rank,)
        The estimable fixed effects only (``coef_`` without dropped columns),
        as lme4's and MixedModels.jl's ``fixef``.
    fixef_names_ : list of str
        Names of ``fixef_``.
    theta_ : ndarray of shape (n_theta,)
        Relative covariance parameters: the lower triangle of each term's
        lambda, column by column, terms in MixedModels.jl's order.
    sigma_ : float
        Residual standard deviation.
    vcov_ : ndarray of shape (n_coef, n_coef)
        Covariance matrix of the fixed-effects estimates (NaN for dropped
        columns).
    stderror_ : ndarray of shape (n_coef,)
        Standard errors of the fixed effects (NaN for dropped columns).
    ranef_ : dict of str to DataFrame
        Conditional modes of the random effects per grouping factor, levels x
        random-effect columns.
    objective_ : float
        The minimized criterion: -2 log-likelihood (ML) or the REML criterion
        (MixedModels.jl's ``objective``).
    loglik_ : float
        -objective_ / 2: the log-likelihood, or under REML the restricted
        log-likelihood (as lme4's ``logLik`` and MixedModels.jl's
        ``loglikelihood`` report it).
    aic_ : float
        Akaike's information criterion, -2 loglik + 2 dof.
    aicc_ : float
        AIC with the small-sample correction.
    bic_ : float
        Bayesian information criterion, -2 loglik + dof log(nobs).
    dof_ : int
        Number of estimated parameters: fixed effects, theta and sigma.
    nobs_ : int
        Number of observations.
    converged_ : bool
        Whether the optimizer reported convergence (as opposed to stopping at
        ``maxfeval``).
    optsum_ : dict
        The optimizer's record, as MixedModels.jl's ``optsum``: ``initial`` and
        ``final`` theta, ``finitial``, ``fmin``, ``feval``, ``optimizer``,
        ``returnvalue``, the tolerances, ``maxfeval`` and ``fitlog``, the
        parameters and objective of every evaluation.
    is_singular_ : bool
        Whether the fit is on the boundary of the parameter space (a variance of
        zero or a correlation of +-1), as lme4's ``isSingular``; such fits emit
        a ``SingularFitWarning``.
    n_features_in_ : int
        Number of columns of X seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of X seen in ``fit``, when they are all strings.

    See Also
    --------
    MixedGLMClassifier : Bernoulli GLMMs for binary labels.
    MixedGLMRegressor : GLMMs for counts and proportions.

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
        warm_start=False,
    ):
        self.formula = formula
        self.groups = groups
        self.reml = reml
        self.contrasts = contrasts
        self.new_levels = new_levels
        self.optimizer = optimizer
        self.maxfeval = maxfeval
        self.warm_start = warm_start

    _parameter_constraints = LMM_CONSTRAINTS

    @on_one_blas_thread
    def fit(self, X, y=None, sample_weight=None, offset=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or pyarrow Dataset
            The data: a pandas DataFrame (polars and pyarrow tables are converted)
            holding every column the formula names; a numeric array only
            without a formula. Never modified. A ``pyarrow.dataset.Dataset``
            (or a ``DatasetSource`` of it with a chosen ``batch_size``) is fitted
            out of core: read in record batches, only the formula's columns,
            and fitted from the data's cross-products with the same estimates
            as in memory; the response is then the formula's, and fitted
            values, residuals and leverage need the data in memory. A
            ``dask.dataframe.DataFrame`` is fitted the same way, its partitions
            reduced on the workers of the user's cluster.
        y : array-like of shape (n_samples,), optional
            The response. When omitted, the formula's left-hand side is taken
            from X; when given, it replaces it.
        sample_weight : array-like of shape (n_samples,) or str, optional
            Non-negative prior weights, as lme4's ``weights``: the residual
            variance of observation i is sigma^2 / w_i. A zero weight removes
            an observation. Out of core: the name of a column of the data.
        offset : array-like of shape (n_samples,) or str, optional
            A known term of the mean with coefficient 1 (lme4's ``offset``); it
            adds to the formula's ``offset(expr)`` terms. Routable metadata:
            ``set_fit_request(offset=True)`` passes it through Pipelines and
            cross-validation. Out of core: the name of a column of the data.

        Returns
        -------
        self : MixedLMRegressor
            The fitted estimator.
        """
        self._validate_params()
        source = as_source(X)
        if source is not None:  # data read in chunks: fitted from its cross-products
            return fit_lmm_out_of_core(self, source, y, sample_weight, offset)
        self._out_of_core = False
        design, response = self._design(X, y)
        yv = _numeric_response(response)
        w = validate_sample_weight(sample_weight, yv.shape[0])
        off = total_offset(design, offset, yv.shape[0])
        # the offset is a known part of the mean: the model is fitted to y - offset
        ywork = yv if off is None else yv - off
        what = "the response" if off is None else "the response minus the offset"
        ypos = check_not_constant(ywork, w, what)
        for term in design.reterms:
            if term.nlevels >= ypos.shape[0]:
                raise DataError(
                    f"grouping factor {term.name!r} has as many levels ({term.nlevels}) as "
                    "observations: its variance cannot be told apart from the residual's"
                )
        # the response among the features (with random effects; without them it is an
        # exact linear regression, warned), or reproduced by them
        exact = check_fixed_effects(design.X, design.coef_names, ywork, w, bool(design.reterms))
        problem = LMMProblem(
            design.X,
            yv,
            design.reterms,
            weights=w,
            reml=self.reml,
            offset=off,
            xnames=design.coef_names,
        )
        problem.exact_fit = exact  # warned already: the core need not say it again
        warn_rank_deficient(problem, design)
        theta0, _ = self._warm_start(problem, design.coef_names)
        result, b, u = optimize_lmm(self, problem, design, theta0, fit_lmm)
        self._set_fitted(result, design, problem, b, u, yv)
        self._problem, self._fit_weights, self._fit_reml = problem, w, self.reml
        self._fit_offset = off
        self._offset_param = offset is not None  # held-out rows then need theirs
        return self

    def _rebuild_problem(self):
        self._require_rows("the model's factor after unpickling")
        problem = LMMProblem(
            self.design_.X,
            self._y_fit,
            self.design_.reterms,
            weights=self._fit_weights,
            reml=self._fit_reml,
            offset=self._fit_offset,
        )
        problem.set_theta(self.result_.core_theta)  # the core's (centred, scaled) theta
        return problem

    @dask_predict
    def predict(self, X, return_std=False, offset=None):
        """Predict the response for new data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula (the response is not
            needed). The formula's ``offset(expr)`` terms are evaluated on it.
        return_std : bool, default=False
            Also return the standard error of each conditional mean, from the
            joint covariance of the fixed and random effects given the data (an
            unseen level adds its random effect's prior variance).
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows for a model fitted with the ``offset``
            parameter (they add to the formula's offsets); by default zero, i.e.
            predictions at offset 0.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            X beta plus the conditional modes of the levels seen in ``fit``;
            levels not seen follow ``new_levels``.
        y_std : ndarray of shape (n_samples,)
            The standard errors (only with ``return_std=True``).
        """
        source = as_source(X)
        if source is not None:  # streamed: chunk by chunk, one array
            return predict_chunks(self, source, return_std, offset)
        mean = self._linear_predictor(X, offset)
        if not return_std:
            return mean
        from sklmixed.inference import conditional_std

        Xnew, parts = self.design_.transform(self._new_frame(X))
        return mean, conditional_std(self, Xnew, parts)

    def predict_interval(self, X, level=0.95, kind="confidence"):
        """Intervals for the conditional mean or for a new observation.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula.
        level : float, default=0.95
            Coverage of the intervals.
        kind : {"confidence", "prediction"}, default="confidence"
            ``"confidence"``: for the conditional mean; ``"prediction"``: for a new
            observation (adding the residual variance sigma^2).

        Returns
        -------
        intervals : DataFrame
            Columns ``mean``, ``lower``, ``upper``, one row per row of X.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> df = load_dataset("sleepstudy")
        >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
        >>> m.predict_interval(df.head(2), kind="prediction").round(1)
            mean  lower  upper
        0  254.2  198.8  309.7
        1  273.8  219.6  327.9
        """
        from sklmixed.inference import predict_interval

        return predict_interval(self, X, level, kind)

    def score(self, X, y=None, sample_weight=None, offset=None) -> float:
        """R^2 of ``predict(X, offset=offset)`` (scikit-learn's ``r2_score``).

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Data with the columns of the formula.
        y : array-like of shape (n_samples,), optional
            The true values; by default the formula's left-hand side evaluated
            on X.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the observations.
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows, as in ``predict`` (routable metadata:
            ``set_score_request(offset=True)``).

        Returns
        -------
        score : float
            The coefficient of determination (1 is a perfect prediction).
        """
        source = as_source(X)
        if source is not None:  # streamed: the formula's response and predict, chunk by chunk
            y_true = score_target_chunks(self, source) if y is None else y
            y_pred = self.predict(source, offset=offset)
            return float(r2_score(y_true, y_pred, sample_weight=sample_weight))
        y_true = self._score_target(X, y)
        y_pred = self.predict(X, offset=offset)
        return float(r2_score(y_true, y_pred, sample_weight=sample_weight))

    def leverage(self) -> np.ndarray:
        """Leverage: the diagonal of the hat matrix of the fit.

        Returns
        -------
        leverage : ndarray of shape (n_samples,)
            d y_hat_i / d y_i for each training observation (MixedModels.jl's
            ``leverage``, lme4's ``hatvalues``); their sum is the effective
            number of parameters.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> round(float(m.leverage().sum()), 6)
        4.69516
        """
        check_is_fitted(self, "problem_")
        self._require_rows("leverage")
        if not self.design_.reterms:
            return _ols_leverage(self.design_.X[:, ~np.isnan(self.stderror_)], self._fit_weights)
        theta = self.result_.core_theta  # the core's (centred, scaled) theta
        return leverage(self.problem_, theta)  # installs theta

    def _lmm_problem(self):
        return self.problem_


def _ols_leverage(X: np.ndarray, weights) -> np.ndarray:
    """Hat-matrix diagonal of a (weighted) linear model without random effects:
    squared row norms of Q in sqrt(W) X = QR."""
    sw = np.ones(X.shape[0]) if weights is None else np.sqrt(weights)
    q, _ = np.linalg.qr(X * sw[:, None])
    return np.einsum("ij,ij->i", q, q)


def _numeric_response(response) -> np.ndarray:
    return numeric_response(response, "the response of a linear mixed model")
