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

import contextlib
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import nlopt
import numpy as np

from sklmixed._core._blocks import blas_threads
from sklmixed._core._start import em_start, em_start_glmm
from sklmixed.exceptions import (
    ConvergenceWarning,
    DataError,
    FitError,
    IllConditionedWarning,
    PerfectFitWarning,
    user_stacklevel,
)

FTOL_REL = 1e-12
FTOL_ABS = 1e-8
XTOL_ABS = 1e-10
# Snapping: a diagonal element of lambda below SNAP_TOL is set to zero when the
# objective rises by less than SNAP_COST (the precision of the printed objective
# is 1e-4; 1e-5 keeps the snap invisible there).
SNAP_TOL = 1e-3
SNAP_COST = 1e-5
# r^2, read off the last diagonal element of the factor, is accurate to about
# eps * y'y: below EXACT_FIT of y'y it has at most three correct digits, and the
# fit is exact up to rounding (its likelihood is unbounded); below NEAR_EXACT
# fewer than eight remain and the objective's last digits are rounding.
EXACT_FIT = 1e-13
NEAR_EXACT = 1e-8
# The smallest initial step the GLMM joint stage takes in theta (see fit_glmm).
# Below every reference fit's default step (the smallest is 0.14), so that those
# fits are unchanged.
THETA_STEP = 0.05
# The relative tolerance of a large GLMM's first stage when the joint stage follows
# (see fit_glmm): 1e-8 of a deviance of 6e4 is 6e-4.
STAGE1_FTOL_REL = 1e-8
# The Newton polish of a large LMM's optimum (see newton_polish): the finite
# difference step, relative to each parameter (at least POLISH_STEP_MIN), and the
# most parameters it is taken for (its Hessian costs n(n + 3)/2 evaluations).
# Measured on InstEval (two parameters, an objective of 2.4e5 whose rounding is
# about 1e-9): steps of 1e-4 put the optimum of one-thread and two-thread BLAS
# within 1e-9 of each other; 1e-3 moves it by 3e-7 (the cubic term).
POLISH_STEP = 1e-4
POLISH_STEP_MIN = 1e-5
POLISH_MAX_PARAMS = 4
# Where the Newton step follows, BOBYQA's relative tolerance: on InstEval its last
# six of 48 evaluations improved the objective by less than 1e-14 of it.
POLISH_FTOL_REL = 1e-10
# The Newton step after a GLMM's joint stage (see _polish_joint): difference steps of
# this fraction of each coefficient's standard error, and of this fraction of each
# covariance (or dispersion) parameter (at least 1e-4), for at most this many
# parameters (the Hessian costs n (n + 3) / 2 evaluations: 54 for verbagg's nine).
GLMM_POLISH_SE_STEP = 1e-2
GLMM_POLISH_STEP = 1e-3
GLMM_POLISH_MAX_PARAMS = 12
# Where the Newton step follows, the joint stage's BOBYQA stops at this relative
# tolerance (as a large LMM's: POLISH_FTOL_REL), and the step is refined this many
# times with its Hessian kept. Measured on verbagg (nine parameters): BOBYQA's last
# 1e-6 of deviance took 72 of its 322 evaluations, and at FTOL_REL the fit took
# 348 evaluations without the step; with the step after BOBYQA at 1e-10 and two
# refinements it takes 290, and the two row orders agree to 1e-9. (At 1e-8
# BOBYQA stopped 0.009 above the optimum, too far for the step.)
GLMM_JOINT_FTOL_REL = POLISH_FTOL_REL
GLMM_POLISH_REFINE = 2
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


# MixedModels.jl's default (see the module docstring for why not NEWUOA).
DEFAULT_OPTIMIZER = "LN_BOBYQA"
# What PIRLS raises at parameters where it fails: the optimizer reads such a point
# as infeasible (an infinite objective), as it reads a factor that is not positive
# definite.
PIRLS_FAILURES = (RuntimeError, FloatingPointError)


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
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _summary(
    x0, xmin, finitial, fmin, feval, name, code, maxfeval, fitlog, ftol_rel=FTOL_REL
) -> OptSummary:
    """The OptSummary of one run, with this module's tolerances (``ftol_rel``: the
    run's own)."""
    return OptSummary(
        initial=x0,
        final=np.asarray(xmin, dtype=float),
        finitial=finitial,
        fmin=fmin,
        feval=feval,
        optimizer=name,
        returnvalue=code,
        ftol_rel=ftol_rel,
        ftol_abs=FTOL_ABS,
        xtol_abs=XTOL_ABS,
        maxfeval=maxfeval,
        fitlog=fitlog,
    )


