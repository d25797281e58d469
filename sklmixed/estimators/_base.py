"""What the mixed-model estimators share: input handling, design, prediction.

The estimators are thin: they turn the user's table into a design (formula layer),
hand the matrices to the core, keep the frozen FitResult and expose it as
scikit-learn fitted attributes.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils.validation import check_is_fitted

from sklmixed.estimators._checks import (
    column_kinds,
    conform_columns,
    feature_names,
    term_values,
    validate_array,
    validate_new_array,
    validate_sample_weight,
    validate_target,
    warn_all_unseen,
)
from sklmixed.estimators._dask import reject_dask
from sklmixed.estimators._offset import validate_offset
from sklmixed.estimators._params import validate_hyperparameters
from sklmixed.estimators._sources import as_source
from sklmixed.exceptions import (
    ConvergenceWarning,
    DataError,
    DataTypeError,
    ParameterError,
    RankDeficientWarning,
    RowsNotAvailableError,
    SingularFitWarning,
    user_stacklevel,
)
from sklmixed.formula import build_design, build_design_from_columns

__all__ = ["MixedModelBase", "as_frame", "validate_sample_weight", "warn_rank_deficient"]

# Where the documentation site is published (mkdocs.yml's site_url; a test keeps
# the two equal). The estimators' HTML repr links to their pages there.
DOCS_URL = "https://sklmixed.readthedocs.io/en/latest/"


def _is_table(X) -> bool:
    return isinstance(X, (pd.DataFrame, pd.Series)) or hasattr(X, "to_pandas")


def as_frame(X) -> pd.DataFrame:
    """The user's data as a DataFrame, never modifying (or aliasing) the input.

    pandas frames are used as they are (the formula layer only reads them); polars
    and pyarrow tables convert through their ``to_pandas``; arrays get column names
    ``x0, x1, ...`` as scikit-learn does for unnamed features.
    """
    if isinstance(X, pd.DataFrame):
        return X
    if hasattr(X, "to_pandas"):  # pyarrow.Table, polars.DataFrame
        return X.to_pandas()
    if isinstance(X, pd.Series):
        return X.to_frame()
    arr = np.asarray(X)
    if arr.dtype == object:
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError) as exc:
            raise DataError(
                "X must be a DataFrame or a numeric array; got non-numeric values"
            ) from exc
    if arr.ndim == 1:
        raise DataError(
            "X must be 2-dimensional (a DataFrame or an array of shape (n_samples, "
            "n_features)); reshape a single feature with X.reshape(-1, 1)"
        )
    if arr.ndim != 2:
        raise DataError(f"X must be 2-dimensional; got an array with {arr.ndim} dimensions")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _reject_chunked(X, estimator: str, what: str) -> None:
    """DataTypeError for data read in chunks where only data in memory will do."""
    if as_source(X) is not None:
        raise DataTypeError(
            f"{estimator}.{what} cannot read data in chunks (a pyarrow Dataset) yet; "
            "read the data into memory (dataset.to_table().to_pandas()). Out of core, "
            "MixedLMRegressor's fit, predict and score read it in chunks"
        )


def warn_rank_deficient(problem, design) -> None:
    """Warn, naming the columns, when the core dropped dependent fixed effects."""
    if problem.p < problem.p_full:
        kept = set(problem.keep.tolist())
        dropped = [design.coef_names[i] for i in range(problem.p_full) if i not in kept]
        warnings.warn(
            f"fixed-effects model matrix is rank deficient: dropped {dropped} "
            "(linearly dependent on earlier columns); their coefficients are "
            "reported as -0.0 with NaN standard error",
            RankDeficientWarning,
            stacklevel=user_stacklevel(),
        )


def check_glmm_design(est, family, reterms, has_weights: bool) -> None:
    """What a GLMM's options need of its design, in memory or in chunks: quadrature
    (nagq > 1) a single scalar term; the binomial family the numbers of trials
    (a warning without them)."""
    if est.nagq > 1 and (len(reterms) != 1 or reterms[0].k != 1):
        raise ParameterError(
            f"nagq={est.nagq} (adaptive Gauss-Hermite quadrature) needs a single "
            "scalar random-effects term such as (1|g); this model has "
            + ", ".join(f"{t.name} ({t.k} columns)" for t in reterms)
            + "; use nagq=1 (Laplace)"
        )
    if family.name == "binomial" and not has_weights:
        warnings.warn(
            "binomial family without sample_weight: every proportion is taken as one "
            "trial; pass the numbers of trials as sample_weight",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def optimize_lmm(est, problem, design, theta0, fit_lmm):
    """``fit_lmm(problem, ...)`` with the estimator's settings (the caller's
    ``_optim.fit_lmm``), then the FitResult and the random effects on the user's
    scale: ``(result, b, u)``. A failed factorization as a FitError (a safety
    net: never numpy's error)."""
    from sklmixed._results import lmm_result
    from sklmixed.exceptions import FitError

    try:
        theta, optsum = fit_lmm(
            problem, optimizer=est.optimizer, maxfeval=est.maxfeval, theta0=theta0
        )
        result = lmm_result(problem, theta, optsum, design.formula_text, design.coef_names)
        b, u = problem.user_ranef(problem.u(), theta)  # internal theta -> user's scale
    except np.linalg.LinAlgError as exc:
        raise FitError(
            f"the factorization failed ({exc}); try a simpler random-effects structure"
        ) from exc
    return result, b, u


def optimize_glmm(est, problem, theta0, beta0, fit_glmm):
    """``fit_glmm(problem, ...)`` with the estimator's settings (the caller's
    ``_optim.fit_glmm``); a PIRLS failure as a FitError."""
    from sklmixed.exceptions import FitError

    try:
        return fit_glmm(
            problem,
            fast=bool(est.fast),
            optimizer=est.optimizer,
            maxfeval=est.maxfeval,
            theta0=theta0,
            beta0=beta0,
        )
    except (RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:  # PIRLS
        raise FitError(
            f"{exc}. Try fast=True, a simpler random-effects structure, or check "
            "the response for complete separation"
        ) from exc


def warn_separation(est, extreme: int) -> None:
    """Warn that ``extreme`` fitted probabilities are numerically 0 or 1."""
    if not extreme:
        return
    worst = est.coef_names_[int(np.nanargmax(np.abs(est.coef_ / est.stderror_)))]
    warnings.warn(
        f"fitted probabilities numerically 0 or 1 for {extreme} observations: "
        "the response looks (quasi-)completely separated (the largest "
        f"|coefficient / SE| is {worst!r}); estimates and standard errors of "
        "the separating effects are not meaningful",
        ConvergenceWarning,
        stacklevel=user_stacklevel(),
    )


def _theta_layout(problem) -> tuple:
    """What theta's elements mean: terms in order, their columns and free positions."""
    return tuple((t.name, tuple(t.cnames), t.inds.tobytes()) for t in problem.terms)


# optimizer return values that mean convergence
_CONVERGED = ("SUCCESS", "FTOL_REACHED", "XTOL_REACHED", "STOPVAL_REACHED")


def _converged(optsum) -> bool:
    return optsum is None or optsum.returnvalue in _CONVERGED


def _result(est, attribute: str):
    """The estimator's FitResult, or the AttributeError of an unfitted estimator."""
    try:
        return est.__dict__["result_"]
    except KeyError:
        raise AttributeError(f"{attribute} is set by fit") from None


def _from_result(field: str, doc: str, convert=None) -> property:
    """A fitted attribute read from the FitResult's ``field`` (one record of the
    fit, nothing copied that could drift from it)."""
    name = field + "_"

    def get(self):
        value = getattr(_result(self, name), field)
        return value if convert is None else convert(value)

    get.__doc__ = doc
    return property(get)


class MixedModelBase(BaseEstimator):
    """Shared behaviour of the mixed-model estimators (not for direct use)."""

    # scikit-learn's HTML repr (notebooks) links the estimator's name to this page
    # and each parameter and fitted attribute to its entry there (a text fragment
    # made of the name and its docstring type line, which the site displays).
    _doc_link_module = "sklmixed"
    _doc_link_template = DOCS_URL + "api/{estimator_name}/"

    # ------------------------------------------------------------ validation

    def _validate_params(self) -> None:
        """scikit-learn's hook, called first in ``fit``: the hyperparameters against
        ``_parameter_constraints``, then those that depend on each other. (Not
        through scikit-learn's ``_fit_context`` decorator: its frame between the
        user's line and ``fit`` would take the blame for every warning of the fit.)"""
        validate_hyperparameters(self)
        self._validate_related_params()

    def _validate_related_params(self) -> None:
        """Checks that involve more than one hyperparameter (none here)."""

    def _groups_list(self) -> list:
        if self.groups is None:
            return []
        # one column key (a name, or an integer for a frame with integer column
        # labels), or a list of them (validated by ``_parameter_constraints``)
        if isinstance(self.groups, (str, numbers.Integral)):
            return [self.groups]
        return list(self.groups)

    # ----------------------------------------------------------------- design

    def _design(self, X, y):
        """Build the design; return it with the response (raw values) or raise.

        DataFrames (and tables with ``to_pandas``) go to the formula layer as they
        are; arrays are validated the scikit-learn way (numeric, 2-D, dense, at
        least two samples) and get column names ``x0, x1, ...``.
        """
        if not isinstance(X, pd.DataFrame):  # a DataFrame is in memory
            _reject_chunked(X, type(self).__name__, "fit")
        if _is_table(X):
            df = as_frame(X)
            # What sklearn's validation records, without its dataframe round trip
            # (which costs more than fitting a small model).
            self.n_features_in_ = df.shape[1]
            # all labels str, from what pandas caches on the Index (iterating an
            # Arrow-backed Index of three labels costs ~6 us); a str Index may hold NaN
            labels = df.columns
            if labels.inferred_type in ("string", "empty") and not labels.hasnans:
                self.feature_names_in_ = feature_names(labels)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            if y is not None:
                y = validate_target(y, df.shape[0])
        else:
            if self.formula is not None:
                raise DataTypeError(
                    "a formula needs X as a DataFrame whose columns it names; got "
                    f"{type(X).__name__}"
                )
            if y is None:
                raise DataError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None"
                )
            X, y = validate_array(
                self, X, y, reset=True, ensure_min_samples=2, y_numeric=not is_classifier(self)
            )
            df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if df.shape[0] == 0:
            raise DataError("cannot fit a model to empty data (0 rows)")
        fetched = {}  # the columns the design read, for column_kinds
        if self.formula is not None:
            # With y given, y is the response: the left-hand side is not evaluated
            # (X need not hold its columns).
            design = build_design(
                self.formula, df, self.contrasts, with_response=y is None, fetched=fetched
            )
            response = y if y is not None else design.y
            if response is None:
                raise DataError("the formula has no response (left of '~') and y was not given")
        else:
            groups = self._groups_list()
            missing = [g for g in groups if g not in df.columns]
            if missing:
                raise DataError(
                    f"groups names columns not in X: {missing}; columns are {list(df.columns)}"
                )
            if y is None:
                raise DataError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None"
                )
            fixed = [c for c in df.columns if c not in groups]
            design = build_design_from_columns(df, fixed=fixed, groups=groups, response=y)
            response = y
        # what each used column held, so that predict can restore changed types
        self._column_kinds = column_kinds(df, design.used_columns, fetched)
        return design, response

    def _score_target(self, X, y):
        """The true values for ``score``: ``y`` as given, else the formula's
        left-hand side evaluated on X (so that a frame holding the response scores
        without a separate y, as in ``GridSearchCV(...).fit(df)``)."""
        if y is not None:
            return y
        check_is_fitted(self, "design_")
        if not self.design_.has_response:  # formula=None, or no left-hand side
            raise DataError(
                f"{type(self).__name__}.score needs y: the model has no formula response "
                "to take it from"
            )
        return self.design_.response(self._new_frame(X))

    def _new_frame(self, X) -> pd.DataFrame:
        """New data for prediction: tables as they are, arrays validated against fit."""
        reject_dask(X)  # the prediction methods map Dask frames over partitions before this
        _reject_chunked(X, type(self).__name__, "predict")
        if _is_table(X):
            return conform_columns(as_frame(X), self.__dict__.get("_column_kinds", {}))
        X = validate_new_array(self, X)
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])

    # ----------------------------------------------------------- warm start

    def _warm_start(self, problem, coef_names) -> tuple:
        """(theta0, beta0) for a refit: the previous fit's ``theta_`` when
        ``warm_start`` is set and the new model has the same theta layout, and its
        fixed effects too when their columns are the same; None otherwise."""
        if not getattr(self, "warm_start", False) or "_warm_layout" not in self.__dict__:
            return None, None
        layout, names, keep = self._warm_layout
        if layout != _theta_layout(problem):
            return None, None
        same_beta = names == tuple(coef_names) and keep == problem.keep.tobytes()
        return np.array(self.theta_), (np.array(self.fixef_) if same_beta else None)

    # ----------------------------------------------------------- attributes

    def _set_fitted(self, result, design, problem, b, u, y) -> None:
        """Keep the FitResult (the fitted attributes read it) and the conditional
        modes; warn about a singular or unconverged fit."""
        self.result_ = result
        self._warm_layout = (
            _theta_layout(problem),
            tuple(result.coef_names),
            problem.keep.tobytes(),
        )
        self._y_fit = np.asarray(y, dtype=float)
        self.design_ = design
        # Conditional modes per grouping factor, by name: the core orders the terms
        # its own way, and names are unique (terms of one factor are merged).
        self._b_by_name = {t.name: bt for t, bt in zip(problem.terms, b)}
        self._u_by_name = {t.name: ut for t, ut in zip(problem.terms, u)}
        self._ranef_parts = [(t.name, t.levels, t.cnames) for t in problem.terms]
        self._ranef_tables: dict | None = None
        # Singular (boundary) fit: a diagonal element of some lambda at zero, i.e. a
        # zero variance or a degenerate (|correlation| = 1) covariance, as lme4's
        # isSingular (judged on the core's centred, scaled columns).
        small = list(result.boundary or ())
        if small:
            names = []
            for t, sl in zip(problem.terms, problem.theta_slices):
                for i in small:
                    if sl.start <= i < sl.stop:
                        row = int(t.inds[i - sl.start, 0])
                        names.append(f"{t.name}: {t.cnames[row]}")
            warnings.warn(
                f"boundary (singular) fit: {', '.join(names)} "
                f"{'has' if len(names) == 1 else 'have'} zero variance (or a degenerate "
                "covariance); consider removing those random effects",
                SingularFitWarning,
                stacklevel=user_stacklevel(),
            )
        if not _converged(result.optsum):
            warnings.warn(
                f"the optimizer stopped with {result.optsum.returnvalue} after "
                f"{result.optsum.feval} evaluations: the estimates may not be at the "
                "optimum (raise maxfeval, or simplify the random effects)",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    # ------------------------------------------------- the fit's one record

    coef_ = _from_result("coef", "Fixed-effects estimates (-0.0 for dropped columns).")
    coef_names_ = _from_result(
        "coef_names", "Names of the coefficients, as MixedModels.jl's.", convert=list
    )
    theta_ = _from_result("theta", "Relative covariance parameters.")
    sigma_ = _from_result("sigma", "Residual standard deviation (None for a GLMM).")
    vcov_ = _from_result("vcov", "Covariance matrix of the fixed-effects estimates.")
    stderror_ = _from_result("stderror", "Standard errors of the fixed effects.")
    objective_ = _from_result("objective", "The minimized criterion.")
    loglik_ = _from_result("loglik", "The (restricted) log-likelihood.")
    aic_ = _from_result("aic", "Akaike's information criterion.")
    aicc_ = _from_result("aicc", "AIC with the small-sample correction.")
    bic_ = _from_result("bic", "Bayesian information criterion.")
    dof_ = _from_result("dof", "Number of estimated parameters.")
    nobs_ = _from_result("nobs", "Number of observations.")
    optsum_ = _from_result(
        "optsum",
        "The optimizer's record, as MixedModels.jl's ``optsum`` (a dict).",
        convert=lambda o: None if o is None else o.as_dict(),
    )

    @property
    def fixef_(self) -> np.ndarray:
        """The estimable fixed effects only (``coef_`` without dropped columns)."""
        result = _result(self, "fixef_")
        return result.coef[~np.isnan(result.stderror)]

    @property
    def fixef_names_(self) -> list:
        """Names of ``fixef_``."""
        result = _result(self, "fixef_names_")
        return [n for n, se in zip(result.coef_names, result.stderror) if not np.isnan(se)]

    @property
    def is_singular_(self) -> bool:
        """Whether the fit is on the boundary of the parameter space (lme4's
        ``isSingular``)."""
        return bool(_result(self, "is_singular_").boundary)

    @property
    def converged_(self) -> bool:
        """Whether the optimizer reported convergence (not stopped by ``maxfeval``)."""
        return _converged(_result(self, "converged_").optsum)

    # The core problem (block structure, factor) backs condvar(), leverage() and
    # re-evaluations; it can be large (InstEval: 126 MB of the model's 143 MB), so
    # it is not pickled but rebuilt from the design when first needed after loading.
    @property
    def problem_(self):
        if "_problem" not in self.__dict__:
            if "_fit_weights" not in self.__dict__:
                raise AttributeError("problem_ is set by fit")
            self._problem = self._rebuild_problem()
        return self._problem

    def __getstate__(self):
        state = super().__getstate__()
        if not state.get("_out_of_core", False):  # (out of core it cannot be rebuilt)
            state.pop("_problem", None)
        return state

    @property
    def ranef_(self) -> dict:
        """Conditional modes of the random effects, per grouping factor.

        A dict from grouping-factor name (``"subj"``, ``"batch & cask"``) to a
        DataFrame indexed by the factor's levels with one column per random
        effect (``"(Intercept)"``, ``"days"``), on the scale of the response's
        linear predictor: lme4's ``ranef(m)``. Built on first use.
        """
        if "_ranef_parts" not in self.__dict__:
            raise AttributeError("ranef_ is set by fit")
        if self._ranef_tables is None:
            tables: dict = {}
            for name, levels, cnames in self._ranef_parts:
                bt = self._b_by_name[name]
                if levels and isinstance(levels[0], tuple):  # interaction of factors
                    index = pd.MultiIndex.from_tuples(list(levels), names=name.split(" & "))
                else:
                    index = pd.Index(list(levels), name=name)
                tables[name] = pd.DataFrame(bt, index=index, columns=list(cnames))
            self._ranef_tables = tables
            return tables
        return self._ranef_tables

    # ------------------------------------------------------------ prediction

    def _linear_predictor(self, X, offset=None) -> np.ndarray:
        """X beta + Z b + offset for new data; unseen levels follow ``new_levels``.
        The formula's offsets are evaluated on the new rows; ``offset`` adds to them."""
        check_is_fitted(self, "coef_")
        df = self._new_frame(X)
        extra = validate_offset(offset, df.shape[0])
        Xnew, re_parts = self.design_.transform(df)
        eta = Xnew @ np.where(np.isnan(self.stderror_), 0.0, self.coef_)
        for off in (self.design_.offset_for(df), extra):
            if off is not None:
                eta = eta + off
        for term, (refs, z) in zip(self.design_.reterms, re_parts):
            unseen = refs < 0
            if unseen.shape[0] and unseen.all() and self.new_levels == "population":
                warn_all_unseen(term.name, df, term.levels)
            if unseen.any() and self.new_levels == "error":
                values = term_values(df, term.name)
                if values is not None:
                    what = f"levels {sorted(map(str, pd.unique(values[unseen])))[:10]}"
                else:
                    what = f"{int(unseen.sum())} rows with level combinations"
                raise DataError(
                    f"grouping factor {term.name!r}: {what} not seen in fit; use "
                    "new_levels='population' to predict them from the fixed effects alone"
                )
            bt = self._b_by_name[term.name]
            contrib = np.einsum("nk,nk->n", z, bt[np.where(unseen, 0, refs)])
            eta = eta + np.where(unseen, 0.0, contrib)
        return eta

    # ---------------------------------------------------------------- report

    def summary(self):
        """The model summary, as MixedModels.jl prints it.

        Returns
        -------
        summary : sklmixed.report.Summary
            ``print(summary)`` shows MixedModels.jl's text report line for line;
            notebooks render it as HTML tables; ``to_markdown()`` gives Markdown.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> print(m.summary().as_text().splitlines()[0])
        Linear mixed model fit by maximum likelihood
        """
        from sklmixed.report import Summary

        check_is_fitted(self, "result_")
        return Summary(self.result_)

    def coeftable(self, level: float = 0.95, ddf: str | None = None) -> pd.DataFrame:
        """The fixed-effects table: estimates, standard errors, z, p and Wald limits.

        Parameters
        ----------
        level : float, default=0.95
            Coverage of the confidence intervals.
        ddf : {None, "satterthwaite", "kenward-roger"}, default=None
            Linear mixed models: t tests on approximate denominator degrees of
            freedom, as lmerTest (Satterthwaite) and pbkrtest (Kenward-Roger)
            compute them, instead of z tests.

        Returns
        -------
        table : DataFrame
            One row per coefficient (index: ``coef_names_``) with columns
            ``Coef.``, ``Std. Error``, ``z``, ``Pr(>|z|)`` (two-sided, from the
            normal distribution, as MixedModels.jl) and the lower and upper limits;
            with ``ddf``, ``Coef.``, ``Std. Error``, ``df``, ``t``, ``Pr(>|t|)``
            and t-based limits.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> m.coeftable().columns.tolist()
        ['Coef.', 'Std. Error', 'z', 'Pr(>|z|)', 'Lower 95%', 'Upper 95%']
        """
        check_is_fitted(self, "result_")
        if ddf is not None:
            from sklmixed.inference import ddf_coeftable

            return ddf_coeftable(self, level, ddf)
        return self.result_.coeftable(level)

    def varcorr(self):
        """The estimated variance components.

        Returns
        -------
        varcorr : sklmixed.report.VarCorr
            Prints as MixedModels.jl's ``VarCorr`` block; ``table`` is a
            DataFrame of the variances and standard deviations, ``correlations``
            the correlation matrix of each grouping factor.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> m.varcorr().table["group"].tolist()
        ['batch', 'Residual']
        """
        from sklmixed.report import VarCorr

        check_is_fitted(self, "result_")
        return VarCorr(self.result_)

    def ranef(self, uscale: bool = False) -> dict:
        """Conditional modes of the random effects, per grouping factor.

        Parameters
        ----------
        uscale : bool, default=False
            False: the random effects b, as ``ranef_`` (lme4's ``ranef``). True:
            the spherical random effects u, with b = Lambda u, whose prior is
            N(0, sigma^2 I) (MixedModels.jl's ``ranef(m; uscale=true)``).

        Returns
        -------
        modes : dict of str to DataFrame
            Per grouping factor, levels x random-effect columns.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> round(float(m.ranef()["batch"].loc["A", "(Intercept)"]), 4)
        -16.6282
        """
        check_is_fitted(self, "ranef_")
        if not uscale:
            return self.ranef_
        return {
            name: pd.DataFrame(self._u_by_name[name], index=df.index, columns=df.columns)
            for name, df in self.ranef_.items()
        }

    def raneftables(self) -> dict:
        """The conditional modes with the levels as columns (MixedModels.jl's
        ``raneftables``).

        Returns
        -------
        tables : dict of str to DataFrame
            Per grouping factor, ``ranef_[name].reset_index()``: the level
            column(s) followed by one column per random effect.
        """
        check_is_fitted(self, "ranef_")
        return {name: df.reset_index() for name, df in self.ranef_.items()}

    def condvar(self) -> dict:
        """Conditional covariance of the random effects given the data.

        The diagonal blocks of s^2 Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda'
        (MixedModels.jl's ``condVar``, lme4's ``condVar = TRUE``), with s = sigma
        for a linear model and 1 for a GLMM, and W the GLMM's working weights at
        the fit.

        Returns
        -------
        condvar : dict of str to ndarray of shape (n_levels, k, k)
            Per grouping factor, one k x k covariance matrix per level, in the
            order of ``ranef_[name]``'s rows and columns.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> round(float(m.condvar()["batch"][0, 0, 0]), 2)
        362.31
        """
        from sklmixed._core._lmm import conditional_variances

        check_is_fitted(self, "result_")
        problem = self._lmm_problem()
        theta = self.result_.core_theta  # the core's (centred, scaled) theta
        blocks = conditional_variances(problem, theta)  # installs theta; the user's scale
        scale = 1.0 if self.sigma_ is None else self.sigma_**2
        return {t.name: scale * b for t, b in zip(problem.terms, blocks)}

    def _fitted_eta(self) -> np.ndarray:
        eta = self.design_.X @ np.where(np.isnan(self.stderror_), 0.0, self.coef_)
        if getattr(self, "_fit_offset", None) is not None:
            eta = eta + self._fit_offset
        for t in self.design_.reterms:
            eta = eta + np.einsum("nk,nk->n", t.z, self._b_by_name[t.name][t.refs])
        return eta

    def fitted_values(self) -> np.ndarray:
        """Fitted values of the training data.

        Returns
        -------
        fitted : ndarray of shape (n_samples,)
            X beta + Z b for a linear model; the mean response (the inverse link
            of it) for a GLMM.
        """
        check_is_fitted(self, "result_")
        self._require_rows("fitted values")
        eta = self._fitted_eta()
        return self.link_.inverse(eta) if hasattr(self, "link_") else eta

    def residuals(self) -> np.ndarray:
        """Response residuals of the training data.

        Returns
        -------
        residuals : ndarray of shape (n_samples,)
            The response minus ``fitted_values()``; for a classifier the
            response is 1 for ``classes_[1]`` and 0 otherwise.
        """
        check_is_fitted(self, "result_")
        self._require_rows("residuals")
        return self._y_fit - self.fitted_values()

    def _require_rows(self, what: str) -> None:
        """RowsNotAvailableError for ``what`` after a fit out of core."""
        if self.__dict__.get("_out_of_core", False):
            raise RowsNotAvailableError(
                f"{what} need the training data in memory: this model was fitted out of "
                "core, from the data's cross-products only; fit it on a DataFrame (or "
                "use predict on the data, which streams)"
            )

    # ------------------------------------------------------------- inference

    def confint(
        self,
        level: float = 0.95,
        method: str = "wald",
        *,
        n_boot: int = 1000,
        random_state=None,
        n_jobs=None,
        verbose: bool = False,
    ) -> pd.DataFrame:
        """Confidence intervals of the fixed effects and variance parameters.

        Parameters
        ----------
        level : float, default=0.95
            Coverage, strictly between 0 and 1.
        method : {"wald", "profile", "bootstrap"}, default="wald"
            ``"wald"``: coef +- z * standard error for the fixed effects and NaN for
            the variance parameters (lme4's ``confint(method = "Wald")``);
            ``"profile"``: profile-likelihood intervals (lme4's default);
            ``"bootstrap"``: shortest intervals of a parametric bootstrap
            (the ``bootstrap`` method, with the arguments below).
        n_boot : int, default=1000
            Number of bootstrap replicates (``method="bootstrap"`` only).
        random_state : int, numpy Generator or RandomState, optional
            Seed of the bootstrap (``method="bootstrap"`` only).
        n_jobs : int, optional
            Parallel workers of the bootstrap (joblib); None is one.
        verbose : bool, default=False
            Show a progress bar (bootstrap and profile).

        Returns
        -------
        DataFrame
            Columns ``lower`` and ``upper``; rows ``coef_names_``, then per
            random-effects term ``sd(g: col)`` and ``corr(g: col1, col2)``, then
            ``sigma`` (models with a residual scale), or ``shape`` (negative
            binomial) or ``dispersion`` (Gamma, inverse Gaussian).

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)")
        >>> m.fit(load_dataset("sleepstudy")).confint().round(3)
                                         lower    upper
        (Intercept)                    238.406  264.404
        days                             7.523   13.412
        sd(subj: (Intercept))              NaN      NaN
        sd(subj: days)                     NaN      NaN
        corr(subj: (Intercept), days)      NaN      NaN
        sigma                              NaN      NaN
        """
        from sklmixed.inference import confint

        return confint(
            self,
            level,
            method,
            n_boot=n_boot,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )

    def simulate(self, n_sims: int = 1, random_state=None) -> np.ndarray:
        """Responses simulated from the fitted model, shape (n_sims, n_samples).

        Each simulation draws new random effects from the fitted covariance and
        new noise: normal with the fitted sigma (divided by sqrt(sample_weight))
        for a linear mixed model; Bernoulli, binomial (proportions of successes
        out of the sample_weight trials), Poisson, negative binomial (at the
        fitted shape), Gamma or inverse Gaussian (at the fitted dispersion)
        draws at the conditional mean for a GLMM; class labels for the
        classifier. The offsets of the fit are part of the mean.

        Parameters
        ----------
        n_sims : int, default=1
            Number of simulated responses.
        random_state : int, numpy Generator or RandomState, optional
            Seed; the same seed gives the same responses.

        Returns
        -------
        y_sim : ndarray of shape (n_sims, n_samples)
            One simulated response per row (class labels for the classifier).

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> m.simulate(n_sims=3, random_state=0).shape
        (3, 30)
        """
        from sklmixed.inference import simulate

        self._require_rows("simulated responses")
        return simulate(self, n_sims, random_state)

    def bootstrap(self, n_boot: int = 1000, random_state=None, n_jobs=None, verbose=False):
        """Parametric bootstrap: refit the model to responses simulated from it.

        As MixedModels.jl's ``parametricbootstrap``: each replicate simulates a
        response (as ``simulate``) and refits, reusing every part of the fit that
        does not depend on the response and starting from the fitted parameters.

        Parameters
        ----------
        n_boot : int, default=1000
            Number of replicates.
        random_state : int, numpy Generator or RandomState, optional
            The replicates are the same for a given seed whatever ``n_jobs``.
        n_jobs : int, optional
            Parallel workers (joblib); None is one.
        verbose : bool, default=False
            Show a progress bar (tqdm's when installed).

        Returns
        -------
        BootstrapResult
            ``replicates`` (a DataFrame: ``objective`` and the parameters of
            ``confint``, one row per replicate) and ``confint(level, method)``.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> boot = m.bootstrap(n_boot=200, random_state=1)
        >>> boot.replicates.columns.tolist()
        ['objective', '(Intercept)', 'sd(batch: (Intercept))', 'sigma']
        >>> boot.confint().columns.tolist()
        ['lower', 'upper']
        """
        from sklmixed.inference import bootstrap

        self._require_rows("a parametric bootstrap")
        return bootstrap(
            self, n_boot=n_boot, random_state=random_state, n_jobs=n_jobs, verbose=verbose
        )
