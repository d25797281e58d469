"""Frozen results of a fit: everything the report and the estimators read.

The numeric core and the optimizer produce a :class:`FitResult`; the report layer
renders it without recomputing anything; the estimators copy its fields into their
fitted attributes. Keeping this a plain frozen record keeps the report a pure
function of the numbers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sklmixed._optim import OptSummary
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
        sd, corr, zero = _components(t, theta, s, scale)
        out.append(VarComp(t.name, tuple(t.cnames), sd, corr, zero, nlevels))
    return tuple(out)


def _components(t, theta, s: slice, scale: float) -> tuple:
    """SDs, correlations and structural zeros of term ``t`` (theta[s] its part)."""
    k = t.k
    if k == 1:
        lam = float(theta[s.start]) * scale
        if abs(lam) < 1e150:
            # A scalar term, most terms: the general route's arithmetic on its one
            # element (lambda scale, its square, the root: the same roundings), whose
            # correlation is [1] and structure [no zero], without its dozen numpy
            # calls of ~1 us each. (Beyond 1e150 the square overflows, where the
            # general route's product warns.)
            return np.array([math.sqrt(lam * lam)]), np.array([[1.0]]), np.array([[False]])
    lam = t.lambda_from_theta(theta[s]) * scale
    cov = lam @ lam.T
    sd = np.sqrt(cov.diagonal())
    sdsd = sd[:, None] * sd  # np.outer's products
    if all(1e-150 < v < 1e150 for v in sd.tolist()):
        corr = cov / sdsd  # every product positive and finite: nothing to mask
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / sdsd
        corr[sdsd == 0] = np.nan
    corr.flat[:: k + 1] = 1.0  # the diagonal (np.fill_diagonal's assignment)
    # every position of lambda free (the usual vector term): its first column links
    # every pair, so no correlation is zero by construction
    full = t.ntheta == k * (k + 1) // 2
    return sd, corr, np.zeros((k, k), dtype=bool) if full else t.structural_zero


def information_criteria(objective: float, dof: int, nobs: int) -> dict[str, float]:
    """AIC, AICc (AIC + 2 k (k + 1) / (n - k - 1), infinite where n - k - 1 <= 0)
    and BIC from -2 log L, as MixedModels.jl's."""
    aic = objective + 2 * dof
    denom = nobs - dof - 1
    aicc = aic + 2 * dof * (dof + 1) / denom if denom > 0 else np.inf
    return {"aic": aic, "aicc": aicc, "bic": objective + dof * np.log(nobs)}


# lme4's isSingular tolerance on the diagonal of lambda (on the core's columns).
BOUNDARY_TOL = 1e-4


