"""Profile-likelihood confidence intervals for linear mixed models.

For a parameter x the profile is the objective minimized over every other
parameter with x held fixed; its signed square root

    zeta(x) = sign(x - x_hat) sqrt(objective(x) - objective(x_hat))

is close to a standard normal quantile (exactly so when the objective is
quadratic), so the interval at level 1 - alpha is where zeta crosses the normal
quantiles -z and +z, z = Phi^{-1}(1 - alpha / 2) (Bates et al. 2015, section 5.1;
lme4's ``profile``, MixedModels.jl's ``profile``).

Where lme4 and MixedModels.jl trace each profile on a grid of points and read the
crossings off an interpolating spline, this module finds each crossing directly:
a first step from a rough standard error, secant steps on a scale on which zeta is
nearly linear (log for standard deviations, Fisher's z for correlations), then
regula falsi inside the bracket until zeta is within 1e-6 of the quantile. That
takes four to six conditional fits per limit instead of a dozen grid points per
parameter, and leaves no interpolation error.

The conditional fits reuse the model's factorization: for given theta the
likelihood as a function of beta and sigma is read off the [X y] block of L
(``LMMProblem.user_xy_factor``: on the user's columns and scale), so that

- a fixed effect beta_j (held at b; lme4 and MixedModels.jl refit with the
  column as an offset) needs only theta optimized: the penalized residual sum of
  squares with beta_j = b is r^2 + (b - beta_hat_j)^2 / V_jj, V = (R_X R_X')^{-1},
  and sigma is profiled out in closed form;
- sigma (held) needs theta optimized with sigma fixed;
- a random-effect standard deviation ``sd(g: col)`` or correlation
  ``corr(g: col1, col2)`` is held on its own scale (lme4's "sdcor" profile) and
  the other standard deviations, correlations and sigma are optimized.

Which objective: for an ML fit, the deviance throughout. For a REML fit, the
variance components (sd, corr, sigma) are profiled on the REML criterion, the
fit's own objective (as MixedModels.jl does), so the intervals surround the REML
estimates; the fixed effects, absent from the REML criterion, are profiled on the
ML deviance around the ML estimates (lme4's choice; MixedModels.jl skips them).
lme4 instead refits a REML model by ML and profiles everything on the deviance,
so its intervals for a REML fit's variance components are those of the ML fit.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

import nlopt
import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg.lapack import dtrtri
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import ConvergenceWarning, InferenceError, user_stacklevel

# Conditional fits: nlopt's BOBYQA with the fit's tolerances on the objective
# (the zeta scale is sqrt(objective difference): an error e in the objective moves
# zeta near the crossing by e / (2 z), about e / 4).
_FTOL_REL = 1e-12
_FTOL_ABS = 1e-9
_XTOL_REL = 1e-10
# A crossing is accepted when zeta is this close to the quantile; zeta's slope is
# about 1 / (standard error), so the limit is then within 1e-6 standard errors.
_ZTOL = 1e-6
_MAXIT = 40
# Objective decreases below the fit's optimum smaller than this are rounding;
# larger ones mean the fit had not converged.
_LOWER_TOL = 1e-4


def profile_confint(model: Any, level: float = 0.95, verbose: bool = False) -> pd.DataFrame:
    """Profile-likelihood confidence intervals of a fitted linear mixed model.

    Parameters
    ----------
    model : MixedLMRegressor
        A fitted linear mixed model (ML or REML).
    level : float, default=0.95
        Confidence level, in (0, 1).
    verbose : bool, default=False
        Show a progress bar (tqdm if installed, else lines on stderr).

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``; one row per parameter: the fixed
        effects (``coef_names_``; NaN for coefficients dropped as not
        estimable), then for each random-effects term ``sd(g: col)`` for each
        column and ``corr(g: col1, col2)`` for each pair that may correlate, then
        ``sigma``. A limit that the profile does not reach before the
        parameter's bound is the bound (0 for a standard deviation, -1 or 1 for
        a correlation), as lme4 reports it.

    Notes
    -----
    ML fits: every parameter is profiled on the deviance. REML fits: the
    variance components on the REML criterion (MixedModels.jl), the fixed
    effects on the deviance around the ML estimates (lme4); lme4's
    ``confint(method = "profile")`` of a REML fit profiles the ML refit
    throughout, so it differs from these intervals in the variance components.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> from sklmixed.inference import profile_confint
    >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)")
    >>> ci = profile_confint(m.fit(load_dataset("sleepstudy")))
    >>> ci.round(2)
                                    lower   upper
    (Intercept)                    237.68  265.13
    days                             7.36   13.58
    sd(subj: (Intercept))           14.38   37.72
    sd(subj: days)                   3.80    8.75
    corr(subj: (Intercept), days)   -0.48    0.69
    sigma                           22.90   28.86
    """
    _check_level(level)
    check_is_fitted(model, "result_")
    result = model.result_
    if result.is_glmm:
        raise InferenceError(
            "profile intervals are implemented for linear mixed models "
            f"(MixedLMRegressor); got a {result.family} GLMM"
        )
    problem = model.problem_
    theta_hat = np.asarray(model.theta_, dtype=float)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    lik = _Likelihood(problem)
    vc = _VcMap(problem)
    try:
        rows = _Profiler(lik, vc, theta_hat, bool(result.reml), z).run(
            list(model.coef_names_), problem.keep, verbose
        )
    finally:
        # leave the factor at the estimates (the core's own theta)
        problem.set_theta(result.core_theta if result.core_theta is not None else theta_hat)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


def _check_level(level: Any) -> None:
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, float, np.floating, np.integer))
        or not 0.0 < float(level) < 1.0
    ):
        raise InferenceError(f"level must be a number in (0, 1); got {level!r}")


# ----------------------------------------------------------------- likelihood


class _Likelihood:
    """-2 log-likelihood (or the REML criterion) of an LMM in its parameters."""

    def __init__(self, problem: Any, internal: bool = False) -> None:
        # internal: theta, beta and sigma of the core's centred and scaled columns
        # (the objective then differs from the user's by a constant); otherwise
        # all of them on the user's columns and scale
        self.problem = problem
        self.internal = internal
        self.n = int(problem.nobs)
        self.p = int(problem.p)
        w = problem.weights
        self.logw = 0.0 if w is None else float(np.sum(np.log(w[w > 0])))
        self.log2pi = math.log(2.0 * math.pi)

    def parts(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float] | None:
        """(log|L_Z|^2, R_X^{-1}, c, r^2) at theta, or None where not positive
        definite; R_X' beta_hat = c, so beta_hat = R_X^{-T} c."""
        # theta and the factor of the user's columns, whatever the core's internal
        # centring and scaling (the profile is traced on the user's scale)
        out = (self.problem.xy_factor if self.internal else self.problem.user_xy_factor)(theta)
        if out is None:
            return None
        ldz, Lxy = out
        p = self.p
        r = float(Lxy[p, p])
        if p:
            Rinv, info = dtrtri(Lxy[:p, :p], lower=1)
            if info != 0:
                return None
        else:
            Rinv = np.zeros((0, 0))
        return ldz, Rinv, Lxy[p, :p], r * r

    @staticmethod
    def beta_hat(Rinv: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(Rinv.T @ c)

    def ml_profiled(self, theta: np.ndarray) -> float:
        """Deviance with beta and sigma at their conditional optima."""
        pr = self.parts(theta)
        if pr is None:
            return math.inf
        ldz, _, _, r2 = pr
        n = self.n
        return ldz + n * (1.0 + self.log2pi + math.log(r2 / n)) - self.logw

    def ml_beta_fixed(self, theta: np.ndarray, j: int, b: float) -> float:
        """Deviance with beta_j = b, the other betas and sigma at their optima."""
        pr = self.parts(theta)
        if pr is None:
            return math.inf
        ldz, Rinv, c, r2 = pr
        col = Rinv[:, j]  # V_jj = ||R^{-1} e_j||^2 (R lower, V = R^{-T} R^{-1})
        vjj = float(col @ col)
        bj = float(col @ c)
        r2 = r2 + (b - bj) ** 2 / vjj
        n = self.n
        return ldz + n * (1.0 + self.log2pi + math.log(r2 / n)) - self.logw

    def at_sigma(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        """Deviance (or REML criterion) at (theta, sigma), beta at its optimum."""
        pr = self.parts(theta)
        if pr is None or not sigma > 0:
            return math.inf
        ldz, Rinv, _, r2 = pr
        s2 = sigma * sigma
        if reml:
            d = self.n - self.p
            # log|R_X|^2 = -2 sum log |diag R^{-1}|
            ldx = -2.0 * float(np.sum(np.log(np.abs(np.diag(Rinv)))))
            return ldz + ldx + d * (self.log2pi + math.log(s2)) + r2 / s2 - self.logw
        return ldz + self.n * (self.log2pi + math.log(s2)) + r2 / s2 - self.logw

    def sigma_hat(self, theta: np.ndarray, reml: bool) -> float:
        pr = self.parts(theta)
        assert pr is not None  # called at estimates
        d = self.n - self.p if reml else self.n
        return math.sqrt(pr[3] / d)


# ------------------------------------------------ variance-component scale


class _VcMap:
    """Between (theta, sigma) and (standard deviations, correlations, sigma).

    Per term: the standard deviation of each column, then the correlation of
    each pair of columns that the term's pattern lets correlate; sigma last.
    The covariance of a term is sigma^2 lambda lambda' = D C D, and lambda is
    diag(sd / sigma) times the Cholesky factor of the correlation matrix C.
    """

    def __init__(self, problem: Any) -> None:
        self.names: list[str] = []
        self.kinds: list[str] = []
        self.nlevels: list[int] = []
        self.terms = []
        pos = 0
        for t, sl in zip(problem.terms, problem.theta_slices):
            k = t.k
            sd_idx = list(range(pos, pos + k))
            for a in range(k):
                self.names.append(f"sd({t.name}: {t.cnames[a]})")
                self.kinds.append("sd")
                self.nlevels.append(t.nlevels)
            pos += k
            pairs = []
            zero = t.structural_zero
            for a in range(k):
                for b in range(a + 1, k):
                    if not zero[a, b]:
                        pairs.append((b, a))  # lower triangle of C
                        self.names.append(f"corr({t.name}: {t.cnames[a]}, {t.cnames[b]})")
                        self.kinds.append("corr")
                        self.nlevels.append(t.nlevels)
            corr_idx = list(range(pos, pos + len(pairs)))
            pos += len(pairs)
            self.terms.append((t, sl, sd_idx, pairs, corr_idx))
        self.names.append("sigma")
        self.kinds.append("sigma")
        self.nlevels.append(0)
        self.size = pos + 1
        self.ntheta = int(problem.ntheta)

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        out = np.empty(self.size)
        for t, sl, sd_idx, pairs, corr_idx in self.terms:
            lam = t.lambda_from_theta(theta[sl]) * sigma
            cov = lam @ lam.T
            sd = np.sqrt(np.diag(cov))
            out[sd_idx] = sd
            for (a, b), i in zip(pairs, corr_idx):
                den = sd[a] * sd[b]
                out[i] = cov[a, b] / den if den > 0 else math.nan
        out[-1] = sigma
        return out

    def to_theta(self, vc: np.ndarray) -> tuple[np.ndarray, float] | None:
        sigma = float(vc[-1])
        theta = np.empty(self.ntheta)
        for t, sl, sd_idx, pairs, corr_idx in self.terms:
            k = t.k
            if pairs:
                C = np.eye(k)
                for (a, b), i in zip(pairs, corr_idx):
                    C[a, b] = C[b, a] = vc[i]
                Lc = _chol_psd(C)
                if Lc is None:
                    return None
                lam = Lc * (vc[sd_idx] / sigma)[:, None]
            else:
                lam = np.diag(vc[sd_idx] / sigma)
            theta[sl] = lam[t.inds[:, 0], t.inds[:, 1]]
        return theta, sigma


def _chol_psd(C: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a correlation matrix, allowing it to be singular
    (|correlation| = 1 is a bound the optimizer may touch); None if indefinite."""
    k = C.shape[0]
    if k == 2:  # the common case, in closed form
        r = C[1, 0]
        rest = 1.0 - r * r
        if rest < 0:
            return None
        return np.array([[1.0, 0.0], [r, math.sqrt(rest)]])
    L = np.zeros_like(C)
    for j in range(k):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-12:
            return None
        L[j, j] = math.sqrt(max(d, 0.0))
        for i in range(j + 1, k):
            v = C[i, j] - L[i, :j] @ L[j, :j]
            if L[j, j] > 0:
                L[i, j] = v / L[j, j]
            elif abs(v) > 1e-12:
                return None
    return L


# --------------------------------------------------------- conditional fits


def _minimize(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
) -> tuple[float, np.ndarray]:
    """BOBYQA from x0 within bounds; infeasible points (inf) count as f(x0)."""
    n = x0.shape[0]
    x0 = np.clip(x0, lower, upper)
    f0 = fun(x0)
    if n == 0:
        return f0, x0
    if not math.isfinite(f0):
        raise FloatingPointError("the objective is not finite at the starting values")

    def wrapped(x: np.ndarray, grad: np.ndarray) -> float:
        v = fun(x)
        return v if math.isfinite(v) else f0

    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_ftol_rel(_FTOL_REL)
    opt.set_ftol_abs(_FTOL_ABS)
    opt.set_xtol_rel(_XTOL_REL)
    # Steps that stay inside the bounds (BOBYQA needs room for its first model).
    room = np.minimum(x0 - lower, upper - x0)
    st = np.where(room > 0, np.minimum(step, np.where(np.isfinite(room), room, step)), step)
    opt.set_initial_step(np.maximum(st, 1e-8))
    try:
        x = opt.optimize(x0.copy())
    except nlopt.RoundoffLimited:  # pragma: no cover - the last point is still good
        x = x0
    fx = fun(x)
    if not math.isfinite(fx) or fx > f0:
        return f0, x0
    return fx, np.asarray(x)


class _Profiler:
    """Find, for each parameter, where zeta crosses -z and +z."""

    def __init__(
        self, lik: _Likelihood, vc: _VcMap, theta_hat: np.ndarray, reml: bool, z: float
    ) -> None:
        self.lik, self.vc, self.reml, self.z = lik, vc, reml, z
        self.theta_hat = theta_hat
        problem = lik.problem
        self.theta_lower = np.asarray(problem.lower_bounds(), dtype=float)
        # the fit's own objective at its estimates (the base of zeta for the
        # variance components)
        self.sigma_hat = lik.sigma_hat(theta_hat, reml)
        self.base = lik.at_sigma(theta_hat, self.sigma_hat, reml)
        self.vc_hat = vc.from_theta(theta_hat, self.sigma_hat)
        self.lowered = 0.0

    # ---------------------------------------------------------------- driver

    def run(self, coef_names: list[str], keep: np.ndarray, verbose: bool) -> dict[str, Any]:
        names = list(coef_names) + self.vc.names
        rows: dict[str, tuple[float, float]] = {}
        bar = _Progress(len(names), verbose)
        try:
            beta_rows = self._beta_rows(coef_names, keep, bar)
            rows.update(beta_rows)
            for i, name in enumerate(self.vc.names):
                bar.describe(name)
                rows[name] = self._vc_interval(i)
                bar.step()
        finally:
            bar.close()
        if self.lowered > _LOWER_TOL:
            warnings.warn(
                f"profiling found an objective {self.lowered:.3g} below the fit's: the "
                "fit had not converged to its optimum; refit (the intervals are "
                "relative to the fit's objective)",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        return {n: rows[n] for n in names}

    def _zeta(self, x: float, xhat: float, fval: float, base: float) -> float:
        diff = fval - base
        if diff < 0:
            self.lowered = max(self.lowered, -diff)
            diff = 0.0
        return math.copysign(math.sqrt(diff), x - xhat) if x != xhat else 0.0

    # ------------------------------------------------------------ fixed effects

    def _beta_rows(
        self, coef_names: list[str], keep: np.ndarray, bar: _Progress
    ) -> dict[str, tuple[float, float]]:
        lik = self.lik
        out: dict[str, tuple[float, float]] = {}
        kept = {int(c): j for j, c in enumerate(np.asarray(keep))}
        theta0 = self.theta_hat
        if self.reml:  # the fixed effects are profiled on the ML deviance
            base, theta0 = _minimize(
                lik.ml_profiled,
                theta0,
                self.theta_lower,
                np.full(theta0.shape, np.inf),
                self._theta_step(theta0),
            )
        else:
            base = lik.ml_profiled(theta0)
        pr = lik.parts(theta0)
        assert pr is not None
        _, Rinv, c, r2 = pr
        bhat = lik.beta_hat(Rinv, c)
        sigma2 = r2 / lik.n
        se = np.sqrt(sigma2 * np.einsum("ij,ij->j", Rinv, Rinv))
        for col, name in enumerate(coef_names):
            bar.describe(name)
            j = kept.get(col)
            if j is None:
                out[name] = (math.nan, math.nan)
                bar.step()
                continue
            fixed_j = j

            def fit(x: float, start: np.ndarray, j: int = fixed_j) -> tuple[float, np.ndarray]:
                return _minimize(
                    lambda th: lik.ml_beta_fixed(th, j, x),
                    start,
                    self.theta_lower,
                    np.full(start.shape, np.inf),
                    self._theta_step(start),
                )

            out[name] = self._interval(
                fit, float(bhat[j]), theta0, base, "beta", float(se[j]), (-math.inf, math.inf)
            )
            bar.step()
        return out

    def _theta_step(self, theta: np.ndarray) -> np.ndarray:
        return np.maximum(0.1 * np.abs(theta), 0.02)

    # ------------------------------------------------------ variance components

    def _vc_interval(self, i: int) -> tuple[float, float]:
        vc, lik, reml = self.vc, self.lik, self.reml
        kind = vc.kinds[i]
        xhat = float(self.vc_hat[i])
        if math.isnan(xhat):  # a correlation with a zero standard deviation
            return (math.nan, math.nan)
        if kind == "sigma":
            theta_upper = np.full(self.theta_hat.shape, np.inf)

            def fit_sigma(x: float, start: np.ndarray) -> tuple[float, np.ndarray]:
                return _minimize(
                    lambda th: lik.at_sigma(th, x, reml),
                    start,
                    self.theta_lower,
                    theta_upper,
                    self._theta_step(start),
                )

            d = lik.n - lik.p if reml else lik.n
            return self._interval(
                fit_sigma,
                xhat,
                self.theta_hat,
                self.base,
                "sigma",
                1.0 / math.sqrt(2.0 * d),
                (0.0, math.inf),
            )
        free = np.array([k for k in range(vc.size) if k != i])
        lower = np.array([_VC_BOUNDS[vc.kinds[k]][0] for k in free])
        upper = np.array([_VC_BOUNDS[vc.kinds[k]][1] for k in free])
        lower[-1] = 1e-6 * self.sigma_hat  # sigma > 0
        start0 = np.nan_to_num(self.vc_hat[free], nan=0.0)
        scale_sd = max(float(np.max(self.vc_hat[[k == "sd" for k in vc.kinds]])), 1e-3)
        base_steps = np.array(
            [
                0.05
                if vc.kinds[k] == "corr"
                else 0.05 * (self.sigma_hat if vc.kinds[k] == "sigma" else scale_sd)
                for k in free
            ]
        )
        full = self.vc_hat.copy()

        def objective(x: float, v: np.ndarray) -> float:
            full[free] = v
            full[i] = x
            mapped = vc.to_theta(full)
            if mapped is None:
                return math.inf
            return lik.at_sigma(mapped[0], mapped[1], reml)

        is_corr = np.array([vc.kinds[k] == "corr" for k in free], dtype=bool)

        def fit_vc(x: float, start: np.ndarray) -> tuple[float, np.ndarray]:
            # Holding a correlation of a term with three or more columns can make
            # the other correlations of the warm start infeasible (C indefinite):
            # shrink them towards zero until C is positive semi-definite.
            for shrink in (1.0, 0.9, 0.7, 0.5, 0.25, 0.0):
                trial = np.where(is_corr, start * shrink, start)
                if math.isfinite(objective(x, trial)):
                    start = trial
                    break
            step = np.maximum(0.1 * np.abs(start), base_steps)
            return _minimize(lambda v: objective(x, v), start, lower, upper, step)

        nl = max(vc.nlevels[i], 4)
        if kind == "sd":
            scale = 1.0 / math.sqrt(2.0 * (nl - 1))
            return self._interval(fit_vc, xhat, start0, self.base, "sd", scale, (0.0, math.inf))
        scale = 1.0 / math.sqrt(nl - 3)
        return self._interval(fit_vc, xhat, start0, self.base, "corr", scale, (-1.0, 1.0))

    # ---------------------------------------------------------- root finding

    def _interval(
        self,
        fit: Callable[[float, np.ndarray], tuple[float, np.ndarray]],
        xhat: float,
        start: np.ndarray,
        base: float,
        kind: str,
        scale: float,
        bounds: tuple[float, float],
    ) -> tuple[float, float]:
        lo = self._side(fit, xhat, start, base, kind, scale, bounds, -1.0)
        hi = self._side(fit, xhat, start, base, kind, scale, bounds, 1.0)
        return lo, hi

    def _side(
        self,
        fit: Callable[[float, np.ndarray], tuple[float, np.ndarray]],
        xhat: float,
        start: np.ndarray,
        base: float,
        kind: str,
        scale: float,
        bounds: tuple[float, float],
        sign: float,
    ) -> float:
        """The limit on one side: where zeta = sign * z, or the bound."""
        bound = bounds[0] if sign < 0 else bounds[1]
        if xhat == bound:
            return bound
        target = sign * self.z
        fwd, inv = _transform(kind, xhat)
        uhat = fwd(xhat)
        # points: x, zeta, argmin (warm starts come from the nearest point)
        pts: list[tuple[float, float, np.ndarray]] = [(xhat, 0.0, start)]

        def evaluate(x: float) -> float:
            # Warm start from the nearest point on the inside (between the
            # estimate and x): the profile's continuation. A point farther out,
            # such as the bound, can sit in another basin of the conditional fit.
            inside = [q for q in pts if sign * (q[0] - x) <= 0]
            near = max(inside, key=lambda q: sign * q[0])
            fval, arg = fit(x, near[2])
            zeta = self._zeta(x, xhat, fval, base)
            pts.append((x, zeta, arg))
            return zeta

        x = inv(uhat + target * scale)
        for _ in range(_MAXIT):
            if math.isfinite(bound) and abs(x - bound) < 0.5 * abs(pts[-1][0] - bound):
                # a step more than half-way to the bound: is the bound reached at all?
                zb = evaluate(bound)
                if sign * zb < self.z:
                    return bound
            zeta = evaluate(x)
            if abs(zeta - target) <= _ZTOL:
                return x
            x = self._next(pts, target, sign, fwd, inv, uhat)
            if abs(x - pts[-1][0]) <= 1e-12 * max(1.0, abs(x)):
                return x
        return x  # pragma: no cover - zeta's profile is smooth and monotone

    @staticmethod
    def _next(
        pts: list[tuple[float, float, np.ndarray]],
        target: float,
        sign: float,
        fwd: Callable[[float], float],
        inv: Callable[[float], float],
        uhat: float,
    ) -> float:
        """The next trial point: a secant step on the transformed scale through
        the two points closest to the target; once the crossing is bracketed,
        steps that leave the bracket are replaced by regula falsi (Illinois)."""
        near = sorted(pts, key=lambda q: abs(q[1] - target))
        (x1, z1, _), (x2, z2, _) = near[0], near[1]
        u1, u2 = fwd(x1), fwd(x2)
        u = math.nan
        if z1 != z2 and math.isfinite(u1) and math.isfinite(u2):
            u = u1 + (target - z1) * (u2 - u1) / (z2 - z1)
        short = [q for q in pts if sign * (q[1] - target) < 0]
        beyond = [q for q in pts if sign * (q[1] - target) > 0]
        if beyond:
            a = max(short, key=lambda q: sign * q[1])
            b = min(beyond, key=lambda q: sign * q[1])
            xa, xb = a[0], b[0]
            lo, hi = min(xa, xb), max(xa, xb)
            if math.isfinite(u):
                x = inv(u)
                if lo < x < hi:
                    return x
            za, zb = a[1] - target, b[1] - target
            # Illinois: halve the weight of an endpoint kept twice in a row
            if len(pts) >= 3 and (pts[-1][1] - target) * (pts[-2][1] - target) > 0:
                if pts[-1] is b:
                    za *= 0.5
                elif pts[-1] is a:
                    zb *= 0.5
            x = xb - zb * (xb - xa) / (zb - za)
            return x if lo < x < hi else 0.5 * (xa + xb)
        # not bracketed yet: extrapolate from the two points farthest out
        ordered = sorted(pts, key=lambda q: sign * q[1])
        (x1, z1, _), (x2, z2, _) = ordered[-2], ordered[-1]
        u1, u2 = fwd(x1), fwd(x2)
        if sign * (z2 - z1) <= 0 or u1 == u2:  # flat or decreasing: step further out
            return inv(u2 + 2.0 * (u2 - uhat))
        u = u2 + (target - z2) * (u2 - u1) / (z2 - z1)
        # at most a few times the distance covered so far
        cap = 4.0 * abs(u2 - uhat)
        u = u2 + math.copysign(min(abs(u - u2), cap), u - u2)
        return inv(u)


_VC_BOUNDS = {"sd": (0.0, math.inf), "corr": (-1.0, 1.0), "sigma": (0.0, math.inf)}


def _transform(kind: str, xhat: float) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """A scale on which zeta is close to linear: log for standard deviations
    (when the estimate is not zero), Fisher's z for correlations."""
    if kind in ("sd", "sigma") and xhat > 0:
        return (lambda x: math.log(x) if x > 0 else -math.inf), math.exp
    if kind == "corr" and abs(xhat) < 1:
        return (
            lambda x: math.atanh(max(min(x, 1 - 1e-15), -1 + 1e-15)),
            math.tanh,
        )
    return (lambda x: x), (lambda u: u)


# --------------------------------------------------------------- progress


class _Progress:
    """A tqdm bar when tqdm is installed, otherwise one line per step on stderr."""

    def __init__(self, total: int, verbose: bool) -> None:
        self.verbose = verbose
        self.total = total
        self.done = 0
        self.bar: Any = None
        if verbose:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="profile", unit="param")
            except ImportError:  # pragma: no cover - tqdm is usually installed
                self.bar = None

    def describe(self, name: str) -> None:
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        else:  # pragma: no cover
            print(f"profile: {name} ({self.done + 1}/{self.total})", file=sys.stderr)

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