def or_inf(fun: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """``fun`` with a PIRLS failure read as an infeasible point: ``inf``."""

    def safe(x: np.ndarray) -> float:
        try:
            return fun(x)
        except PIRLS_FAILURES:
            return np.inf

    return safe


def minimize(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    optimizer: str | None = None,
    maxfeval: int = -1,
    use_bounds: bool | None = None,
    min_step: np.ndarray | None = None,
    finitial: float | None = None,
    pure: bool = False,
    initial_step: np.ndarray | None = None,
    ftol_rel: float = FTOL_REL,
) -> OptSummary:
    """Minimize ``fun`` from ``x0`` with nlopt; return the OptSummary.

    ``initial_step`` sets nlopt's first step per parameter (by default nlopt
    derives it from the distance of ``x0`` to the bounds).

    ``fun`` may return ``inf`` where the parameters are infeasible (a factor that
    is not positive definite); nlopt then sees the initial objective instead, as
    MixedModels.jl does, which keeps the quadratic models of NEWUOA/BOBYQA finite.
    ``min_step`` floors nlopt's default initial step per parameter (which is
    proportional to the distance from a bound, or to the value itself, and so
    degenerate for a parameter that starts at 1e-6); nlopt's default is kept
    wherever it is above the floor. ``finitial``, where the caller has it,
    is ``fun(x0)`` (saves an evaluation). ``pure``: ``fun`` depends on its
    argument alone (an LMM's objective; not a GLMM's, whose PIRLS starts from the
    previous modes), so the value at the optimum is read off the log rather than
    recomputed. ``ftol_rel`` replaces FTOL_REL (a stage whose optimum is only a
    start).
    """
    x0 = np.asarray(x0, dtype=float)
    n = x0.shape[0]
    name = optimizer or DEFAULT_OPTIMIZER
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    if n == 1 and name == "LN_NEWUOA":  # NEWUOA needs two parameters at least
        name = "LN_BOBYQA"
    fitlog: list[tuple[np.ndarray, float]] = []
    finitial = float(fun(x0)) if finitial is None else float(finitial)
    fitlog.append((x0.copy(), finitial))
    if n == 0:
        return _summary(x0, x0, finitial, finitial, 1, name, "SUCCESS", maxfeval, fitlog, ftol_rel)
    if not np.isfinite(finitial):
        raise FitError(
            f"the objective is not finite at the starting values ({finitial}); try a "
            "simpler random-effects structure, or check the data for columns on very "
            "different scales"
        )

    # nlopt's first evaluation is at x0 itself (bit for bit): a pure ``fun`` need
    # not compute what ``finitial`` already is (a small fit's objective is 7-20 us)
    known = [x0.tobytes()] if pure else []

    def wrapped(x, grad):  # called for every evaluation: kept to plain Python
        if known and x.tobytes() == known.pop():
            val = finitial
        else:
            val = float(fun(x))
        fitlog.append((x.copy(), val))
        return val if math.isfinite(val) else finitial

    opt = nlopt.opt(OPTIMIZERS[name], n)
    opt.set_min_objective(wrapped)
    opt.set_ftol_rel(ftol_rel)
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
    if min_step is not None:
        dx = np.abs(opt.get_initial_step(x0))
        if np.any(dx < min_step):
            opt.set_initial_step(np.maximum(dx, min_step))
    try:
        xmin = opt.optimize(x0.copy())
        code = _RETURN_CODES.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        xmin = min(fitlog, key=lambda e: e[1])[0]
        code = "ROUNDOFF_LIMITED"
    fmin = None
    if pure:  # (bytes compare: a tenth of np.array_equal's cost, on ~20 entries)
        key = np.asarray(xmin, dtype=float).tobytes()
        for x, val in reversed(fitlog):
            if x.tobytes() == key:
                fmin = float(val)
                break
    if fmin is None:
        fmin = float(fun(xmin))
    return _summary(
        x0, xmin, finitial, fmin, len(fitlog) - 1, name, code, maxfeval, fitlog, ftol_rel
    )


def finalize_theta(
    theta: np.ndarray,
    fmin: float,
    fun: Callable[[np.ndarray], float],
    diag_positions: np.ndarray,
    flip: Callable[[np.ndarray], np.ndarray],
    pure: bool = False,
) -> tuple[np.ndarray, float]:
    """Flip negative columns, then snap numerically-zero diagonals to zero.

    ``diag_positions`` are the indices in theta of lambda's diagonal elements;
    ``flip`` returns theta with each lambda column whose diagonal is negative
    negated (so it is called only where some diagonal is). ``pure`` (see
    :func:`minimize`): ``fmin`` is ``fun(theta)``, and need not be recomputed where
    flipping changed nothing.
    """
    theta0 = np.asarray(theta, dtype=float)
    positions = np.asarray(diag_positions).tolist()
    diag = theta0[positions].tolist()  # a few numbers: compared as Python's floats
    if any(v < 0.0 for v in diag):
        theta = flip(theta0.copy())
        changed = not np.array_equal(theta, theta0)
    else:
        theta, changed = theta0.copy(), False
    best = fmin if pure and not changed else fun(theta)
    if not math.isfinite(best):
        best = fmin
    for i, v in zip(positions, diag):
        if changed:
            v = float(theta[i])
        if v == 0.0 or abs(v) >= SNAP_TOL:
            continue
        trial = theta.copy()
        trial[i] = 0.0
        val = fun(trial)
        if np.isfinite(val) and val <= best + SNAP_COST:
            theta, best = trial, val
    return theta, float(best)


def newton_polish(
    fun: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    lower: np.ndarray,
    steps: np.ndarray | None = None,
    refine: int = 0,
) -> tuple[np.ndarray, float, list[tuple[np.ndarray, float]]]:
    """One Newton step from the optimizer's optimum, on central differences.

    BOBYQA stops where the objective's last digits no longer separate its trial
    points, so where exactly it stops depends on the rounding of every evaluation
    (the BLAS's thread count, the order of the rows): on InstEval two such optima
    are 6e-7 apart in theta, their objectives equal to 4e-15, and a fixed effect
    printed to six digits moves by five units in the last. The gradient and
    Hessian from steps of POLISH_STEP are well above that rounding (the objective
    changes by ~1e-5 over them), and one Newton step lands on the optimum to about
    1e-9 whichever rounding led there. The step is kept if the objective there is
    not worse by more than the optimizer's tolerances (FTOL_ABS, or FTOL_REL of the
    objective), the difference below which it does not distinguish points itself:
    on a million rows the objective is 2.7e6 and its rounding 3e-8.

    ``steps`` replaces the difference steps of POLISH_STEP relative to each
    parameter (a GLMM's, in units of its standard errors: see fit_glmm);
    ``refine`` more steps follow from each new point with the Hessian kept and
    the gradient there (2 n evaluations each), where the first step was long
    beside the Hessian's own error.

    Returns the point, its objective and the evaluations made ``[(x, f), ...]``;
    the point is ``x`` itself where a difference step would cross a bound (a
    boundary optimum), the Hessian is not positive definite, or the step is longer
    than ten difference steps (the quadratic model does not hold there).
    """
    n = x.shape[0]
    h = POLISH_STEP * np.maximum(np.abs(x), POLISH_STEP_MIN / POLISH_STEP)
    if steps is not None:
        h = np.asarray(steps, dtype=float)
    log: list[tuple[np.ndarray, float]] = []
    if np.any(x - h < lower):
        return x, fx, log

    def f(point: np.ndarray) -> float:
        val = float(fun(point))
        log.append((point, val))
        return val

    eye = np.diag(h)
    fp = np.array([f(x + eye[i]) for i in range(n)])
    fm = np.array([f(x - eye[i]) for i in range(n)])
    grad = (fp - fm) / (2.0 * h)
    hess = np.diag((fp - 2.0 * fx + fm) / h**2)
    for i in range(n):
        for j in range(i + 1, n):
            fij = f(x + eye[i] + eye[j])
            hess[i, j] = hess[j, i] = (fij - fp[i] - fp[j] + fx) / (h[i] * h[j])
    if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(grad))):
        return x, fx, log
    try:
        chol = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return x, fx, log
    for k in range(refine + 1):
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
        new = x + step
        if np.any(np.abs(step) > 10.0 * h) or np.any(new < lower):
            return x, fx, log
        fnew = f(new)
        if not (np.isfinite(fnew) and fnew <= fx + max(FTOL_ABS, FTOL_REL * abs(fx))):
            return x, fx, log
        x, fx = new, fnew
        if k < refine:  # the gradient at the new point, the Hessian kept
            if np.any(x - h < lower):
                break
            grad = np.array([f(x + eye[i]) - f(x - eye[i]) for i in range(n)]) / (2.0 * h)
    return x, fx, log


