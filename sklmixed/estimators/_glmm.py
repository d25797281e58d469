"""MixedGLMClassifier and MixedGLMRegressor: generalized linear mixed models."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from sklmixed._core._families import FAMILIES, get_family, get_link
from sklmixed._core._glmm import GLMMProblem
from sklmixed._optim import fit_glmm, on_one_blas_thread
from sklmixed._results import glmm_result
from sklmixed.estimators._base import (
    MixedModelBase,
    _from_result,
    check_glmm_design,
    optimize_glmm,
    validate_sample_weight,
    warn_rank_deficient,
    warn_separation,
)
from sklmixed.estimators._checks import (
    binary_labels,
    check_no_missing,
    check_not_constant,
    check_response_not_among_features,
    numeric_response,
    validate_target,
)
from sklmixed.estimators._dask import dask_predict
from sklmixed.estimators._glmm_chunked import fit_glmm_chunked
from sklmixed.estimators._offset import total_offset
from sklmixed.estimators._params import GLMM_CONSTRAINTS
from sklmixed.estimators._sources import as_source
from sklmixed.exceptions import (
    DataError,
    ParameterError,
)


class _GLMMBase(MixedModelBase):
    """Fitting shared by the GLMM classifier and regressor."""

    _allowed_families: tuple[str, ...] = tuple(FAMILIES)

    _parameter_constraints = GLMM_CONSTRAINTS

    deviance_ = _from_result("deviance", "The Laplace (or quadrature) deviance at the optimum.")
    dispersion_ = _from_result(
        "dispersion", "The estimated shape or dispersion (None for families without one)."
    )

    def _validate_related_params(self) -> None:
        if self.link is not None and self.link not in get_family(self.family).links:
            raise ParameterError(
                f"link {self.link!r} is not available for family {self.family!r}; "
                f"choose one of {list(get_family(self.family).links)}"
            )

    def _fit_glmm(self, design, y, sample_weight, offset=None):
        family = get_family(self.family)
        link = get_link(family, self.link)
        w = validate_sample_weight(sample_weight, y.shape[0])
        off = total_offset(design, offset, y.shape[0])
        check_glmm_design(self, family, design.reterms, w is not None)
        problem = GLMMProblem(
            design.X,
            y,
            design.reterms,
            family,
            link,
            weights=w,
            nagq=self.nagq,
            offset=off,
            xnames=design.coef_names,
        )
        warn_rank_deficient(problem.lmm, design)
        theta0, beta0 = self._warm_start(problem.lmm, design.coef_names)
        previous = self.dispersion_ if "result_" in self.__dict__ else None  # the last fit's
        if theta0 is not None and family.has_dispersion and previous is not None:
            if self.family_.name == family.name:  # the previous fit's shape or dispersion
                theta0 = np.append(theta0, np.log(previous))
        beta, params, optsum = optimize_glmm(self, problem, theta0, beta0, fit_glmm)
        # params: theta, then the log dispersion for a family that has one
        theta = params[: problem.ntheta]
        result = glmm_result(problem, beta, theta, optsum, design.formula_text, design.coef_names)
        b, u = problem.lmm.user_ranef(problem.state.u, theta)  # internal -> user's scale
        self._set_fitted(result, design, problem.lmm, b, u, y)
        self._problem, self._fit_weights, self._fit_offset = problem, w, off
        self._offset_param = offset is not None  # held-out rows then need theirs
        self.family_ = problem.family  # at the estimated dispersion
        self.link_ = link
        if family.name in ("bernoulli", "binomial"):
            mu = link.inverse(problem.state.eta)
            warn_separation(self, int(np.sum((mu < 1e-10) | (mu > 1 - 1e-10))))
        return self

    def _rebuild_problem(self):
        self._require_rows("the model's factor after unpickling")
        problem = GLMMProblem(
            self.design_.X,
            self._y_fit,
            self.design_.reterms,
            self.family_,
            self.link_,
            weights=self._fit_weights,
            nagq=self.result_.nagq,
            offset=self._fit_offset,
        )
        # modes and working weights at the fit, in the core's (centred, scaled) terms
        problem.deviance(self.result_.core_theta, self.result_.core_beta)
        return problem

    def _lmm_problem(self):
        # the PIRLS factor at the final working weights
        return self.problem_.lmm

    def _mean(self, X, offset=None) -> np.ndarray:
        eta = self._linear_predictor(X, offset)  # checks that the model is fitted
        return self.link_.inverse(eta)


class MixedGLMClassifier(ClassifierMixin, _GLMMBase):
    """Binary classification with a Bernoulli generalized linear mixed model.

    Fits ``P(y = classes_[1]) = g^-1(X beta + Z b)`` by maximum likelihood with
    the Laplace approximation (``nagq=1``) or adaptive Gauss-Hermite quadrature,
    as MixedModels.jl's ``fit(MixedModel, f, data, Bernoulli())`` and lme4's
    ``glmer(f, data, family = binomial)``. The response may have any two labels.

    Parameters
    ----------
    formula : str, optional
        An lme4/MixedModels.jl formula such as ``"r2 ~ 1 + anger + (1|subj)"``;
        see ``MixedLMRegressor``. Without a formula every column of X except
        ``groups`` is a fixed effect and each ``groups`` column gets a random
        intercept.
    groups : str or list of str, optional
        Grouping columns, used only when ``formula`` is None.
    family : {"bernoulli"}, default="bernoulli"
        The response distribution (the only one for binary labels).
    link : str, optional
        The link function: ``"logit"`` (the default), ``"probit"``,
        ``"cloglog"`` or ``"cauchit"``.
    nagq : int, default=1
        Number of adaptive Gauss-Hermite quadrature points; 1 is the Laplace
        approximation. Values above 1 need a single scalar random-effects term
        such as ``(1|g)`` (lme4's ``nAGQ``).
    fast : bool, default=False
        Optimize the covariance parameters only and take the fixed effects from
        PIRLS (MixedModels.jl's ``fast=true``, like lme4's ``nAGQ = 0``): about
        ten times faster, at a slightly higher deviance.
    contrasts : dict of str to str, optional
        Column name -> coding, ``"dummy"``, ``"effects"`` or ``"helmert"``.
    new_levels : {"population", "error"}, default="population"
        What ``predict`` does with grouping-factor levels not seen in ``fit``:
        predict them from the fixed effects alone, or raise ``DataError``.
    optimizer : str, optional
        An nlopt derivative-free algorithm (see ``MixedLMRegressor``); by
        default LN_BOBYQA, first over theta with the fixed effects from PIRLS,
        then (``fast=False``) over the fixed effects and theta jointly, ending
        (with at most 12 parameters in all) with a Newton step on central
        differences that puts the estimates at the optimum, to about 1e-9,
        whatever the rows' order or how they were batched. A named algorithm
        runs alone, to its tolerances.
    maxfeval : int, default=-1
        Maximum number of deviance evaluations per optimization stage; -1 for
        no limit.
    warm_start : bool, default=False
        As in ``MixedLMRegressor``; the fixed effects start from the previous
        fit's too when the fixed-effects columns are the same (and then, with
        ``fast=False``, the theta-only first stage is skipped).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted; the model's probability is that of
        ``classes_[1]`` (``"Y"`` for ``"N"``/``"Y"``, 1 for 0/1).
    coef_ : ndarray of shape (n_coef,)
        Fixed-effects estimates on the linear-predictor scale, one per column of
        X, intercept included; -0.0 for columns dropped as linearly dependent.
    coef_names_ : list of str
        MixedModels.jl's names of the coefficients.
    fixef_ : ndarray of shape (rank,)
        The estimable fixed effects only (``coef_`` without dropped columns).
    fixef_names_ : list of str
        Names of ``fixef_``.
    theta_ : ndarray of shape (n_theta,)
        Relative covariance parameters (for a GLMM without dispersion, the
        lower triangles of the random effects' Cholesky factors themselves).
    sigma_ : None
        Always None: the Bernoulli family has no dispersion parameter.
    dispersion_ : None
        Always None, as ``sigma_`` (see ``MixedGLMRegressor``).
    vcov_ : ndarray of shape (n_coef, n_coef)
        Covariance matrix of the fixed-effects estimates, from the PIRLS factor
        (MixedModels.jl's; lme4's ``vcov(m, use.hessian = FALSE)``).
    stderror_ : ndarray of shape (n_coef,)
        Standard errors of the fixed effects (NaN for dropped columns).
    ranef_ : dict of str to DataFrame
        Conditional modes of the random effects per grouping factor, levels x
        random-effect columns, on the linear-predictor scale.
    objective_ : float
        The minimized deviance: Laplace (``nagq=1``) or adaptive Gauss-Hermite.
    deviance_ : float
        The same as ``objective_``: MixedModels.jl's ``deviance``.
    loglik_ : float
        Log-likelihood including the distribution's normalizing constants (lme4's
        ``logLik`` for nAGQ <= 1).
    aic_ : float
        Akaike's information criterion, -2 loglik + 2 dof.
    aicc_ : float
        AIC with the small-sample correction.
    bic_ : float
        Bayesian information criterion, -2 loglik + dof log(nobs).
    dof_ : int
        Number of estimated parameters: fixed effects and theta.
    nobs_ : int
        Number of observations.
    converged_ : bool
        Whether the optimizer reported convergence.
    optsum_ : dict
        The optimizer's record (see ``MixedLMRegressor``); with ``fast=False``
        its parameters are the fixed effects followed by theta.
    is_singular_ : bool
        Whether the fit is on the boundary of the parameter space (a variance of
        zero or a correlation of +-1).
    family_ : object
        The response distribution; ``family_.name`` is ``"bernoulli"``.
    link_ : object
        The link function; ``link_.name`` is its name and ``link_.inverse(eta)``
        maps the linear predictor to the mean.
    n_features_in_ : int
        Number of columns of X seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of X seen in ``fit``, when they are all strings.

    See Also
    --------
    MixedGLMRegressor : The same models with a 0/1 response, and other families.
    MixedLMRegressor : Linear mixed models.

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
    _parameter_constraints = {**GLMM_CONSTRAINTS, "family": [StrOptions(set(_allowed_families))]}

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
        warm_start=False,
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
        self.warm_start = warm_start

    @on_one_blas_thread
    def fit(self, X, y=None, sample_weight=None, offset=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The data: a pandas DataFrame (polars and pyarrow tables are converted)
            holding every column the formula names; a numeric array only
            without a formula. Never modified. A ``dask.dataframe.DataFrame``
            (partitions reduced on the workers of the user's cluster) or a
            ``pyarrow.dataset.Dataset`` (record batches) is fitted by passes over
            its chunks, one per PIRLS iteration, for the bernoulli, binomial and
            poisson families; the response is then the formula's, and
            ``sample_weight`` and ``offset`` name columns.
        y : array-like of shape (n_samples,), optional
            The response. When omitted, the formula's left-hand side is taken
            from X; when given, it replaces it.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative prior weights of the observations; a zero weight removes one.
        offset : array-like of shape (n_samples,), optional
            A known term of the linear predictor with coefficient 1 (lme4's
            ``offset``); it adds to the formula's ``offset(expr)`` terms.
            Routable metadata (``set_fit_request(offset=True)``).

        Returns
        -------
        self : MixedGLMClassifier
            The fitted estimator.
        """
        self._validate_params()
        source = as_source(X)
        if source is not None:  # a Dask DataFrame, a Dataset: PIRLS passes over chunks
            return fit_glmm_chunked(self, source, y, sample_weight, offset)
        self._out_of_core = False
        design, response = self._design(X, y)
        labels = np.asarray(response)
        check_no_missing(labels, "the response")
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            raise DataError("the response has infinite values")
        weights = validate_sample_weight(sample_weight, labels.shape[0])
        # classes from the rows with positive weight: the others do not count
        self.classes_, y01 = binary_labels(labels, weights)
        if design.reterms:  # a leaked response; without random effects: separation, warned
            check_response_not_among_features(
                design.X, design.coef_names, y01, weights, affine=False
            )
        return self._fit_glmm(design, y01, sample_weight, offset)

    @dask_predict
    def decision_function(self, X, offset=None) -> np.ndarray:
        """The linear predictor of ``classes_[1]`` for new data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula (the response is not
            needed). The formula's ``offset(expr)`` terms are evaluated on it.
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows for a model fitted with the ``offset``
            parameter (they add to the formula's offsets); by default zero.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            X beta + Z b + offset: the log-odds of ``classes_[1]`` for the logit
            link; levels not seen in ``fit`` follow ``new_levels``.
        """
        return self._linear_predictor(X, offset)

    @dask_predict
    def predict_proba(self, X, marginal=False, offset=None) -> np.ndarray:
        """Class probabilities for new data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula (the response is not
            needed).
        marginal : bool, default=False
            Average over the random effects of levels not seen in fit (a
            quadrature over their prior) instead of setting them to zero; seen
            levels use their conditional modes either way.
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows, as in ``decision_function``.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            The probabilities of ``classes_[0]`` and ``classes_[1]``.
        """
        eta = self._linear_predictor(X, offset)
        p = self.link_.inverse(eta)
        if marginal:
            from sklmixed.inference import marginal_mean

            _, parts = self.design_.transform(self._new_frame(X))
            p = marginal_mean(self, eta, parts)
        return np.column_stack((1.0 - p, p))

    @dask_predict
    def predict(self, X, offset=None) -> np.ndarray:
        """The more probable class for new data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula (the response is not
            needed).
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows, as in ``decision_function``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            ``classes_[1]`` where its probability exceeds 0.5, else ``classes_[0]``.
        """
        check_is_fitted(self, "classes_")
        return self.classes_[(self._mean(X, offset) > 0.5).astype(int)]

    def score(self, X, y=None, sample_weight=None, offset=None) -> float:
        """Accuracy of the predicted classes on the given data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Data with the columns of the formula.
        y : array-like of shape (n_samples,), optional
            The true labels; by default the formula's left-hand side evaluated
            on X.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the observations.
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows, as in ``decision_function`` (routable
            metadata: ``set_score_request(offset=True)``).

        Returns
        -------
        score : float
            The (weighted) fraction of correctly predicted labels of
            ``predict(X, offset=offset)``.
        """
        y_true = self._score_target(X, y)
        y_pred = self.predict(X, offset=offset)
        return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.string = False
        return tags


class MixedGLMRegressor(RegressorMixin, _GLMMBase):
    """Generalized linear mixed model for counts, positive amounts, proportions or
    0/1 responses.

    Families ``"poisson"`` (log link), ``"binomial"`` (response = proportion of
    successes, ``sample_weight`` = number of trials, as MixedModels.jl),
    ``"bernoulli"``, and, with a parameter estimated by maximum likelihood of the
    Laplace approximation as glmmTMB does, ``"negative_binomial"`` (NB2: variance
    mu + mu^2 / shape, glmmTMB's ``nbinom2``), ``"gamma"`` (variance
    dispersion * mu^2) and ``"inverse_gaussian"`` (variance dispersion * mu^3).
    ``predict`` returns the mean response. ``score`` is D^2, the fraction of
    deviance explained (1 - deviance / null deviance, with the null model the
    weighted mean response), which equals R^2 for a Gaussian model. Offsets:
    ``offset(expr)`` in the formula or the ``offset`` parameter of ``fit``.

    Parameters
    ----------
    formula : str, optional
        An lme4/MixedModels.jl formula such as ``"y ~ 1 + x + (1|g)"``; see
        ``MixedLMRegressor``.
    groups : str or list of str, optional
        Grouping columns, used only when ``formula`` is None.
    family : {"poisson", "binomial", "bernoulli", "negative_binomial", "gamma", \
"inverse_gaussian"}, default="poisson"
        ``"poisson"``: non-negative counts (or rates). ``"binomial"``: the
        response is the proportion of successes and ``sample_weight`` the
        number of trials, as MixedModels.jl's ``wts``. ``"bernoulli"``: a 0/1
        response. ``"negative_binomial"``: overdispersed non-negative integer
        counts. ``"gamma"`` and ``"inverse_gaussian"``: positive amounts.
    link : str, optional
        The link function; by default logit for the binary families and log
        for the count and positive families (also for the Gamma, whose
        canonical link, R's default, is ``"inverse"``). Also ``"identity"`` and
        ``"sqrt"`` for the counts, ``"inverse"`` and ``"identity"`` for the
        positive families, ``"probit"``, ``"cloglog"`` and ``"cauchit"`` for
        binomial and bernoulli.
    nagq : int, default=1
        Number of adaptive Gauss-Hermite quadrature points; 1 is the Laplace
        approximation. Values above 1 need a single scalar random-effects term
        such as ``(1|g)`` (lme4's ``nAGQ``).
    fast : bool, default=False
        Optimize the covariance parameters only and take the fixed effects from
        PIRLS (MixedModels.jl's ``fast=true``, like lme4's ``nAGQ = 0``): about
        ten times faster, at a slightly higher deviance.
    contrasts : dict of str to str, optional
        Column name -> coding, ``"dummy"``, ``"effects"`` or ``"helmert"``.
    new_levels : {"population", "error"}, default="population"
        What ``predict`` does with grouping-factor levels not seen in ``fit``:
        predict them from the fixed effects alone, or raise ``DataError``.
    optimizer : str, optional
        An nlopt derivative-free algorithm (see ``MixedLMRegressor``); by
        default LN_BOBYQA, first over theta with the fixed effects from PIRLS,
        then (``fast=False``) over the fixed effects and theta jointly, ending
        (with at most 12 parameters in all) with a Newton step on central
        differences that puts the estimates at the optimum, to about 1e-9,
        whatever the rows' order or how they were batched. A named algorithm
        runs alone, to its tolerances.
    maxfeval : int, default=-1
        Maximum number of deviance evaluations per optimization stage; -1 for
        no limit.
    warm_start : bool, default=False
        As in ``MixedGLMClassifier``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_coef,)
        Fixed-effects estimates on the linear-predictor scale, one per column of
        X, intercept included; -0.0 for columns dropped as linearly dependent.
    coef_names_ : list of str
        MixedModels.jl's names of the coefficients.
    fixef_ : ndarray of shape (rank,)
        The estimable fixed effects only (``coef_`` without dropped columns).
    fixef_names_ : list of str
        Names of ``fixef_``.
    theta_ : ndarray of shape (n_theta,)
        Relative covariance parameters (for a GLMM without dispersion, the
        lower triangles of the random effects' Cholesky factors themselves).
    sigma_ : None
        Always None: random-effect standard deviations are on the scale of the
        linear predictor; the families with a parameter report it as
        ``dispersion_``.
    dispersion_ : float or None
        The estimated shape of the negative binomial (glmmTMB's ``sigma()`` of an
        ``nbinom2`` fit) or dispersion phi of the Gamma and inverse Gaussian
        families (glmmTMB's ``sigma()^2`` for the Gamma); None for the families
        without one.
    vcov_ : ndarray of shape (n_coef, n_coef)
        Covariance matrix of the fixed-effects estimates: for the families with
        a dispersion the inverse Hessian of the deviance over all parameters
        (glmmTMB's), otherwise from the PIRLS factor (MixedModels.jl's; lme4's
        ``vcov(m, use.hessian = FALSE)``).
    stderror_ : ndarray of shape (n_coef,)
        Standard errors of the fixed effects (NaN for dropped columns).
    ranef_ : dict of str to DataFrame
        Conditional modes of the random effects per grouping factor, levels x
        random-effect columns, on the linear-predictor scale.
    objective_ : float
        The minimized deviance: Laplace (``nagq=1``) or adaptive Gauss-Hermite;
        for the families with a dispersion, the full -2 log-likelihood,
        normalizing terms included (glmmTMB's ``deviance`` column).
    deviance_ : float
        The same as ``objective_``: MixedModels.jl's ``deviance``.
    loglik_ : float
        Log-likelihood including the distribution's normalizing constants (lme4's
        ``logLik`` for nAGQ <= 1).
    aic_ : float
        Akaike's information criterion, -2 loglik + 2 dof.
    aicc_ : float
        AIC with the small-sample correction.
    bic_ : float
        Bayesian information criterion, -2 loglik + dof log(nobs).
    dof_ : int
        Number of estimated parameters: fixed effects, theta and the dispersion
        (or shape) for the families with one.
    nobs_ : int
        Number of observations.
    converged_ : bool
        Whether the optimizer reported convergence.
    optsum_ : dict
        The optimizer's record (see ``MixedLMRegressor``); with ``fast=False``
        its parameters are the fixed effects followed by theta.
    is_singular_ : bool
        Whether the fit is on the boundary of the parameter space (a variance of
        zero or a correlation of +-1).
    family_ : object
        The response distribution (at the estimated dispersion); ``family_.name``
        is the ``family`` parameter.
    link_ : object
        The link function; ``link_.name`` is its name and ``link_.inverse(eta)``
        maps the linear predictor to the mean.
    n_features_in_ : int
        Number of columns of X seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of X seen in ``fit``, when they are all strings.

    See Also
    --------
    MixedGLMClassifier : Binary labels of any type, with ``predict_proba``.
    MixedLMRegressor : Linear mixed models.

    Examples
    --------
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
        warm_start=False,
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
        self.warm_start = warm_start

    @on_one_blas_thread
    def fit(self, X, y=None, sample_weight=None, offset=None):
        """Fit the model.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The data: a pandas DataFrame (polars and pyarrow tables are converted)
            holding every column the formula names; a numeric array only
            without a formula. Never modified. A ``dask.dataframe.DataFrame``
            (partitions reduced on the workers of the user's cluster) or a
            ``pyarrow.dataset.Dataset`` (record batches) is fitted by passes over
            its chunks, one per PIRLS iteration, for the bernoulli, binomial and
            poisson families; the response is then the formula's, and
            ``sample_weight`` and ``offset`` name columns.
        y : array-like of shape (n_samples,), optional
            The response. When omitted, the formula's left-hand side is taken
            from X; when given, it replaces it.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative prior weights; for the binomial family the numbers of
            trials behind each proportion (without them every proportion counts
            as one trial, with a warning).
        offset : array-like of shape (n_samples,), optional
            A known term of the linear predictor with coefficient 1 (lme4's
            ``offset``, e.g. the log of an exposure); it adds to the formula's
            ``offset(expr)`` terms. Routable metadata
            (``set_fit_request(offset=True)``).

        Returns
        -------
        self : MixedGLMRegressor
            The fitted estimator.
        """
        self._validate_params()
        source = as_source(X)
        if source is not None:  # a Dask DataFrame, a Dataset: PIRLS passes over chunks
            return fit_glmm_chunked(self, source, y, sample_weight, offset)
        self._out_of_core = False
        design, response = self._design(X, y)
        yv = _validate_glm_response(response, self.family, sample_weight)
        w = validate_sample_weight(sample_weight, yv.shape[0])
        check_not_constant(yv, w, "the response")
        if design.reterms:  # a leaked response (a plain GLM may use any covariate)
            check_response_not_among_features(design.X, design.coef_names, yv, w, affine=False)
        return self._fit_glmm(design, yv, sample_weight, offset)

    @dask_predict
    def predict(self, X, offset=None) -> np.ndarray:
        """The mean response for new data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            New data with the columns of the formula (the response is not
            needed). The formula's ``offset(expr)`` terms are evaluated on it.
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows for a model fitted with the ``offset``
            parameter (they add to the formula's offsets); by default zero,
            which predicts at offset 0 (for ``offset = log(exposure)``, the
            mean per unit of exposure).

        Returns
        -------
        mu : ndarray of shape (n_samples,)
            The inverse link of X beta + Z b + offset: a count or rate
            (poisson, negative_binomial), a proportion (binomial), a
            probability (bernoulli) or a positive amount (gamma,
            inverse_gaussian).
        """
        return self._mean(X, offset)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # counts and proportions
        return tags

    def score(self, X, y=None, sample_weight=None, offset=None) -> float:
        """D^2, the fraction of the deviance explained on the given data.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Data with the columns of the formula.
        y : array-like of shape (n_samples,), optional
            The observed response; by default the formula's left-hand side
            evaluated on X.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the observations (the numbers of trials for binomial).
        offset : array-like of shape (n_samples,), optional
            The offsets of these rows, as in ``predict`` (routable metadata:
            ``set_score_request(offset=True)``).

        Returns
        -------
        score : float
            ``1 - D(y, mu) / D(y, mean(y))`` with D the family's deviance (for
            the negative binomial, at the estimated shape) and mu the
            predictions; NaN when y is constant.
        """
        y = np.asarray(self._score_target(X, y), dtype=float)
        mu = self.family_.clamp(self.predict(X, offset=offset))
        y = _validate_glm_response(validate_target(y, mu.shape[0]), self.family, None)
        w = validate_sample_weight(sample_weight, y.shape[0])
        w = np.ones_like(y) if w is None else w
        ybar = np.average(y, weights=w)
        dev = np.sum(w * self.family_.unit_deviance(y, mu))
        dev0 = np.sum(w * self.family_.unit_deviance(y, self.family_.clamp(np.full_like(y, ybar))))
        return float(1.0 - dev / dev0) if dev0 > 0 else float("nan")


def _validate_glm_response(response, family: str, sample_weight) -> np.ndarray:
    """The response as floats, checked against the family's support."""
    y = numeric_response(response, f"the {family} response")
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
    elif family == "negative_binomial":
        bad = (y < 0) | (y != np.round(y))
        if bad.any():
            raise DataError(
                "the negative_binomial response must be non-negative integer counts; found "
                f"{np.unique(y[bad])[:5].tolist()} (for counts over an exposure, model the "
                "count with an offset such as offset(log(exposure)))"
            )
    elif family in ("gamma", "inverse_gaussian"):
        bad = y <= 0
        if bad.any():
            raise DataError(
                f"the {family} response must be positive; found {int(bad.sum())} values "
                f"<= 0, such as {np.unique(y[bad])[:5].tolist()}"
            )
    elif family == "poisson":
        # counts, or non-negative rates (with exposures as sample_weight), as
        # scikit-learn's PoissonRegressor and glum accept
        bad = y < 0
        if bad.any():
            raise DataError(
                "the poisson response must be non-negative (counts or rates); found "
                f"{np.unique(y[bad])[:5].tolist()}"
            )
    return y
