"""Frozen results of a fit: everything the report and the estimators read.

The numeric core and the optimizer produce a :class:`FitResult`; the report layer
renders it without recomputing anything; the estimators copy its fields into their
fitted attributes. Keeping this a plain frozen record keeps the report a pure
function of the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class VarComp:
    """The variance components of one grouping factor.

    Attributes
    ----------
    group : str
        Grouping factor as printed (``"subj"``, ``"batch & cask"``).
    columns : tuple of str
        Random-effect column names (``"(Intercept)"``, ``"days"``, ``"days: 1"``).
    sd : ndarray, shape (k,)
        Standard deviations on the response scale (sigma * row norms of lambda; for
        families without dispersion, the row norms themselves).
    corr : ndarray, shape (k, k)
        Correlation matrix (NaN where a standard deviation is zero).
    structural_zero : ndarray of bool, shape (k, k)
        True where the correlation is zero by construction (printed ``.``).
    nlevels : int
        Number of levels of the grouping factor.
    """

    group: str
    columns: tuple
    sd: np.ndarray
    corr: np.ndarray
    structural_zero: np.ndarray
    nlevels: int

    @property
    def variance(self) -> np.ndarray:
        return self.sd**2


@dataclass(frozen=True, eq=False)
class OptSummary:
    """What the optimizer did (MixedModels.jl's ``optsum``)."""

    initial: np.ndarray
    final: np.ndarray
    finitial: float
    fmin: float
    feval: int
    optimizer: str
    returnvalue: str
    ftol_rel: float
    ftol_abs: float
    xtol_abs: float
    maxfeval: int
    fitlog: list = field(default_factory=list)  # [(params, objective), ...] every evaluation

    def as_dict(self) -> dict[str, Any]:
        return {
            "initial": self.initial,
            "final": self.final,
            "finitial": self.finitial,
            "fmin": self.fmin,
            "feval": self.feval,
            "optimizer": self.optimizer,
            "returnvalue": self.returnvalue,
            "ftol_rel": self.ftol_rel,
            "ftol_abs": self.ftol_abs,
            "xtol_abs": self.xtol_abs,
            "maxfeval": self.maxfeval,
            "fitlog": self.fitlog,
        }


@dataclass(frozen=True, eq=False)
class FitResult:
    """A finished fit of a linear or generalized linear mixed model.

    ``family`` is None for a linear mixed model. For a GLMM it is the family name
    (``"bernoulli"``, ``"binomial"``, ``"poisson"``) and ``link`` the link name
    (``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``, ...).
    """

    formula: str
    nobs: int
    coef: np.ndarray
    coef_names: tuple
    stderror: np.ndarray  # NaN for coefficients dropped as not estimable
    vcov: np.ndarray
    theta: np.ndarray
    sigma: float | None
    varcomps: tuple  # of VarComp, in the core's term order
    objective: float
    loglik: float
    aic: float
    aicc: float
    bic: float
    dof: int
    reml: bool = False
    family: str | None = None
    link: str | None = None
    nagq: int = 1
    deviance: float | None = None
    optsum: OptSummary | None = None

    @property
    def is_glmm(self) -> bool:
        return self.family is not None

    def coeftable(self, level: float = 0.95) -> pd.DataFrame:
        """Coefficients, standard errors, z, p (normal) and confidence limits."""
        from scipy import stats

        z = self.coef / self.stderror
        p = 2 * stats.norm.sf(np.abs(z))
        q = stats.norm.ppf(0.5 + level / 2)
        pct = f"{100 * level:g}%"
        return pd.DataFrame(
            {
                "Coef.": self.coef,
                "Std. Error": self.stderror,
                "z": z,
                "Pr(>|z|)": p,
                f"Lower {pct}": self.coef - q * self.stderror,
                f"Upper {pct}": self.coef + q * self.stderror,
            },
            index=pd.Index(list(self.coef_names), name="Name"),
        )