def _newton_or_continue(
    fun: Callable[[np.ndarray], float],
    opt: OptSummary,
    lower: np.ndarray,
    *,
    maxfeval: int,
    fallback_step: np.ndarray,
    pure: bool = False,
    steps: np.ndarray | None = None,
    refine: int = 0,
    fx: float | None = None,
) -> OptSummary:
    """``opt`` ended by :func:`newton_polish` (``steps``, ``refine``) from its
    optimum, the evaluations logged. Where no step is taken (a bound, a Hessian
    that is not positive definite, a point too far for the quadratic model), the
    optimizer, which stopped early because the step was to follow, goes on at
    FTOL_REL from a trust region of ``fallback_step``. ``fx``: the objective at
    the optimum evaluated afresh by the caller (a GLMM's deviance depends on
    PIRLS's previous modes), logged as one more evaluation; by default
    ``opt.fmin``. ``pure`` as for :func:`minimize`."""
    x = opt.final
    log = [] if fx is None else [(x, fx)]
    final, fmin, more_log = newton_polish(
        fun, x, opt.fmin if fx is None else fx, lower, steps, refine
    )
    log += more_log
    opt = replace(opt, final=final, fmin=fmin, feval=opt.feval + len(log), fitlog=opt.fitlog + log)
    if final is x:
        more = minimize(
            fun,
            x,
            lower,
            maxfeval=maxfeval,
            finitial=fmin if pure else None,
            pure=pure,
            initial_step=fallback_step,
        )
        opt = _continued(opt, more, opt.optimizer)
    return opt


