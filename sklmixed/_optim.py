"""The nlopt driver: minimize a mixed model's objective over its parameters.

Follows MixedModels.jl's choices (its ``OptSummary`` defaults): derivative-free
LN_BOBYQA with the diagonal elements of lambda bounded below by zero; tolerances
ftol_rel 1e-12, ftol_abs 1e-8, xtol_abs 1e-10; start at lambda = I. (LN_NEWUOA
without bounds reaches the same optima, but the reference page's printed
estimates are those of bounded BOBYQA: on sleepstudy it lands within 1e-9 of the
page's sigma, 25.5918239, where unbounded NEWUOA stops at 25.5918070, a last-digit
difference in the summary.) After convergence, columns of
lambda with a negative diagonal are flipped (the likelihood depends on lambda
lambda' only) and diagonal elements that are numerically zero are snapped to
exactly zero when that does not raise the objective measurably, so that a
boundary (singular) fit reports exactly zero variance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import replace

import nlopt
import numpy as np

from sklmixed._core._start import em_start
from sklmixed._results import OptSummary
from sklmixed.exceptions import ConvergenceWarning

FTOL_REL = 1e-12
FTOL_ABS = 1e-8
XTOL_ABS = 1e-10
# Snapping: a diagonal element of lambda below SNAP_TOL is set to zero when the
# objective rises by less than SNAP_COST (the precision of the printed objective
# is 1e-4; 1e-5 keeps the snap invisible there).
SNAP_TOL = 1e-3
SNAP_COST = 1e-5
# A warm start (from the optimum of a related fit: another fold, a refit) begins
# with a trust region of this fraction of each parameter's magnitude (at least
# WARM_STEP_MIN) instead of nlopt's default of about the magnitude itself: the
# optima of 80% overlapping folds differ by about 10% (sleepstudy, GroupKFold(5)),
# and with the default step a warm start costs more evaluations than a cold one.
WARM_STEP = 0.1
WARM_STEP_MIN = 1e-2

OPTIMIZERS = {
    "LN_NEWUOA": nlopt.LN_NEWUOA,
    "LN_BOBYQA": nlopt.LN_BOBYQA,
    "LN_COBYLA": nlopt.LN_COBYLA,
    "LN_NELDERMEAD": nlopt.LN_NELDERMEAD,
    "LN_SBPLX": nlopt.LN_SBPLX,
    "LN_PRAXIS": nlopt.LN_PRAXIS,
}

_RETURN_CODES = {
    nlopt.SUCCESS: "SUCCESS",
    nlopt.STOPVAL_REACHED: "STOPVAL_REACHED",
    nlopt.FTOL_REACHED: "FTOL_REACHED",
    nlopt.XTOL_REACHED: "XTOL_REACHED",
    nlopt.MAXEVAL_REACHED: "MAXEVAL_REACHED",
    nlopt.MAXTIME_REACHED: "MAXTIME_REACHED",
}


def default_optimizer(nparams: int) -> str:
    return "LN_BOBYQA"


def minimize(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    optimizer: str | None = None,
    maxfeval: int = -1,
    use_bounds: bool | None = None,
    initial_step: np.ndarray | None = None,
) -> OptSummary:
    """Minimize ``fun`` from ``x0`` with nlopt; return the OptSummary.

    ``fun`` may return ``inf`` where the parameters are infeasible (a factor that
    is not positive definite); nlopt then sees the initial objective instead, as
    MixedModels.jl does, which keeps the quadratic models of NEWUOA/BOBYQA finite.
    """
    x0 = np.asarray(x0, dtype=float)
    n = x0.shape[0]
    name = optimizer or default_optimizer(n)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    if n == 1 and name == "LN_NEWUOA":
        name = "LN_BOBYQA"
    fitlog: list[tuple[np.ndarray, float]] = []
    finitial = float(fun(x0))
    fitlog.append((x0.copy(), finitial))
    if n == 0:
        return OptSummary(
            x0,
            x0,
            finitial,
            finitial,
            1,
            name,
            "SUCCESS",
            FTOL_REL,
            FTOL_ABS,
            XTOL_ABS,
            maxfeval,
            fitlog,
        )
    if not np.isfinite(finitial):
        raise FloatingPointError("the objective is not finite at the starting values")

    def wrapped(x, grad):  # called for every evaluation: kept to plain Python
        val = float(fun(x))
        fitlog.append((x.copy(), val))
        return val if math.isfinite(val) else finitial

    opt = nlopt.opt(OPTIMIZERS[name], n)
    opt.set_min_objective(wrapped)
    opt.set_ftol_rel(FTOL_REL)
    opt.set_ftol_abs(FTOL_ABS)
    opt.set_xtol_abs(XTOL_ABS)
    if maxfeval > 0:
        opt.set_maxeval(int(maxfeval))
    if initial_step is not None:
        opt.set_initial_step(np.asarray(initial_step, dtype=float))
    # NEWUOA is the unconstrained algorithm; the others honour the bounds.
    bounded = (name != "LN_NEWUOA") if use_bounds is None else use_bounds
    if bounded and np.any(np.isfinite(lower)):
        opt.set_lower_bounds(np.asarray(lower, dtype=float))
    try:
        xmin = opt.optimize(x0.copy())
        code = _RETURN_CODES.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        xmin = min(fitlog, key=lambda e: e[1])[0]
        code = "ROUNDOFF_LIMITED"
    fmin = float(fun(xmin))
    return OptSummary(
        initial=x0,
        final=np.asarray(xmin, dtype=float),
        finitial=finitial,
        fmin=fmin,
        feval=len(fitlog) - 1,
        optimizer=name,
        returnvalue=code,
        ftol_rel=FTOL_REL,
        ftol_abs=FTOL_ABS,
        xtol_abs=XTOL_ABS,
        maxfeval=maxfeval,
        fitlog=fitlog,
    )


def finalize_theta(
    theta: np.ndarray,
    fmin: float,
    fun: Callable[[np.ndarray], float],
    diag_positions: np.ndarray,
    flip: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, float]:
    """Flip negative columns, then snap numerically-zero diagonals to zero.

    ``diag_positions`` are the indices in theta of lambda's diagonal elements;
    ``flip`` returns theta with each lambda column made to have a non-negative
    diagonal.
    """
    theta = flip(np.asarray(theta, dtype=float).copy())
    best = fun(theta)
    if not np.isfinite(best):
        best = fmin
    for i in diag_positions:
        if theta[i] == 0.0 or abs(theta[i]) >= SNAP_TOL:
            continue
        trial = theta.copy()
        trial[i] = 0.0
        val = fun(trial)
        if np.isfinite(val) and val <= best + SNAP_COST:
            theta, best = trial, val
    return theta, float(best)


def warm_step(x0: np.ndarray) -> np.ndarray:
    """The initial step of a warm-started optimization (see WARM_STEP)."""
    return np.maximum(WARM_STEP * np.abs(x0), WARM_STEP_MIN)


def fit_lmm(
    problem, *, optimizer: str | None = None, maxfeval: int = -1, theta0: np.ndarray | None = None
):
    """Optimize a :class:`~sklmixed._core._lmm.LMMProblem`; leave L at the optimum.

    ``theta0`` (a warm start, e.g. the optimum of a related fit) replaces the
    default start lambda = I. Returns the final theta and the OptSummary (whose
    ``final``/``fmin`` are the flipped and snapped values).
    """
    x0 = problem.initial_theta() if theta0 is None else np.array(theta0, dtype=float)
    step = None if theta0 is None else warm_step(x0)
    if theta0 is None:
        # Large crossed models start near the optimum (see sklmixed._core._start).
        em = em_start(problem)
        if em is not None:
            x0, step = em
    opt = minimize(
        problem.objective,
        x0,
        problem.lower_bounds(),
        optimizer=optimizer,
        maxfeval=maxfeval,
        initial_step=step,
    )
    if optimizer is None and problem.boundary_trap(opt.final):
        # A diagonal element of a correlated lambda stuck at its bound of zero while
        # the rest of its column is not: bounded BOBYQA cannot move the column
        # through zero (its sign is free) and stops at a non-optimal point
        # (sleepstudy with dummy-coded days, (1|subj) + (days|subj): 1655.55
        # instead of 1631.80). Snap, then continue without bounds from there.
        start, _ = finalize_theta(
            opt.final, opt.fmin, problem.objective, problem.diag_positions(), problem.flip_theta
        )
        polish = minimize(
            problem.objective,
            start,
            problem.lower_bounds(),
            optimizer="LN_NEWUOA",
            maxfeval=maxfeval,
        )
        if polish.fmin < opt.fmin:
            opt = replace(
                opt,
                final=polish.final,
                fmin=polish.fmin,
                feval=opt.feval + polish.feval,
                optimizer="LN_BOBYQA+LN_NEWUOA",
                returnvalue=polish.returnvalue,
                fitlog=opt.fitlog + polish.fitlog[1:],
            )
    theta, fmin = finalize_theta(
        opt.final, opt.fmin, problem.objective, problem.diag_positions(), problem.flip_theta
    )
    if not problem.update(theta):  # pragma: no cover - theta came from a finite evaluation
        raise FloatingPointError("the factor is not positive definite at the optimum")
    opt = replace(opt, final=theta, fmin=fmin)
    return theta, opt


def fit_glmm(
    problem,
    *,
    fast: bool = False,
    optimizer: str | None = None,
    maxfeval: int = -1,
    theta0: np.ndarray | None = None,
    beta0: np.ndarray | None = None,
):
    """Optimize a :class:`~sklmixed._core._glmm.GLMMProblem`.

    Stage 1: theta only, beta from PIRLS (MixedModels.jl's ``fast=true``,
    lme4's nAGQ = 0 analogue). Stage 2 (``fast=False``): beta and theta jointly
    from the stage-1 optimum, PIRLS over u only; a warm start that lands on the
    same optimum as starting from the GLM fit, in fewer evaluations.
    A warm start from a related fit: ``theta0`` replaces lambda = I as stage 1's
    start (with a smaller trust region) and ``beta0`` the GLM fit as PIRLS's first
    beta. (Skipping stage 1 and starting stage 2 from (beta0, theta0), or a small
    trust region in stage 2, cost more evaluations on contra's folds, not fewer.)
    Returns (beta, theta, OptSummary); the problem is left at the optimum.
    """
    nth = problem.ntheta
    lower_theta = problem.lmm.lower_bounds()
    problem.reset()
    if beta0 is None:
        problem.pirls(np.zeros(nth))  # GLM fit (Lambda = 0) gives starting beta
    else:
        problem._beta = np.array(beta0, dtype=float)
    problem.reset()

    def dev_theta(theta):
        try:
            return problem.deviance(theta)
        except (RuntimeError, FloatingPointError):  # PIRLS failure: infeasible point
            return np.inf

    start = problem.lmm.initial_theta() if theta0 is None else np.array(theta0, dtype=float)
    opt = minimize(
        dev_theta,
        start,
        lower_theta,
        optimizer=optimizer or "LN_BOBYQA",
        maxfeval=maxfeval,
        initial_step=None if theta0 is None else warm_step(start),
    )
    theta = problem.lmm.flip_theta(opt.final)
    problem.deviance(theta)
    beta = problem._beta.copy()
    if not fast:
        p = beta.shape[0]

        def dev_joint(x):
            try:
                return problem.deviance(x[p:], x[:p])
            except (RuntimeError, FloatingPointError):
                return np.inf

        x0 = np.concatenate((beta, theta))
        lower = np.concatenate((np.full(p, -np.inf), lower_theta))
        problem.reset()  # the joint stage starts PIRLS from u = 0, like the first stage
        opt2 = minimize(dev_joint, x0, lower, optimizer=optimizer or "LN_BOBYQA", maxfeval=maxfeval)
        opt = replace(
            opt2,
            initial=x0,
            feval=opt.feval + opt2.feval,
            fitlog=opt.fitlog + opt2.fitlog,
        )
        beta = opt2.final[:p].copy()
        theta = problem.lmm.flip_theta(opt2.final[p:])

    def dev_at(th):
        return dev_theta(th) if fast else problem.deviance(th, beta)

    theta, fmin = finalize_theta(
        theta, opt.fmin, lambda th: _safe(dev_at, th), problem.lmm.diag_positions(), lambda th: th
    )
    try:
        fmin = problem.deviance(theta) if fast else problem.deviance(theta, beta)
    except (RuntimeError, FloatingPointError) as exc:
        # PIRLS failed at the optimum from a cold start: report the last parameters
        # at which it succeeded (their modes are still installed), and say so.
        theta, beta = problem.last_ok
        fmin = problem.deviance(theta, beta)
        warnings.warn(
            f"PIRLS failed at the optimizer's final parameters ({exc}); the results are "
            "those of the last parameters where it converged. Try fast=True, rescaling "
            "covariates or a simpler random-effects structure",
            ConvergenceWarning,
            stacklevel=3,
        )
    if fast:
        beta = problem._beta.copy()
    opt = replace(opt, final=theta if fast else np.concatenate((beta, theta)), fmin=fmin)
    return beta, theta, opt


def _safe(f, x):
    try:
        return f(x)
    except (RuntimeError, FloatingPointError):
        return np.inf
