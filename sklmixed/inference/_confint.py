"""Confidence intervals of a fitted model's parameters: Wald, profile or bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import InferenceError
from sklmixed.inference._params import check_level, parameter_names

METHODS = ("wald", "profile", "bootstrap")


def wald_confint(model, level: float) -> pd.DataFrame:
    """coef +- z_{(1+level)/2} * stderror for the fixed effects; NaN rows for the
    variance parameters, which have no Wald interval (lme4's ``confint(method =
    "Wald")``). Coefficients dropped as not estimable have NaN limits."""
    result = model.result_
    names = parameter_names(model)
    q = stats.norm.ppf(0.5 + level / 2)
    lower = np.full(len(names), np.nan)
    upper = np.full(len(names), np.nan)
    p = len(result.coef_names)
    lower[:p] = result.coef - q * result.stderror
    upper[:p] = result.coef + q * result.stderror
    return pd.DataFrame({"lower": lower, "upper": upper}, index=names)


def _profile_confint(model, level: float) -> pd.DataFrame:
    try:
        from sklmixed.inference._profile import profile_confint
    except ModuleNotFoundError as exc:
        if exc.name != "sklmixed.inference._profile":
            raise
        raise NotImplementedError(
            "profile intervals are not available in this version of sklmixed; use "
            "method='wald' or method='bootstrap'"
        ) from None
    table = profile_confint(model, level)
    names = parameter_names(model)
    if set(table.index) == set(names):  # the rows in the common order
        table = table.loc[names]
    return table


def confint(
    model,
    level: float = 0.95,
    method: str = "wald",
    *,
    n_boot: int = 1000,
    random_state=None,
    n_jobs=None,
    verbose: bool = False,
) -> pd.DataFrame:
    """Confidence intervals by ``method``; see the estimators' ``confint``."""
    level = check_level(level)
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise InferenceError(f"unknown confint method {method!r}; choose one of {list(METHODS)}")
    check_is_fitted(model, "result_")
    method = method.lower()
    if method == "wald":
        return wald_confint(model, level)
    if method == "profile":
        return _profile_confint(model, level)
    from sklmixed.inference._bootstrap import bootstrap

    boot = bootstrap(
        model, n_boot=n_boot, random_state=random_state, n_jobs=n_jobs, verbose=verbose
    )
    return boot.confint(level, method="shortest")