def _continued(opt: OptSummary, more: OptSummary, name: str) -> OptSummary:
    """``opt`` followed by a second minimization ``more`` from its optimum."""
    return replace(
        opt,
        final=more.final,
        fmin=more.fmin,
        feval=opt.feval + more.feval,
        optimizer=name,
        returnvalue=more.returnvalue,
        ftol_rel=more.ftol_rel,
        fitlog=opt.fitlog + more.fitlog[1:],
    )


def warn_conditioning(problem) -> None:
    """Warn about what the internal centring and scaling could not repair."""
    for message in problem.scaling.issues:
        warnings.warn(message, IllConditionedWarning, stacklevel=user_stacklevel())


def check_identifiable(problem) -> None:
    """A residual variance needs more observations than fixed effects (with
    random effects, or for REML; plain least squares may fit exactly)."""
    d = problem.nobs - problem.p
    if d <= 0 and (problem.m > 0 or problem.reml):
        raise DataError(
            f"the fixed effects have {problem.p} estimable columns for {problem.nobs} "
            "observations: they fit the response exactly and leave no residual variance "
            "to estimate; use fewer fixed effects or more data"
        )


def _check_exact_fit(problem, r2: float, where: str, theta=None) -> None:
    if problem.exact_fit:  # reported at the start already
        return
    yty = problem.yty()
    unbounded = False
    if theta is not None and r2 <= NEAR_EXACT * yty and theta.size:
        # A response that the random effects fit exactly: the likelihood grows
        # without bound as lambda does (r^2 ~ 1 / |lambda|^2), and the optimizer
        # stops only where rounding stops it. Doubling lambda then still lowers
        # the objective by about 2 (n - q) log 2; at a true optimum it raises it.
        fmin = problem.objective(theta)
        unbounded = problem.objective(2.0 * theta) < fmin - 1.0
        problem.set_theta(theta)  # installed at the optimum again
    if not (r2 <= EXACT_FIT * yty or unbounded):
        if r2 <= NEAR_EXACT * yty and where == "optimum":  # (r^2 only falls from the start)
            warnings.warn(
                f"the model fits the response almost exactly (the residual sum of squares "
                f"is {r2 / yty:.1e} of the response's sum of squares{_centred(problem)}): "
                "the objective's last digits are rounding; check that the response is not "
                "a function of the predictors",
                IllConditionedWarning,
                stacklevel=user_stacklevel(),
            )
        return
    by = "the fixed effects" if where == "start" else "the fixed and random effects"
    if problem.m == 0:
        # Least squares without random effects: an exact fit is still a fit (the
        # coefficients are exact); report it, with sigma 0 and an objective of -inf.
        problem.exact_fit = True
        warnings.warn(
            f"the fixed effects fit the response exactly (the residual sum of squares "
            f"is {r2 / yty:.1e} of the response's sum of squares): sigma and the "
            "standard errors are zero up to rounding, and the objective is -inf or as "
            "meaningless; check that the response is not computed from the predictors",
            PerfectFitWarning,
            stacklevel=user_stacklevel(),
        )
        return
    raise DataError(
        f"{by} fit the response exactly (the residual sum of squares is {r2 / yty:.1e} "
        f"of the response's sum of squares{_centred(problem)}"
        f"{' and falls further as the random effects grow' if unbounded else ''}): "
        "the residual variance is zero and the likelihood has no maximum; check that "
        "the response is not computed from the predictors"
    )


