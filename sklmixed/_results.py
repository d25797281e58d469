"""Frozen results of a fit: everything the report and the estimators read.

The numeric core and the optimizer produce a :class:`FitResult`; the report layer
renders it without recomputing anything; the estimators copy its fields into their
fitted attributes. Keeping this a plain frozen record keeps the report a pure
function of the numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sklmixed.exceptions import (
    ConvergenceWarning,
    FitError,
    IllConditionedWarning,
    user_stacklevel,
)


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
    # Positions in theta of the diagonal elements of lambda judged at the boundary
    # (a zero variance or a degenerate covariance), decided on the core's centred
    # and scaled columns so that the verdict does not depend on units.
    boundary: tuple | None = None
    # The parameters in the core's coordinates (centred and scaled columns), from
    # which the core problem is restored exactly (pickles, condvar, leverage).
    core_theta: np.ndarray | None = None
    core_beta: np.ndarray | None = None
    # the negative binomial's shape, or the Gamma / inverse Gaussian dispersion phi
    dispersion: float | None = None

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


def _varcomps(terms, theta_slices, theta, scale: float, weights=None, present=None) -> tuple:
    """Variance components of each term: SDs and correlations of scale * lambda.

    The levels counted are those met in rows of positive weight: zero prior weights
    remove an observation (lme4), and a level seen only there is not in the data.
    ``present``: those counts per term where the rows are not at hand (a fit out
    of core counted them while reading the data).
    """
    out = []
    positive = None if weights is None else np.asarray(weights) > 0
    for j, (t, s) in enumerate(zip(terms, theta_slices)):
        nlevels = t.nlevels if positive is None else int(np.unique(t.refs[positive]).shape[0])
        if present is not None:
            nlevels = present[j]
        lam = t.lambda_from_theta(theta[s]) * scale
        cov = lam @ lam.T
        sd = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sd, sd)
        corr[np.outer(sd, sd) == 0] = np.nan
        np.fill_diagonal(corr, 1.0)
        out.append(VarComp(t.name, tuple(t.cnames), sd, corr, t.structural_zero, nlevels))
    return tuple(out)


def information_criteria(objective: float, dof: int, nobs: int) -> dict[str, float]:
    """AIC, AICc and BIC from -2 log L (DESIGN.md section 4)."""
    aic = objective + 2 * dof
    denom = nobs - dof - 1
    aicc = aic + 2 * dof * (dof + 1) / denom if denom > 0 else np.inf
    return {"aic": aic, "aicc": aicc, "bic": objective + dof * np.log(nobs)}


# lme4's isSingular tolerance on the diagonal of lambda (on the core's columns).
BOUNDARY_TOL = 1e-4


def boundary_positions(problem, theta) -> tuple:
    """Diagonal positions of theta below :data:`BOUNDARY_TOL` (internal theta)."""
    pos = problem.diag_positions()
    return tuple(pos[np.abs(np.asarray(theta, dtype=float)[pos]) < BOUNDARY_TOL].tolist())


def user_optsum(optsum: OptSummary | None, problem, offset: float, ntheta: int):
    """The optimizer's record on the user's scale: theta (and beta) of the user's
    columns, objectives shifted by ``offset`` (the identity for unscaled data).
    ``ntheta`` counts the optimizer's covariance parameters: theta, and a GLMM's
    log dispersion (unchanged by the scaling) where it has one."""
    if optsum is None or (problem.scaling.identity and offset == 0.0):
        return optsum

    nth = problem.ntheta  # ntheta - nth: a GLMM's log dispersion after theta (as it is)

    def params(x):
        x = np.asarray(x, dtype=float)
        p = x.shape[0] - ntheta  # 0, or the GLMM joint stage's [beta; theta]
        theta = np.concatenate((problem.user_theta(x[p : p + nth]), x[p + nth :]))
        if p == 0:
            return theta
        return np.concatenate((problem.user_beta(x[:p]), theta))

    return replace(
        optsum,
        initial=params(optsum.initial),
        final=params(optsum.final),
        finitial=optsum.finitial + offset,
        fmin=optsum.fmin + offset,
        fitlog=[(params(x), f + offset) for x, f in optsum.fitlog],
    )


def check_finite(objective: float, stderror: np.ndarray, keep, coef_names) -> None:
    """Never hand back an infinite objective or a non-finite or zero standard
    error silently (DESIGN.md section 8)."""
    if not np.isfinite(objective):
        raise FitError(
            f"the objective at the optimum is not finite ({objective}); check the data "
            "for a response that the model fits exactly or columns on extreme scales"
        )
    se = stderror[keep]
    ok = np.isfinite(se) & (se > 0)
    if not ok.all():
        bad = [coef_names[int(j)] for j in keep[~ok]]
        warnings.warn(
            f"the standard errors of {bad} are not finite and positive: the fixed-effects "
            "columns are (nearly) collinear even after centring and scaling; remove or "
            "combine those columns",
            IllConditionedWarning,
            stacklevel=user_stacklevel(),
        )


def lmm_result(problem, theta, optsum, formula: str, coef_names) -> FitResult:
    """Assemble the FitResult of a converged linear mixed model.

    ``problem`` holds the factor L at ``theta`` (the core's internal theta);
    everything is reported on the user's scale. Coefficients of columns dropped
    for rank deficiency are reported as -0.0 with NaN standard error and NaN rows
    and columns in vcov, as MixedModels.jl does.
    """
    p_full, keep = problem.p_full, problem.keep
    scale2 = problem.scaling.y_scale**2
    sigma2_internal = problem.sigma2()
    sigma2 = sigma2_internal * scale2
    beta = problem.user_beta(problem.beta())
    coef = np.full(p_full, -0.0)
    coef[keep] = beta
    vcov = np.full((p_full, p_full), np.nan)
    vcov[np.ix_(keep, keep)] = problem.user_vcov(sigma2_internal * problem.rxx_inverse())
    stderror = np.sqrt(np.diag(vcov))
    offset = problem.objective_offset()
    objective = problem._objective_from_L() + offset
    if not problem.exact_fit:  # an exact least-squares fit has been reported already
        check_finite(objective, stderror, keep, coef_names)
    dof = problem.p + problem.ntheta + 1
    ic = information_criteria(objective, dof, problem.nobs)
    sigma = float(np.sqrt(sigma2))
    core_theta = np.asarray(theta, dtype=float)
    theta = problem.user_theta(core_theta)
    optsum = user_optsum(optsum, problem, offset, problem.ntheta)
    return FitResult(
        formula=formula,
        nobs=problem.nobs,
        coef=coef,
        coef_names=tuple(coef_names),
        stderror=stderror,
        vcov=vcov,
        theta=np.asarray(theta, dtype=float),
        sigma=sigma,
        varcomps=_varcomps(
            problem.terms,
            problem.theta_slices,
            theta,
            sigma,
            problem.weights,
            getattr(problem, "nlevels_present", None),
        ),
        objective=objective,
        loglik=-objective / 2,
        aic=ic["aic"],
        aicc=ic["aicc"],
        bic=ic["bic"],
        dof=dof,
        reml=problem.reml,
        optsum=optsum,
        boundary=boundary_positions(problem, core_theta),
        core_theta=core_theta,
    )


def glmm_result(problem, beta, theta, optsum, formula: str, coef_names, fast: bool) -> FitResult:
    """Assemble the FitResult of a converged GLMM (problem left at the optimum).

    ``beta`` and ``theta`` are the core's internal parameters; everything is
    reported on the user's scale (the deviance does not depend on it).
    """
    lmm = problem.lmm
    p_full, keep = lmm.p_full, lmm.keep
    core_beta = np.asarray(beta, dtype=float)
    core_theta = np.asarray(theta, dtype=float)
    coef = np.full(p_full, -0.0)
    coef[keep] = lmm.user_beta(core_beta)
    vcov = np.full((p_full, p_full), np.nan)
    family = problem.family
    deviance = float(optsum.fmin)
    dispersion = None
    cov = None
    if family.has_dispersion:
        # as glmmTMB: the inverse Hessian of the deviance over all parameters (of
        # the core's internal beta and theta; mapped to the user's columns below)
        dispersion = float(family.param)
        cov = problem.hessian_vcov(np.append(core_theta, np.log(dispersion)), core_beta)
        if cov is None:
            warnings.warn(
                "the Hessian of the deviance is not positive definite at the estimates: "
                "standard errors are from the PIRLS factor instead (they ignore the "
                "uncertainty of the covariance parameters and the dispersion)",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
    if cov is None:
        # The covariance of beta is (R_X R_X')^{-1} of the factor at the converged
        # working weights, as MixedModels.jl's vcov.
        cov = lmm.rxx_inverse()
    vcov[np.ix_(keep, keep)] = lmm.user_vcov(cov)
    theta = lmm.user_theta(core_theta)
    optsum = user_optsum(optsum, lmm, 0.0, lmm.ntheta + int(family.has_dispersion))
    stderror = np.sqrt(np.diag(vcov))
    check_finite(deviance, stderror, keep, coef_names)
    if family.has_dispersion:
        loglik = -deviance / 2  # the deviance is the full -2 log L here
    else:
        usq = sum(float(np.sum(u**2)) for u in problem.u)
        loglik = problem.conditional_loglik(problem._eta) - (usq + lmm.logdet_re()) / 2
    dof = lmm.p + lmm.ntheta + int(family.has_dispersion)
    # zero prior weights remove an observation: it counts in neither n nor the criteria
    ic = information_criteria(-2 * loglik, dof, lmm.nobs)
    return FitResult(
        formula=formula,
        nobs=lmm.nobs,
        coef=coef,
        coef_names=tuple(coef_names),
        stderror=stderror,
        vcov=vcov,
        theta=np.asarray(theta, dtype=float),
        sigma=None,
        varcomps=_varcomps(
            lmm.terms,
            lmm.theta_slices,
            theta,
            1.0,
            problem.pw,
            getattr(lmm, "nlevels_present", None),  # counted in the chunks' passes
        ),
        objective=deviance,
        loglik=loglik,
        aic=ic["aic"],
        aicc=ic["aicc"],
        bic=ic["bic"],
        dof=dof,
        family=problem.family.name,
        link=problem.link.name,
        nagq=problem.nagq,
        deviance=deviance,
        optsum=optsum,
        boundary=boundary_positions(lmm, core_theta),
        core_theta=core_theta,
        core_beta=core_beta,
        dispersion=dispersion,
    )
