"""The optimizer driver's helpers, and its last step: flipping and snapping theta
(lme4 and MixedModels.jl report a variance that the optimizer leaves numerically
zero as exactly zero, where that costs nothing visible in the objective)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed._core._lmm import DENSE_MAX
from sklmixed._optim import SNAP_COST, SNAP_TOL, OptSummary, blas_for, finalize_theta, or_inf


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


def test_small_systems_run_on_one_blas_thread():
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    with blas_for(m.problem_):
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    # a system of DENSE_MAX + 1 rows keeps the default threads
    big = SimpleNamespace(terms=[SimpleNamespace(nranef=DENSE_MAX - 1)], p=1)
    assert isinstance(blas_for(big), contextlib.nullcontext)


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