def _centred(problem) -> str:
    return ", centred" if problem.scaling.y_shift != 0.0 else ""


def _start(problem, x0) -> tuple[float, float]:
    """The objective and r^2 at the starting theta (the small-model evaluator does
    not factor an exact fit, where r = 0; the blocked factor does)."""
    f0 = problem.objective(x0)
    if np.isfinite(f0):
        return f0, float(problem.last_r2)
    return f0, (problem.pwrss() if problem.set_theta(x0) else np.nan)


def blas_for_fit() -> contextlib.AbstractContextManager:
    """One BLAS thread for the whole fit, whatever its size.

    A small system's BLAS and LAPACK calls are a few microseconds of work, which
    threads cannot shorten, while waking them costs more than the work, and far
    more when another process holds a core: with the default two threads and the
    other core busy, the covariance of sleepstudy's fixed effects (a 2 x 2
    triangular solve) took 23 ms of a 46 ms fit, against 17 us on one thread.
    Mid-sized ones gain little from a second thread on an idle machine and lose
    much on a busy one, because idle BLAS threads spin between calls and take the
    core the fit's own Python needs: InstEval (a 1128-row dense block) took 0.93 s
    idle with two threads and 1.11 s with one; with the other core busy, 2.63 s
    with two and 1.13 s with one (medians of 5; 2 cores). Large dense blocks are
    factored on one thread anyway (``ONE_THREAD_MIN``). Entering the limit costs
    about 13 us.
    """
    return blas_threads(1)


