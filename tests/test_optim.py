"""The optimizer driver's helpers."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from sklmixed import MixedLMRegressor, _optim, load_dataset
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


def test_fits_run_on_one_blas_thread(monkeypatch):
    # threads gain little on a fit's calls and cost much when a core is busy
    with blas_for():
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    seen = []
    inner = _optim._fit_lmm

    def spy(*args, **kwargs):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return inner(*args, **kwargs)

    monkeypatch.setattr(_optim, "_fit_lmm", spy)
    MixedLMRegressor(formula="y ~ 1 + service + (1|s) + (1|d)").fit(
        load_dataset("insteval").iloc[:3000]
    )
    assert seen and all(n == 1 for n in seen)
