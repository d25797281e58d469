"""Parametric bootstrap (MixedModels.jl's ``parametricbootstrap``, lme4's ``bootMer``).

Each replicate simulates a response from the fitted model (new random effects and
new noise, :mod:`sklmixed.inference._simulate`) and refits the model to it. For
an LMM the refit reuses everything that does not depend on the response: the
core problem's block patterns and Z'Z, X'Z, X'X blocks stay; only the last row of
A (Z'y, X'y, y'y) is rewritten (``LMMProblem.set_response``), and the optimizer
starts from the fitted theta, so a replicate costs a few dozen evaluations of the
objective. A GLMM replicate refits from a copy of the fitted problem.

Reproducibility: replicate i draws its response from its own generator, seeded by
the i-th child of one ``SeedSequence`` made from ``random_state``; the replicates
are therefore the same whatever ``n_jobs`` and however they are split among
workers.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from sklmixed._optim import fit_glmm, fit_lmm
from sklmixed.exceptions import ConvergenceWarning, InferenceError, user_stacklevel
from sklmixed.inference._params import check_level, parameter_names, variance_parameters
from sklmixed.inference._progress import progress_bar
from sklmixed.inference._simulate import Simulator, check_count, seed_sequence

_CONVERGED = ("SUCCESS", "FTOL_REACHED", "XTOL_REACHED", "STOPVAL_REACHED")
_METHODS = ("shortest", "percentile")


class _LMMRefit:
    """One bootstrap replicate of a linear mixed model, on a private copy of the
    fitted core problem (never the model's own)."""

    def __init__(self, model):
        self.simulator = Simulator(model)
        self.problem = copy.deepcopy(model.problem_)
        self.theta0 = np.array(model.theta_, dtype=float)  # mapped in by fit_lmm
        # First steps of a quarter of each fitted element (at least 0.05): the
        # replicates' optima lie within the sampling spread of theta around the
        # fit, and steps on that scale need about 40 evaluations on sleepstudy
        # where nlopt's default (derived from the distance to the bounds: 0.75
        # theta for a diagonal element, theta itself for an unbounded one) needs
        # 66 and stops further from the optimum (99% of 300 replicates within
        # 1e-7 of the best objective found, against 2.5e-6).
        # (The steps are in the core's coordinates, as the optimizer sees theta.)
        core = np.asarray(self.problem.internal_theta(self.theta0), dtype=float)
        self.initial_step = np.maximum(0.25 * np.abs(core), 0.05)
        self.optimizer = getattr(model, "optimizer", None)
        self.maxfeval = getattr(model, "maxfeval", -1)

    def __call__(self, seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        problem = self.problem
        problem.set_response(self.simulator.draw(rng, 1)[0])
        theta, opt = fit_lmm(
            problem,
            optimizer=self.optimizer,
            maxfeval=self.maxfeval,
            theta0=self.theta0,
            initial_step=self.initial_step,
            warn=False,  # the fit has said what there is to say about conditioning
        )
        # The replicate's response went through the fit's centring and scaling
        # (set_response): its estimates map back to the user's scale the same way.
        coef = np.full(problem.p_full, np.nan)
        coef[problem.keep] = problem.user_beta(problem.beta())
        sigma = problem.user_sigma()
        objective = opt.fmin + problem.objective_offset()
        return objective, coef, problem.user_theta(theta), sigma, opt.returnvalue in _CONVERGED


class _GLMMRefit:
    """One bootstrap replicate of a GLMM: a fresh copy of the fitted problem per
    replicate, so that no PIRLS warm start carries over from one to the next."""

    def __init__(self, model):
        self.simulator = Simulator(model)
        self.template = copy.deepcopy(model.problem_)
        self.fast = bool(getattr(model, "fast", False))
        self.optimizer = getattr(model, "optimizer", None)
        self.maxfeval = getattr(model, "maxfeval", -1)

    def __call__(self, seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        problem = copy.deepcopy(self.template)
        problem.y = self.simulator.draw(rng, 1)[0]
        coef = np.full(problem.lmm.p_full, np.nan)
        theta = np.full(problem.ntheta, np.nan)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                beta, params, opt = fit_glmm(
                    problem,
                    fast=self.fast,
                    optimizer=self.optimizer,
                    maxfeval=self.maxfeval,
                    warn=False,
                )
        except (RuntimeError, FloatingPointError):  # PIRLS failed on this response
            return np.nan, coef, theta, np.nan, False
        # the core's internal beta and theta, mapped to the user's columns
        coef[problem.lmm.keep] = problem.lmm.user_beta(beta)
        # params: theta, then the log shape or dispersion for a family with one
        theta = problem.lmm.user_theta(params[: problem.ntheta])
        dispersion = float(np.exp(params[-1])) if problem.family.has_dispersion else np.nan
        return opt.fmin, coef, theta, dispersion, opt.returnvalue in _CONVERGED


def _run_chunk(refit, seeds):
    return [refit(s) for s in seeds]


class BootstrapResult:
    """Replicates of a parametric bootstrap and the intervals they give.

    Made by the estimators' ``bootstrap`` method.

    Parameters
    ----------
    replicates : DataFrame
        One row per replicate (see Attributes).
    theta : ndarray of shape (n_boot, n_theta)
        The refits' relative covariance parameters.
    converged : ndarray of bool, shape (n_boot,)
        Whether each refit converged.

    Attributes
    ----------
    replicates : DataFrame
        One row per replicate: ``objective`` (the refit's -2 log L, REML
        criterion or GLMM deviance), then the parameters in the order of
        ``confint`` (coefficients, ``sd(g: col)``, ``corr(g: col1, col2)``,
        ``sigma``, or a GLMM's ``shape`` or ``dispersion``). Coefficients
        dropped as not estimable are NaN; a GLMM
        replicate whose refit failed is NaN throughout.
    theta : ndarray of shape (n_boot, n_theta)
        The refits' relative covariance parameters.
    converged : ndarray of bool, shape (n_boot,)
        Whether the optimizer reported convergence for each replicate.
    """

    def __init__(self, replicates: pd.DataFrame, theta: np.ndarray, converged: np.ndarray):
        self.replicates = replicates
        self.theta = theta
        self.converged = converged

    @property
    def n_boot(self) -> int:
        """The number of replicates."""
        return int(self.replicates.shape[0])

    def __repr__(self) -> str:
        return (
            f"BootstrapResult(n_boot={self.n_boot}, parameters={self.replicates.shape[1] - 1}, "
            f"converged={int(self.converged.sum())})"
        )

    def confint(self, level: float = 0.95, method: str = "shortest") -> pd.DataFrame:
        """Bootstrap confidence intervals, one row per parameter.

        Parameters
        ----------
        level : float, default=0.95
            Coverage, strictly between 0 and 1.
        method : {"shortest", "percentile"}, default="shortest"
            ``"shortest"``: the shortest interval holding ``ceil(level * n)`` of
            the n replicate values (MixedModels.jl's ``shortestcovint``, its
            default); ``"percentile"``: the equal-tailed interval between the
            (1 - level)/2 and (1 + level)/2 quantiles (lme4's ``confint`` of a
            ``bootMer``, type "perc"). Non-finite values (a correlation whose
            standard deviation is zero in that replicate, a failed GLMM refit)
            are left out.

        Returns
        -------
        DataFrame
            Columns ``lower``, ``upper``, indexed by parameter.
        """
        level = check_level(level)
        if method not in _METHODS:
            raise InferenceError(
                f"unknown bootstrap interval method {method!r}; choose one of {list(_METHODS)}"
            )
        rows = []
        for name in self.replicates.columns[1:]:
            values = self.replicates[name].to_numpy(dtype=float)
            values = np.sort(values[np.isfinite(values)])
            rows.append(_interval(values, level, method))
        return pd.DataFrame(
            rows, index=list(self.replicates.columns[1:]), columns=["lower", "upper"]
        )


def _interval(v: np.ndarray, level: float, method: str) -> tuple[float, float]:
    """Interval of the sorted finite values ``v``."""
    n = v.shape[0]
    if n == 0:
        return (np.nan, np.nan)
    if method == "percentile":
        lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
        return (float(lo), float(hi))
    width = math.ceil(n * level)  # number of values, endpoints included
    widths = v[width - 1 :] - v[: n - width + 1]
    i = int(np.argmin(widths))  # the first of equally short windows, as MixedModels.jl
    return (float(v[i]), float(v[i + width - 1]))


def bootstrap(model, n_boot=1000, random_state=None, n_jobs=None, verbose=False):
    """Parametric bootstrap of a fitted model; see the estimators' ``bootstrap``."""
    check_is_fitted(model, "result_")
    n_boot = check_count(n_boot, "n_boot")
    root = seed_sequence(random_state)
    refit = _GLMMRefit(model) if model.result_.is_glmm else _LMMRefit(model)
    seeds = root.spawn(n_boot)

    from joblib import Parallel, delayed, effective_n_jobs

    workers = effective_n_jobs(n_jobs)
    bar = progress_bar(n_boot, "bootstrap", bool(verbose))
    out = []
    try:
        if workers == 1:
            for seed in seeds:
                out.append(refit(seed))
                bar.update(1)
        else:
            # Chunks several times the workers: balanced load and a moving bar,
            # without paying the dispatch cost once per (millisecond) replicate.
            size = max(1, math.ceil(n_boot / (8 * workers)))
            chunks = [seeds[i : i + size] for i in range(0, n_boot, size)]
            parallel = Parallel(n_jobs=workers, return_as="generator")
            for part in parallel(delayed(_run_chunk)(refit, c) for c in chunks):
                out.extend(part)
                bar.update(len(part))
    finally:
        bar.close()

    objective = np.array([r[0] for r in out], dtype=float)
    coefs = np.vstack([r[1] for r in out])
    thetas = np.vstack([np.asarray(r[2], dtype=float) for r in out])
    # sigma for an LMM, the shape or dispersion for a GLMM family with one
    sigmas = np.array([r[3] for r in out], dtype=float)
    converged = np.array([r[4] for r in out], dtype=bool)

    lmm = model.problem_.lmm if model.result_.is_glmm else model.problem_
    has_sigma = model.result_.sigma is not None
    varpars = variance_parameters(
        lmm.terms, lmm.theta_slices, thetas, sigmas if has_sigma else None
    )
    has_extra = has_sigma or model.result_.dispersion is not None
    values = [objective[:, None], coefs, varpars] + ([sigmas[:, None]] if has_extra else [])
    table = pd.DataFrame(np.hstack(values), columns=["objective"] + parameter_names(model))
    table.index.name = "replicate"
    failed = int((~converged).sum())
    if failed:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap refits did not converge (see the result's "
            "converged attribute); GLMM refits that failed are NaN rows",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return BootstrapResult(table, thetas, converged)
