"""The optimizer driver's helpers."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
from threadpoolctl import threadpool_info

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed._core._lmm import DENSE_MAX
from sklmixed._optim import OptSummary, blas_for, or_inf


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
