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
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from sklmixed.exceptions import (
    ConvergenceWarning,
    DataError,
    RankDeficientWarning,
    SingularFitWarning,
)
from sklmixed.formula import build_design, build_design_from_columns

_NEW_LEVELS = ("population", "error")
_CONTRASTS = ("dummy", "effects", "helmert")


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


def validate_sample_weight(sample_weight, n: int):
    """Finite, non-negative weights of the right length (None passes through)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=float).reshape(-1)
    if w.shape[0] != n:
        raise DataError(f"sample_weight has {w.shape[0]} values for {n} observations")
    if not np.all(np.isfinite(w)):
        raise DataError("sample_weight contains NaN or infinite values")
    if np.any(w < 0):
        raise DataError("sample_weight contains negative values")
    if np.all(w == 0):
        raise DataError(
            "sample_weight is zero for every observation: Sample weights must "
            "contain at least one non-zero number"
        )
    return w


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
            stacklevel=3,
        )


class MixedModelBase(BaseEstimator):
    """Shared behaviour of the mixed-model estimators (not for direct use)."""

    # ------------------------------------------------------------ validation

    def _validate_common(self) -> None:
        if self.formula is not None and not isinstance(self.formula, str):
            raise TypeError(f"formula must be a string or None; got {type(self.formula).__name__}")
        if self.formula is not None and "~" not in self.formula:
            raise ValueError(f"formula must contain '~'; got {self.formula!r}")
        if self.groups is not None:
            groups = [self.groups] if isinstance(self.groups, str) else list(self.groups)
            if not all(isinstance(g, (str, numbers.Integral)) for g in groups):
                raise TypeError("groups must be a column name or a list of column names")
        if self.new_levels not in _NEW_LEVELS:
            raise ValueError(f"new_levels must be one of {_NEW_LEVELS}; got {self.new_levels!r}")
        if self.contrasts is not None:
            if not isinstance(self.contrasts, dict):
                raise TypeError("contrasts must be a dict such as {'days': 'dummy'}")
            for col, coding in self.contrasts.items():
                if coding not in _CONTRASTS:
                    raise ValueError(f"contrasts[{col!r}] = {coding!r}; choose one of {_CONTRASTS}")

    def _groups_list(self) -> list:
        if self.groups is None:
            return []
        return [self.groups] if isinstance(self.groups, str) else list(self.groups)

    # ----------------------------------------------------------------- design

    def _design(self, X, y):
        """Build the design; return it with the response (raw values) or raise.

        DataFrames (and tables with ``to_pandas``) go to the formula layer as they
        are; arrays are validated the scikit-learn way (numeric, 2-D, dense, at
        least two samples) and get column names ``x0, x1, ...``.
        """
        if _is_table(X):
            df = as_frame(X)
            # What sklearn's validation records, without its dataframe round trip
            # (which costs more than fitting a small model).
            self.n_features_in_ = df.shape[1]
            if all(isinstance(c, str) for c in df.columns):
                self.feature_names_in_ = np.asarray(df.columns, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            if y is not None:
                y = column_or_1d(y, warn=True)
                if y.shape[0] != df.shape[0]:
                    raise DataError(f"y has {y.shape[0]} values but X has {df.shape[0]} rows")
        else:
            if self.formula is not None:
                raise TypeError(
                    "a formula needs X as a DataFrame whose columns it names; got "
                    f"{type(X).__name__}"
                )
            if y is None:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None"
                )
            X, y = validate_data(
                self, X, y, reset=True, ensure_min_samples=2, y_numeric=not is_classifier(self)
            )
            df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if df.shape[0] == 0:
            raise DataError("cannot fit a model to empty data (0 rows)")
        if self.formula is not None:
            design = build_design(self.formula, df, self.contrasts)
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
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None"
                )
            fixed = [c for c in df.columns if c not in groups]
            design = build_design_from_columns(df, fixed=fixed, groups=groups, response=y)
            response = y
        return design, response

    def _new_frame(self, X) -> pd.DataFrame:
        """New data for prediction: tables as they are, arrays validated against fit."""
        if _is_table(X):
            return as_frame(X)
        X = validate_data(self, X, reset=False)
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])

    # ----------------------------------------------------------- attributes

    def _set_fitted(self, result, design, problem, b, u, y) -> None:
        """Copy a FitResult and the conditional modes into fitted attributes."""
        self.result_ = result
        self._y_fit = np.asarray(y, dtype=float)
        estimable = ~np.isnan(result.stderror)
        self.fixef_ = result.coef[estimable]
        self.fixef_names_ = [n for n, e in zip(result.coef_names, estimable) if e]
        self.design_ = design
        self.coef_ = result.coef
        self.coef_names_ = list(result.coef_names)
        self.theta_ = result.theta
        self.sigma_ = result.sigma
        self.vcov_ = result.vcov
        self.stderror_ = result.stderror
        self.objective_ = result.objective
        self.loglik_ = result.loglik
        self.aic_ = result.aic
        self.aicc_ = result.aicc
        self.bic_ = result.bic
        self.dof_ = result.dof
        self.nobs_ = result.nobs
        self.optsum_ = result.optsum.as_dict() if result.optsum is not None else None
        self.converged_ = result.optsum is None or result.optsum.returnvalue in (
            "SUCCESS",
            "FTOL_REACHED",
            "XTOL_REACHED",
            "STOPVAL_REACHED",
        )
        # Conditional modes per grouping factor, in the design's term order.
        self._b_by_term = {}
        self._u_by_name = {}
        self._ranef_parts = []
        for t, bt, ut in zip(problem.terms, b, u):
            self._b_by_term[id(t)] = bt
            self._u_by_name[t.name] = ut
            self._ranef_parts.append((t.name, t.levels, t.cnames, bt))
        self._ranef_tables: dict | None = None
        self._term_order = [id(t) for t in design.reterms]
        # Singular (boundary) fit: a diagonal element of some lambda at zero, i.e. a
        # zero variance or a degenerate (|correlation| = 1) covariance, as lme4's
        # isSingular (tolerance 1e-4 on theta).
        diag = problem.diag_positions()
        small = [i for i in diag if abs(result.theta[i]) < 1e-4]
        if result.boundary is not None:  # judged on the core's centred, scaled columns
            small = list(result.boundary)
        self.is_singular_ = bool(small)
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
                stacklevel=4,
            )
        if not self.converged_:
            warnings.warn(
                f"the optimizer stopped with {result.optsum.returnvalue} after "
                f"{result.optsum.feval} evaluations: the estimates may not be at the "
                "optimum (raise maxfeval, or simplify the random effects)",
                ConvergenceWarning,
                stacklevel=4,
            )

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
        state.pop("_problem", None)
        return state

    @property
    def ranef_(self) -> dict:
        """Conditional modes per grouping factor: DataFrames (levels x columns),
        built on first use (most fits never look at them)."""
        if "_ranef_parts" not in self.__dict__:
            raise AttributeError("ranef_ is set by fit")
        if self._ranef_tables is None:
            tables: dict = {}
            for name, levels, cnames, bt in self._ranef_parts:
                if levels and isinstance(levels[0], tuple):  # interaction of factors
                    index = pd.MultiIndex.from_tuples(list(levels), names=name.split(" & "))
                else:
                    index = pd.Index(list(levels), name=name)
                tables[name] = pd.DataFrame(bt, index=index, columns=list(cnames))
            self._ranef_tables = tables
            return tables
        return self._ranef_tables

    # ------------------------------------------------------------ prediction

    def _linear_predictor(self, X) -> np.ndarray:
        """X beta + Z b for new data; unseen levels follow ``new_levels``."""
        check_is_fitted(self, "coef_")
        df = self._new_frame(X)
        Xnew, re_parts = self.design_.transform(df)
        eta = Xnew @ np.where(np.isnan(self.stderror_), 0.0, self.coef_)
        for term, tid, (refs, z) in zip(self.design_.reterms, self._term_order, re_parts):
            unseen = refs < 0
            if unseen.any() and self.new_levels == "error":
                if term.name in df.columns:
                    what = f"levels {sorted(map(str, pd.unique(df[term.name][unseen])))[:10]}"
                else:
                    what = f"{int(unseen.sum())} rows with level combinations"
                raise DataError(
                    f"grouping factor {term.name!r}: {what} not seen in fit; use "
                    "new_levels='population' to predict them from the fixed effects alone"
                )
            bt = self._b_by_term[tid]
            contrib = np.einsum("nk,nk->n", z, bt[np.where(unseen, 0, refs)])
            eta = eta + np.where(unseen, 0.0, contrib)
        return eta

    # ---------------------------------------------------------------- report

    def summary(self):
        """The MixedModels.jl model summary (``str`` text, HTML in notebooks)."""
        from sklmixed.report import Summary

        check_is_fitted(self, "result_")
        return Summary(self.result_)

    def coeftable(self, level: float = 0.95) -> pd.DataFrame:
        """Coefficients, standard errors, z, p and confidence limits at ``level``.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> m.coeftable().columns.tolist()
        ['Coef.', 'Std. Error', 'z', 'Pr(>|z|)', 'Lower 95%', 'Upper 95%']
        """
        check_is_fitted(self, "result_")
        return self.result_.coeftable(level)

    def varcorr(self):
        """The variance components: prints as MixedModels.jl's ``VarCorr``; its
        ``table`` is a DataFrame of variances, SDs and correlations."""
        from sklmixed.report import VarCorr

        check_is_fitted(self, "result_")
        return VarCorr(self.result_)

    def ranef(self, uscale: bool = False) -> dict:
        """Conditional modes per grouping factor; ``uscale=True`` gives them on the
        spherical (u) scale, where their prior is N(0, sigma^2 I)."""
        check_is_fitted(self, "ranef_")
        if not uscale:
            return self.ranef_
        return {
            name: pd.DataFrame(self._u_by_name[name], index=df.index, columns=df.columns)
            for name, df in self.ranef_.items()
        }

    def raneftables(self) -> dict:
        """Per grouping factor, a DataFrame with the level column(s) and the modes."""
        check_is_fitted(self, "ranef_")
        return {name: df.reset_index() for name, df in self.ranef_.items()}

    def condvar(self) -> dict:
        """Conditional covariance of the random effects given the data, per
        grouping factor an array (levels, k, k): the diagonal blocks of
        s^2 Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda' (MixedModels.jl's
        ``condVar``; s = sigma for an LMM, 1 for a GLMM, W its working weights).

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
        problem.update(theta)
        blocks = conditional_variances(problem, theta)  # on the user's scale
        scale = 1.0 if self.sigma_ is None else self.sigma_**2
        return {t.name: scale * b for t, b in zip(problem.terms, blocks)}

    def _fitted_eta(self) -> np.ndarray:
        X, parts = self.design_.X, [(t.refs, t.z) for t in self.design_.reterms]
        eta = X @ np.where(np.isnan(self.stderror_), 0.0, self.coef_)
        for tid, (refs, z) in zip(self._term_order, parts):
            eta = eta + np.einsum("nk,nk->n", z, self._b_by_term[tid][refs])
        return eta

    def fitted_values(self) -> np.ndarray:
        """Fitted values of the training data (the mean response for a GLMM)."""
        check_is_fitted(self, "result_")
        eta = self._fitted_eta()
        return self.link_.inverse(eta) if hasattr(self, "link_") else eta

    def residuals(self) -> np.ndarray:
        """Response residuals of the training data, y - fitted."""
        return self._y_fit - self.fitted_values()
