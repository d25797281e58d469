"""The optimizer driver's helpers, and its last step: flipping and snapping theta
(lme4 and MixedModels.jl report a variance that the optimizer leaves numerically
zero as exactly zero, where that costs nothing visible in the objective)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from threadpoolctl import threadpool_info

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed import _optim as optim
from sklmixed._core._dense import DENSE_MAX
from sklmixed._core._lmm import LMMProblem
from sklmixed._optim import (
    SNAP_COST,
    SNAP_TOL,
    OptSummary,
    blas_for_fit,
    finalize_theta,
    newton_polish,
    or_inf,
)
from sklmixed.exceptions import SingularFitWarning


def test_or_inf_reads_a_pirls_failure_as_infeasible():
    def fail(x):
        raise FloatingPointError("overflow")

    assert or_inf(fail)(np.zeros(1)) == np.inf
    assert or_inf(lambda x: 2.0)(np.zeros(1)) == 2.0


def test_optsum_as_dict_lists_every_field():
    o = OptSummary(np.zeros(1), np.ones(1), 2.0, 1.0, 3, "LN_BOBYQA", "SUCCESS", 0, 0, 0, -1)
    assert list(o.as_dict()) == [
        "initial",
        "final",
        "finitial",
        "fmin",
        "feval",
        "optimizer",
        "returnvalue",
        "ftol_rel",
        "ftol_abs",
        "xtol_abs",
        "maxfeval",
        "fitlog",
    ]


def test_fits_run_on_one_blas_thread(monkeypatch):
    seen = []
    real = LMMProblem.objective

    def spy(self, theta):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return real(self, theta)

    monkeypatch.setattr(LMMProblem, "objective", spy)
    MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    assert seen and set(seen) == {1}
    seen.clear()  # out of core too: the passes over the batches and the optimizer
    dataset = pads.dataset(pa.Table.from_pandas(load_dataset("dyestuff")))
    MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(dataset)
    assert seen and set(seen) == {1}
    with blas_for_fit():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")


def test_newton_polish_lands_on_a_quadratics_minimum():
    centre = np.array([0.8, 0.3, -0.4])
    hess = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])

    def fun(x):
        d = np.asarray(x) - centre
        return float(d @ hess @ d) + 7.0

    x = centre + np.array([2e-4, -1e-4, 3e-4])
    new, fnew, log = newton_polish(fun, x, fun(x), np.full(3, -np.inf))
    np.testing.assert_allclose(new, centre, atol=1e-9)
    assert fnew == pytest.approx(7.0, abs=1e-12)
    assert len(log) == 3 * (3 + 3) // 2 + 1  # n(n + 3)/2 for the Hessian, one at the step


def test_newton_polish_leaves_boundaries_saddles_and_long_steps_alone():
    x = np.array([1e-6, 0.5])
    same, _, log = newton_polish(lambda t: float(np.sum(t**2)), x, 0.25, np.zeros(2))
    assert same is x and log == []  # a difference step would cross the bound
    saddle = lambda t: float(t[0] ** 2 - t[1] ** 2)  # noqa: E731
    x = np.array([0.5, 0.5])
    same, f, _ = newton_polish(saddle, x, saddle(x), np.full(2, -np.inf))
    assert same is x and f == saddle(x)
    far = np.array([2.0, 3.0])  # the minimum is 1e4 difference steps away
    same, _, _ = newton_polish(lambda t: float(np.sum(t**2)), far, 13.0, np.full(2, -np.inf))
    assert same is far


def test_a_large_models_optimum_does_not_depend_on_the_row_order():
    # q + p + 1 > DENSE_MAX: the blocked factor, whose rounding follows the rows'
    # order; the Newton step takes the optimum past where BOBYQA's stop depends on it
    rng = np.random.default_rng(3)
    n = 3000
    df = pd.DataFrame(
        {"g": rng.integers(0, 120, n).astype(str), "h": rng.integers(0, 40, n).astype(str)}
    )
    df["x"] = rng.normal(size=n)
    u = rng.normal(size=120)
    v = rng.normal(size=40) * 0.5
    df["y"] = 1 + df["x"] + u[df["g"].astype(int)] + v[df["h"].astype(int)] + rng.normal(size=n)
    model = MixedLMRegressor(formula="y ~ 1 + x + (1|g) + (1|h)")
    a = model.fit(df)
    theta_a, coef_a, feval = a.theta_.copy(), a.coef_.copy(), a.result_.optsum.feval
    assert a.problem_.p + 160 + 1 > DENSE_MAX
    b = MixedLMRegressor(formula="y ~ 1 + x + (1|g) + (1|h)").fit(df.iloc[rng.permutation(n)])
    # without the step the two optima are 4e-9 apart, with it 9e-11
    np.testing.assert_allclose(b.theta_, theta_a, rtol=1e-9)
    np.testing.assert_allclose(b.coef_, coef_a, rtol=1e-9)
    assert feval == len(a.result_.optsum.fitlog) - 1


def _quadratic(centre):
    return lambda th: float(np.sum((np.asarray(th) - centre) ** 2))


def test_a_tiny_diagonal_is_snapped_to_zero_when_that_costs_less_than_the_tolerance():
    centre = np.array([0.7, 0.3 * SNAP_TOL, -0.2])  # theta[1] on the diagonal, tiny
    fun = _quadratic(centre)
    theta, fmin = finalize_theta(centre.copy(), 0.0, fun, np.array([0, 1]), lambda th: th)
    assert theta.tolist() == [0.7, 0.0, -0.2]
    assert fmin == fun(theta) and fmin <= SNAP_COST


def test_snapping_is_refused_when_the_objective_rises_visibly():
    centre = np.array([0.7, 0.3 * SNAP_TOL])

    def fun(th):
        return _quadratic(centre)(th) * (100.0 * SNAP_COST / (0.3 * SNAP_TOL) ** 2)

    theta, fmin = finalize_theta(centre.copy(), 0.0, fun, np.array([0, 1]), lambda th: th)
    np.testing.assert_array_equal(theta, centre)
    assert fmin == 0.0


def test_only_diagonals_below_the_threshold_are_tried():
    centre = np.array([2.0 * SNAP_TOL, 0.3 * SNAP_TOL])
    fun = _quadratic(centre)
    # theta[0] is above SNAP_TOL (kept even though zero would cost nothing visible);
    # theta[1] is an off-diagonal entry (never snapped)
    theta, _ = finalize_theta(centre.copy(), 0.0, fun, np.array([0]), lambda th: th)
    np.testing.assert_array_equal(theta, centre)


def test_flip_comes_first_and_the_flipped_objective_is_returned():
    fun = _quadratic(np.array([0.5]))
    theta, fmin = finalize_theta(
        np.array([-0.5]), 0.0, fun, np.array([0]), lambda th: np.abs(th), pure=True
    )
    assert theta.tolist() == [0.5] and fmin == pytest.approx(0.0)


def test_a_large_boundary_fit_without_a_newton_step_finishes_at_the_usual_tolerance(
    monkeypatch,
):
    # h has no variance: its theta ends on its bound, where a difference step would
    # cross it; the optimizer then finishes from its looser stop at FTOL_REL
    rng = np.random.default_rng(4)
    n = 2000
    df = pd.DataFrame({"g": rng.integers(0, 150, n).astype(str), "h": rng.integers(0, 30, n)})
    df["h"] = df["h"].astype(str)
    df["y"] = rng.normal(size=150)[df["g"].astype(int)] + rng.normal(size=n)
    formula = "y ~ 1 + (1|g) + (1|h)"
    with pytest.warns(SingularFitWarning):
        polished = MixedLMRegressor(formula=formula).fit(df)
    monkeypatch.setattr(optim, "POLISH_MAX_PARAMS", 0)  # the optimizer alone, at FTOL_REL
    with pytest.warns(SingularFitWarning):
        plain = MixedLMRegressor(formula=formula).fit(df)
    assert polished.result_.optsum.ftol_rel == optim.FTOL_REL
    assert 0.0 in polished.theta_
    assert polished.objective_ <= plain.objective_ + 1e-8
    np.testing.assert_allclose(polished.theta_, plain.theta_, atol=1e-5)


def test_newton_polish_accepts_a_step_within_the_rounding_of_a_large_objective():
    # a million rows: an objective of 2.7e6 whose evaluations round at ~3e-8. The
    # step may evaluate higher than the optimizer's point by that much and is kept,
    # as the optimizer does not distinguish points closer than FTOL_REL either.
    centre = np.array([0.5, 0.67])
    x = centre + 1e-5

    def fun(t):
        t = np.asarray(t)
        rounding = 0.0 if np.array_equal(t, x) else 5e-8
        return 2.7e6 + float(np.sum((t - centre) ** 2)) + rounding

    new, fnew, _ = newton_polish(fun, x, fun(x), np.zeros(2))
    assert new is not x and not np.array_equal(new, x)
    assert fun(x) < fnew < fun(x) + 1e-7


def test_refined_newton_steps_keep_the_hessian_and_reduce_its_error():
    # a cubic term makes the first step's difference Hessian slightly wrong; a
    # refinement (a new gradient, the Hessian kept) removes most of that error, down
    # to the bias of the differences themselves (c h^2 over the curvature: 6e-7)
    centre = np.array([0.8, 0.3, -0.4])
    hess = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])

    def fun(x):
        d = np.asarray(x) - centre
        return float(d @ hess @ d + 5.0 * d[0] ** 3) + 7.0

    x = centre + np.array([2e-3, -1e-3, 3e-3])
    steps = np.full(3, 1e-3)
    lower = np.full(3, -np.inf)
    once, _, log1 = newton_polish(fun, x, fun(x), lower, steps)
    twice, _, log2 = newton_polish(fun, x, fun(x), lower, steps, refine=1)
    assert len(log2) == len(log1) + 2 * 3 + 1  # 2n gradient points and the step
    assert np.abs(twice - centre).max() < 0.1 * np.abs(once - centre).max()
    np.testing.assert_allclose(twice, centre, atol=1e-6)


def test_a_glmm_whose_newton_step_is_refused_finishes_at_the_usual_tolerance(monkeypatch):
    # the joint stage stops at the looser GLMM_JOINT_FTOL_REL only because the Newton
    # step follows; where the step is refused, BOBYQA goes on at FTOL_REL
    from sklmixed import MixedGLMClassifier, load_dataset

    df = load_dataset("verbagg")
    formula = "r2 ~ 1 + anger + btype + (1|subj) + (1|item)"
    stepped = MixedGLMClassifier(formula=formula).fit(df)
    monkeypatch.setattr(optim, "newton_polish", lambda fun, x, fx, *a, **k: (x, fx, []))
    refused = MixedGLMClassifier(formula=formula).fit(df)
    assert refused.result_.optsum.ftol_rel == optim.FTOL_REL
    assert stepped.result_.optsum.ftol_rel == optim.GLMM_JOINT_FTOL_REL
    # both at the optimum as far as the deviance tells (BOBYQA alone stops up to
    # 1e-3 from the stepped point along the flat intercept/anger direction)
    assert stepped.objective_ <= refused.objective_ + 1e-8
    assert refused.objective_ == pytest.approx(stepped.objective_, abs=1e-6)


def test_flip_is_not_asked_when_no_diagonal_is_negative():
    def refuse(th):
        raise AssertionError("flip called")

    centre = np.array([0.7, -0.3, 0.2])  # -0.3 is off the diagonal
    theta, fmin = finalize_theta(
        centre.copy(), 1.0, _quadratic(centre), np.array([0, 2]), refuse, pure=True
    )
    np.testing.assert_array_equal(theta, centre)
    assert fmin == 1.0  # pure: the optimizer's value, not evaluated again


@pytest.mark.parametrize("pure", [True, False])
def test_nlopts_first_evaluation_at_x0_is_not_recomputed_for_a_pure_objective(pure):
    # nlopt evaluates x0 itself first; a pure objective's value there is finitial
    # (an impure one is also evaluated again at the optimum, for fmin)
    calls = []

    def fun(x):
        calls.append(x.copy())
        return float((x[0] - 0.3) ** 2 + 2.0 * (x[1] + 0.1) ** 2 + 1.0)

    x0 = np.array([1.0, 0.5])
    f0 = fun(x0)
    calls.clear()
    opt = optim.minimize(fun, x0, np.array([0.0, -np.inf]), finitial=f0, pure=pure)
    assert np.array_equal(opt.fitlog[1][0], x0) and opt.fitlog[1][1] == f0
    assert len(calls) == len(opt.fitlog) - (2 if pure else 0)
    assert opt.fmin == fun(opt.final) and opt.fmin < f0