def on_one_blas_thread(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an estimator's ``fit`` so that all of it, from its first LAPACK call
    (the problem's setup, passes over chunks) to the result, runs under
    :func:`blas_for_fit`: in threads, another fit's limit would otherwise decide how
    this fit's setup rounds (1e-10 in InstEval's theta), and out-of-core fits would
    keep the default threads."""

    @functools.wraps(fit)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with blas_for_fit():
            return fit(self, *args, **kwargs)

    return wrapper


def warm_step(x0: np.ndarray) -> np.ndarray:
    """The initial step of a warm-started optimization (see WARM_STEP)."""
    return np.maximum(WARM_STEP * np.abs(x0), WARM_STEP_MIN)


def fit_lmm(
    problem,
    *,
    optimizer: str | None = None,
    maxfeval: int = -1,
    theta0: np.ndarray | None = None,
    initial_step: np.ndarray | None = None,
    warn: bool = True,
):
    """Optimize a :class:`~sklmixed._core._lmm.LMMProblem`; leave L at the optimum.

    Starts at lambda = I, or at ``theta0`` (a warm start, e.g. the optimum of a
    related fit, or the fitted theta for a bootstrap refit; on the user's scale,
    mapped here to the core's columns) with first steps ``initial_step`` (in the
    core's coordinates; default :func:`warm_step`). Returns the final (internal)
    theta and the OptSummary (whose ``final``/``fmin`` are the flipped and
    snapped values, internal too; ``_results`` maps them to the user's scale).
    Raises DataError for a response that the model fits exactly, where the
    likelihood is unbounded. ``warn=False`` leaves out the warnings about
    conditioning (a refit of data whose fit has given them already).
    """
    check_identifiable(problem)
    if warn:
        warn_conditioning(problem)
    step = None
    if theta0 is None:
        x0 = problem.initial_theta()
        # Large crossed models start near the optimum (see sklmixed._core._start).
        em = em_start(problem)
        if em is not None:
            x0, step = em
    else:
        x0 = np.array(problem.internal_theta(np.asarray(theta0, dtype=float)), dtype=float)
        step = warm_step(x0)
    f0, r2 = _start(problem, x0)
    if problem.recentre_response(r2):
        f0, r2 = _start(problem, x0)
    _check_exact_fit(problem, r2, "start")
    # Large systems end with a Newton step (see newton_polish): BOBYQA need only
    # come near the optimum, and its last evaluations, which compare objectives
    # equal to their rounding, are left out. Small ones are evaluated alike on
    # every machine and keep the optimizer's point, whose digits are MixedModels.jl's.
    polished = optimizer is None and problem.layout != "dense" and x0.shape[0] <= POLISH_MAX_PARAMS
    opt = minimize(
        problem.objective,
        x0,
        problem.lower_bounds(),
        optimizer=optimizer,
        maxfeval=maxfeval,
        finitial=f0,
        pure=True,
        initial_step=initial_step if initial_step is not None else step,
        ftol_rel=POLISH_FTOL_REL if polished else FTOL_REL,
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
            pure=True,
        )
        if polish.fmin < opt.fmin:
            opt = _continued(opt, polish, "LN_BOBYQA+LN_NEWUOA")
    if polished:
        # without a step, the optimizer goes on from a trust region of 1e-3 of each
        # parameter, the scale of its last steps
        opt = _newton_or_continue(
            problem.objective,
            opt,
            problem.lower_bounds(),
            maxfeval=maxfeval,
            fallback_step=warm_step(opt.final) * 1e-2,
            pure=True,
        )
    theta, fmin = finalize_theta(
        opt.final,
        opt.fmin,
        problem.objective,
        problem.diag_positions(),
        problem.flip_theta,
        pure=True,
    )
    if not problem.set_theta(theta):  # pragma: no cover - theta came from a finite evaluation
        raise FitError(
            "the factor is not positive definite at the optimum; try a simpler "
            "random-effects structure"
        )
    _check_exact_fit(problem, problem.pwrss(), "optimum", theta)
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
    warn: bool = True,
):
    """Optimize a :class:`~sklmixed._core._glmm.GLMMProblem`.

    The parameters called theta here are the problem's: theta, then the log
    dispersion (or shape) for a family that has one, optimized jointly.

    Stage 1: theta only, beta from PIRLS (MixedModels.jl's ``fast=true``,
    lme4's nAGQ = 0 analogue). Stage 2 (``fast=False``): beta and theta jointly
    from the stage-1 optimum, PIRLS over u only; a warm start that lands on the
    same optimum as starting from the GLM fit, in fewer evaluations.
    A warm start from a related fit: ``theta0`` replaces lambda = I as stage 1's
    start (with a smaller trust region) and ``beta0`` the GLM fit as PIRLS's first
    beta. (Skipping stage 1 and starting stage 2 from (beta0, theta0), or a small
    trust region in stage 2, cost more evaluations on contra's folds, not fewer.)
    Both are on the user's scale and mapped here to the core's columns.
    Returns (beta, theta, OptSummary), internal; the problem is left at the
    optimum. ``warn``: as for :func:`fit_lmm`.
    """
    # theta's bounds, then the log dispersion's (unbounded) for a family with one
    nth = problem.ntheta
    lower_theta = problem.lower_bounds()
    if warn:
        warn_conditioning(problem.lmm)
    if theta0 is not None:  # the user's theta (and log dispersion): to the core's
        theta0 = np.asarray(theta0, dtype=float)
        theta0 = np.concatenate((problem.lmm.internal_theta(theta0[:nth]), theta0[nth:]))
    warm_dispersion = theta0 is not None and len(theta0) == len(lower_theta)
    if beta0 is None or (problem.family.has_dispersion and not warm_dispersion):
        # GLM fit (Lambda = 0): starting beta (and dispersion)
        try:
            problem.glm_start()
        except PIRLS_FAILURES:
            # From beta = 0 the first IRLS step can overflow (counts in the tens of
            # thousands); start from the data instead, as R's glm does.
            try:
                problem.glm_start(from_data=True)
            except PIRLS_FAILURES as exc:
                raise FitError(
                    f"the fixed-effects-only (GLM) fit that gives the starting values "
                    f"failed ({exc}); check the response for complete separation or "
                    "extreme values"
                ) from exc
    if beta0 is not None:
        problem.set_start(beta=problem.lmm.internal_beta(np.asarray(beta0, dtype=float)))
    problem.reset()

    dev_theta = or_inf(problem.deviance)

    # lambda = I and the GLM's dispersion; a warm start replaces theta (and the
    # dispersion when it holds one)
    start = problem.initial_theta()
    first_step = None
    if theta0 is not None:
        start[: len(theta0)] = theta0
        first_step = warm_step(start)
    else:
        # Large crossed models start from the EM sweeps on the GLM fit's working
        # response (see sklmixed._core._start)
        em = em_start_glmm(problem)
        if em is not None:
            start[:nth], first_step = em
    opt = minimize(
        dev_theta,
        start,
        lower_theta,
        optimizer=optimizer or "LN_BOBYQA",
        maxfeval=maxfeval,
        initial_step=first_step,
        # A large problem's first stage, when the joint stage follows, only gives
        # the latter its start: its last evaluations (a dense factorization each)
        # would refine the deviance below 1e-4 where the joint stage moves it by
        # several units (the crossed synthetic: 10 of 35 evaluations).
        ftol_rel=STAGE1_FTOL_REL if problem.iterative and not fast else FTOL_REL,
    )
    theta = problem.lmm.flip_theta(opt.final)
    problem.deviance(theta)
    beta = problem.state.beta.copy()
    if not fast:
        p = beta.shape[0]

        dev_joint = or_inf(lambda x: problem.deviance(x[p:], x[:p]))

        x0 = np.concatenate((beta, theta))
        lower = np.concatenate((np.full(p, -np.inf), lower_theta))
        problem.reset()  # the joint stage starts PIRLS from u = 0, like the first stage
        # theta from the first stage may sit 1e-6 above its bound, where nlopt's
        # default step would be 1e-6 too and the joint stage could not move it
        # (a Poisson fit with a degenerate random slope stopped 0.025 above its
        # optimum); theta is of order one on the core's scaled columns.
        # (The log dispersion after theta keeps nlopt's default step.)
        floor = np.concatenate(
            (np.zeros(p), np.full(nth, THETA_STEP), np.zeros(len(lower_theta) - nth))
        )
        polished = optimizer is None and x0.shape[0] <= GLMM_POLISH_MAX_PARAMS
        opt2 = minimize(
            dev_joint,
            x0,
            lower,
            optimizer=optimizer or "LN_BOBYQA",
            maxfeval=maxfeval,
            min_step=floor,
            initial_step=_joint_step(problem, beta, theta) if problem.iterative else None,
            ftol_rel=GLMM_JOINT_FTOL_REL if polished else FTOL_REL,
        )
        if polished:
            opt2 = _polish_joint(problem, dev_joint, opt2, lower, p, maxfeval)
        opt = replace(
            opt2,
            initial=x0,
            feval=opt.feval + opt2.feval,
            fitlog=opt.fitlog + opt2.fitlog,
        )
        beta = opt2.final[:p].copy()
        theta = problem.lmm.flip_theta(opt2.final[p:])

    dev_at = dev_theta if fast else or_inf(lambda th: problem.deviance(th, beta))
    theta, fmin = finalize_theta(
        theta, opt.fmin, dev_at, problem.lmm.diag_positions(), lambda th: th
    )
    try:
        fmin = problem.deviance(theta) if fast else problem.deviance(theta, beta)
    except PIRLS_FAILURES as exc:
        # PIRLS failed at the optimum from a cold start: report the last parameters
        # at which it succeeded (their modes are still installed), and say so.
        theta, beta = problem.state.params, problem.state.beta
        fmin = problem.deviance(theta, beta)
        warnings.warn(
            f"PIRLS failed at the optimizer's final parameters ({exc}); the results are "
            "those of the last parameters where it converged. Try fast=True, rescaling "
            "covariates or a simpler random-effects structure",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    if fast:
        beta = problem.state.beta.copy()
    opt = replace(opt, final=theta if fast else np.concatenate((beta, theta)), fmin=fmin)
    return beta, theta, opt


def _polish_joint(problem, dev_joint, opt: OptSummary, lower, p: int, maxfeval: int) -> OptSummary:
    """The joint stage's optimum after a Newton step (see newton_polish).

    BOBYQA stops the joint (beta, theta) search where its trust region can no longer
    tell points apart, which on verbagg is 1.5e-6 deviance units above the optimum
    and, along the flat intercept/anger direction, 2e-4 away from it in beta: the
    same rows in reverse order, or summed batch by batch, stopped 2e-4 apart. The
    Laplace deviance itself is smooth there to about 1e-10 (PIRLS's warm start),
    so a Newton step on central differences lands on the optimum: steps of
    GLMM_POLISH_SE_STEP standard errors for beta (the deviance changes by ~5e-5
    over them; steps relative to the coefficients' own size were too small for
    the flat direction and too large for others) and GLMM_POLISH_STEP of each
    other parameter. More steps with the Hessian kept and the gradient at the
    new point take the error of the first (its Hessian's, about 1e-2 of it) to
    rounding (GLMM_POLISH_REFINE). Measured on verbagg after BOBYQA at FTOL_REL:
    the two row orders' optima 2.2e-7 apart after the first step, 4e-10 after the
    second, both 1.7e-6 lower in deviance; batches of 1000 rows 3e-9 from the
    in-memory fit. A parameter on its bound (a singular fit) gets no step: the
    optimizer then goes on at FTOL_REL from a trust region of a tenth of each
    parameter (at least 1e-2: a smaller one stopped 1.7e-5 above the optimum on
    a verbagg model, this one 5e-8 from where BOBYQA alone at FTOL_REL stops).
    """
    x = opt.final
    fx = float(dev_joint(x))  # installs the factor at x, for the standard errors
    se = np.sqrt(np.maximum(np.diag(problem.lmm.rxx_inverse()), 0.0))
    steps = np.concatenate(
        (
            GLMM_POLISH_SE_STEP * np.where(se > 0.0, se, 1.0),
            GLMM_POLISH_STEP * np.maximum(np.abs(x[p:]), 0.1),
        )
    )
    return _newton_or_continue(
        dev_joint,
        opt,
        lower,
        maxfeval=maxfeval,
        fallback_step=warm_step(x),
        steps=steps,
        refine=GLMM_POLISH_REFINE,
        fx=fx,
    )


def _joint_step(problem, beta, theta):
    """First steps of the joint stage of a large GLMM (``problem.iterative``).

    nlopt's default steps are about the parameters' own size: at the crossed
    synthetic's stage-1 optimum, 0.35 for a slope whose standard error is 0.01 and
    0.6-0.8 for theta, each raising the deviance by hundreds, and BOBYQA spent a
    hundred evaluations shrinking its trust region back. The stage-1 optimum is
    close to the joint one (the Laplace and nAGQ = 0 estimates differ by a fraction
    of a standard error), so the steps here are one standard error of beta (from
    the PIRLS factor at the stage-1 optimum, which the problem holds) and a tenth
    of theta, at least THETA_STEP (the floor's reason above). A log dispersion
    keeps a step of 0.1. Only large problems take these steps: every evaluation is
    a dense factorization there, and the reference fits keep their exact paths.
    """
    se = np.sqrt(np.maximum(np.diag(problem.lmm.rxx_inverse()), 0.0))
    se = np.where(se > 0.0, se, 1.0)
    nth = problem.ntheta
    step_theta = np.maximum(0.1 * np.abs(theta[:nth]), THETA_STEP)
    return np.concatenate((se, step_theta, np.full(len(theta) - nth, 0.1)))