def boundary_positions(problem, theta) -> tuple:
    """Diagonal positions of theta below :data:`BOUNDARY_TOL` (internal theta)."""
    values = np.asarray(theta, dtype=float).tolist()  # a few numbers: Python's floats
    return tuple([i for i in problem.diag_positions().tolist() if abs(values[i]) < BOUNDARY_TOL])


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
    error silently."""
    if not math.isfinite(objective):
        raise FitError(
            f"the objective at the optimum is not finite ({objective}); check the data "
            "for a response that the model fits exactly or columns on extreme scales"
        )
    # one comparison per coefficient in Python's floats (p is small; NaN fails it)
    se = stderror.tolist()
    bad = [coef_names[j] for j in keep.tolist() if not 0.0 < se[j] < math.inf]
    if bad:
        warnings.warn(
            f"the standard errors of {bad} are not finite and positive: the fixed-effects "
            "columns are (nearly) collinear even after centring and scaling; remove or "
            "combine those columns",
            IllConditionedWarning,
            stacklevel=user_stacklevel(),
        )


def _build(
    lmm, *, core_theta, cov, coef, optsum, formula, coef_names, weights, check, **model
) -> FitResult:
    """The one assembly of a FitResult, LMM or GLMM (the callers pass what differs).

    ``lmm`` is the linear problem at the optimum (a GLMM's at its final working
    weights), ``core_theta`` its internal theta, ``cov`` the covariance of the
    internal beta (a new array, which the result may keep) and ``coef`` the
    estimable coefficients on the user's scale.
    ``weights`` (the prior weights) tell which levels count; ``check``: whether to
    check the objective and standard errors (:func:`check_finite`). ``model`` holds
    the remaining fields of :class:`FitResult`; of them ``loglik`` gives the
    information criteria and ``sigma`` scales the variance components (a GLMM's,
    without a residual scale, are lambda's own). Coefficients of columns dropped
    for rank deficiency are reported as -0.0 with NaN standard error and NaN rows
    and columns in vcov, as MixedModels.jl does.
    """
    p_full, keep = lmm.p_full, lmm.keep
    # the user's columns are the core's (the common case): nothing to map
    identity = lmm.scaling.identity
    V = cov if identity else lmm.user_vcov(cov)
    if lmm.p == p_full:
        # Every column estimable (``keep`` is then 0 .. p - 1, the estimable columns
        # being taken in order): the padded copies below reduce to a copy of coef
        # (which may be the caller's core_beta) and vcov itself (the callers' own
        # product, copied only if it is not C-ordered floats).
        full_coef = np.array(coef, dtype=float)
        vcov = np.ascontiguousarray(V, dtype=float)
    else:
        full_coef = np.full(p_full, -0.0)
        full_coef[keep] = coef
        vcov = np.full((p_full, p_full), np.nan)
        vcov[np.ix_(keep, keep)] = V
    stderror = np.sqrt(vcov.diagonal())
    if check:
        check_finite(model["objective"], stderror, keep, coef_names)
    # zero prior weights remove an observation: it counts in neither n nor the criteria
    ic = information_criteria(-2 * model["loglik"], model["dof"], lmm.nobs)
    theta = core_theta if identity else np.asarray(lmm.user_theta(core_theta), dtype=float)
    scale = 1.0 if model["sigma"] is None else model["sigma"]
    return FitResult(
        formula=formula,
        nobs=lmm.nobs,
        coef=full_coef,
        coef_names=tuple(coef_names),
        stderror=stderror,
        vcov=vcov,
        theta=theta,
        varcomps=_varcomps(
            lmm.terms,
            lmm.theta_slices,
            theta,
            scale,
            weights,
            getattr(lmm, "nlevels_present", None),
        ),
        aic=ic["aic"],
        aicc=ic["aicc"],
        bic=ic["bic"],
        optsum=optsum,
        boundary=boundary_positions(lmm, core_theta),
        core_theta=core_theta,
        **model,
    )


def lmm_result(problem, theta, optsum, formula: str, coef_names) -> FitResult:
    """Assemble the FitResult of a converged linear mixed model.

    ``problem`` holds the factor L at ``theta`` (the core's internal theta);
    everything is reported on the user's scale.
    """
    sigma2_internal = problem.sigma2()
    # math.sqrt and np.sqrt are both IEEE's correctly rounded square root
    sigma = math.sqrt(sigma2_internal * problem.scaling.y_scale**2)
    if problem.scaling.identity:  # the user's columns are the core's: nothing to map
        offset, beta = 0.0, problem.beta()
    else:
        offset = problem.objective_offset()
        beta = problem.user_beta(problem.beta())
        optsum = user_optsum(optsum, problem, offset, problem.ntheta)
    objective = problem.objective_from_factor() + offset
    return _build(
        problem,
        core_theta=np.asarray(theta, dtype=float),
        cov=sigma2_internal * problem.rxx_inverse(),
        coef=beta,
        optsum=optsum,
        formula=formula,
        coef_names=coef_names,
        # an exact least-squares fit has been reported already
        check=not problem.exact_fit,
        weights=problem.weights,
        sigma=sigma,
        objective=objective,
        loglik=-objective / 2,
        dof=problem.p + problem.ntheta + 1,
        reml=problem.reml,
    )


def glmm_result(problem, beta, theta, optsum, formula: str, coef_names, *_) -> FitResult:
    """Assemble the FitResult of a converged GLMM (problem left at the optimum).

    ``beta`` and ``theta`` are the core's internal parameters; everything is
    reported on the user's scale (the deviance does not depend on it). Further
    positional arguments are ignored (an earlier signature passed ``fast``).
    """
    lmm = problem.lmm
    core_beta = np.asarray(beta, dtype=float)
    core_theta = np.asarray(theta, dtype=float)
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
    if family.has_dispersion:
        loglik = -deviance / 2  # the deviance is the full -2 log L here
    else:
        state = problem.state
        usq = sum(float(np.sum(u**2)) for u in state.u)
        loglik = problem.conditional_loglik(state.eta) - (usq + lmm.logdet_re()) / 2
    return _build(
        lmm,
        core_theta=core_theta,
        cov=cov,
        coef=lmm.user_beta(core_beta),
        optsum=user_optsum(optsum, lmm, 0.0, lmm.ntheta + int(family.has_dispersion)),
        formula=formula,
        coef_names=coef_names,
        check=True,
        weights=problem.pw,
        sigma=None,
        objective=deviance,
        loglik=loglik,
        dof=lmm.p + lmm.ntheta + int(family.has_dispersion),
        family=family.name,
        link=problem.link.name,
        nagq=problem.nagq,
        deviance=deviance,
        core_beta=core_beta,
        dispersion=dispersion,
    )
