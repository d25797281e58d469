"""Models without random-effects terms (a formula without '|', or formula=None with
groups=None): every method works and says so, nothing crashes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset


def _data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    eta = 0.3 + 0.8 * X[:, 0]
    return X, {
        "lmm": eta + rng.normal(size=60),
        "classifier": np.where(rng.uniform(size=60) < 1 / (1 + np.exp(-eta)), "yes", "no"),
        "poisson": rng.poisson(np.exp(eta)).astype(float),
    }


ESTIMATORS = {
    "lmm": MixedLMRegressor,
    "classifier": MixedGLMClassifier,
    "poisson": MixedGLMRegressor,
}


def _fits(case):
    X, ys = _data()
    df = pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "y": ys[case]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for an ordinary model
        yield ESTIMATORS[case]().fit(X, ys[case])  # formula=None, groups=None
        yield ESTIMATORS[case](formula="y ~ 1 + x0 + x1").fit(df)


@pytest.mark.parametrize("case", list(ESTIMATORS))
def test_every_method_of_a_model_without_random_effects(case):
    for m in _fits(case):
        text = str(m.summary())
        assert "Number of obs: 60\n" in text and "levels of grouping factors" not in text
        assert "Fixed-effects parameters:" in text
        assert "(Intercept)" in m.summary()._repr_html_()
        assert "Number of obs: 60" in m.summary().to_markdown()
        vc = str(m.varcorr())
        if case == "lmm":
            assert vc.splitlines()[1].split() == ["Variance", "Std.Dev."]
            assert vc.splitlines()[2].startswith("Residual")
        else:
            assert "none" in vc and "Variance components" in vc
        assert m.ranef() == {} and m.ranef(uscale=True) == {}
        assert m.raneftables() == {} and m.condvar() == {}
        assert m.coeftable().shape[0] == 3
        assert m.fitted_values().shape == (60,) and m.residuals().shape == (60,)


def test_leverage_without_random_effects_is_the_hat_matrix_diagonal():
    X, ys = _data()
    Xi = np.column_stack([np.ones(60), X])
    w = np.linspace(0.5, 2.0, 60)
    for weights in (None, w):
        m = MixedLMRegressor().fit(X, ys["lmm"], sample_weight=weights)
        sw = np.ones(60) if weights is None else np.sqrt(weights)
        A = Xi * sw[:, None]
        hat = A @ np.linalg.solve(A.T @ A, A.T)
        np.testing.assert_allclose(m.leverage(), np.diag(hat), rtol=1e-10)
        assert m.leverage().sum() == pytest.approx(3.0)


def test_leverage_without_random_effects_with_a_dropped_column():
    X, ys = _data()
    Xd = np.column_stack([X, 2.0 * X[:, 0]])
    with pytest.warns(match="rank deficient"):
        m = MixedLMRegressor().fit(Xd, ys["lmm"])
    assert m.leverage().sum() == pytest.approx(3.0)


def test_summary_of_a_glmm_without_random_effects_on_named_data():
    clf = MixedGLMClassifier(formula="use ~ 1 + age + urban", fast=True).fit(load_dataset("contra"))
    lines = str(clf.summary()).splitlines()
    assert "Variance components: none (the model has no random-effects terms)" in lines
    assert " Number of obs: 1934" in lines
