"""Fits whose factorizations take the sparse layout (crossed terms whose levels
meet rarely, ``sklmixed._core._sparse``) are the fits of the blocked layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMClassifier, MixedLMRegressor
from sklmixed._core import _sparse


def _ratings(n=900, users=500, items=160, seed=5):
    rng = np.random.default_rng(seed)
    # power-law activity, as ratings have: a few heavy users and items
    u = np.minimum(rng.zipf(1.6, n) - 1, users - 1)
    i = np.minimum(rng.zipf(1.4, n) - 1, items - 1)
    u[:users], i[:items] = np.arange(users), np.arange(items)
    x = rng.normal(size=n)
    eta = 0.3 * x + rng.normal(0, 0.6, users)[u] + rng.normal(0, 0.8, items)[i]
    return pd.DataFrame(
        {
            "user": [f"u{k}" for k in u],
            "item": [f"i{k}" for k in i],
            "x": x,
            "y": 3.0 + eta + rng.normal(0, 0.7, n),
            "b": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
        }
    )


@pytest.fixture
def layouts(monkeypatch):
    """Fit a model with the sparse layout (thresholds lowered to this size) and
    with the blocked layout; return both."""

    def fit(make):
        with monkeypatch.context() as mp:
            mp.setattr(_sparse, "SPARSE_MIN_LEVELS", 50)
            mp.setattr(_sparse, "COST_PAIR", 1.0)
            mp.setattr(_sparse, "COST_ENTRY", 1.0)
            sparse = make()
        blocked = make()
        return sparse, blocked

    return fit


def _layout(model):
    problem = getattr(model.problem_, "lmm", model.problem_)
    return problem.layout


def test_lmm_fit_is_the_blocked_fit(layouts):
    df = _ratings()
    sparse, blocked = layouts(
        lambda: MixedLMRegressor(formula="y ~ 1 + x + (1|user) + (1|item)").fit(df)
    )
    assert _layout(sparse) == "sparse" and _layout(blocked) == "blocked"
    assert sparse.objective_ == pytest.approx(blocked.objective_, rel=1e-9)
    np.testing.assert_allclose(sparse.coef_, blocked.coef_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sparse.theta_, blocked.theta_, rtol=1e-6, atol=1e-6)
    assert sparse.sigma_ == pytest.approx(blocked.sigma_, rel=1e-6)
    for name in ("user", "item"):
        np.testing.assert_allclose(
            sparse.ranef_[name].to_numpy(), blocked.ranef_[name].to_numpy(), atol=1e-6
        )
    np.testing.assert_allclose(sparse.predict(df), blocked.predict(df), atol=1e-6)
    assert str(sparse.summary()) == str(blocked.summary())


@pytest.mark.parametrize("fast", [True, False])
def test_bernoulli_fit_is_the_blocked_fit(layouts, fast):
    df = _ratings()
    formula = "b ~ 1 + x + (1|user) + (1|item)"
    sparse, blocked = layouts(lambda: MixedGLMClassifier(formula=formula, fast=fast).fit(df))
    assert _layout(sparse) == "sparse" and _layout(blocked) == "blocked"
    assert sparse.objective_ == pytest.approx(blocked.objective_, rel=1e-9)
    np.testing.assert_allclose(sparse.coef_, blocked.coef_, atol=1e-6)
    np.testing.assert_allclose(sparse.theta_, blocked.theta_, atol=1e-6)
