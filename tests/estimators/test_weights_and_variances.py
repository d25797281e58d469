"""Prior weights against dropped and repeated rows; conditional variances and the
printed correlations against independent values.

- A zero weight removes an observation (lme4, MixedModels.jl): every figure of the
  fit, counts included, equals that of the fit without those rows.
- For the GLMM families a weight of 2 is the same likelihood as the row twice
  (Bernoulli and Poisson log-likelihoods are sums over rows; weights multiply them).
- A GLMM's conditional variance of a scalar random effect is, under the Laplace
  approximation, theta^2 / (theta^2 sum_i w_i + 1) with w the working weights at
  the modes (for the logit link mu (1 - mu)).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset

SLEEP = "reaction ~ 1 + days + (1 + days|subj)"
LMM_FIGURES = ("objective_", "loglik_", "aic_", "aicc_", "bic_", "sigma_", "dof_", "nobs_")


def _zero_weights(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 2.0, n)
    w[rng.choice(n, n // 6, replace=False)] = 0.0
    return w


@pytest.mark.parametrize("reml", [False, True])
def test_lmm_zero_weights_equal_dropped_rows(reml):
    df = load_dataset("sleepstudy")
    w = _zero_weights(len(df))
    full = MixedLMRegressor(formula=SLEEP, reml=reml).fit(df, sample_weight=w)
    keep = w > 0
    dropped = MixedLMRegressor(formula=SLEEP, reml=reml).fit(
        df[keep].reset_index(drop=True), sample_weight=w[keep]
    )
    assert full.nobs_ == keep.sum()
    for name in LMM_FIGURES:
        assert getattr(full, name) == pytest.approx(getattr(dropped, name), rel=1e-6), name
    np.testing.assert_allclose(full.coef_, dropped.coef_, rtol=1e-6)
    np.testing.assert_allclose(full.theta_, dropped.theta_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(full.stderror_, dropped.stderror_, rtol=1e-5)


def test_a_level_seen_only_in_zero_weight_rows_is_not_counted():
    """lme4 drops zero-weight rows before counting the levels of a grouping factor."""
    df = load_dataset("sleepstudy")
    gone = df["subj"] == df["subj"].iloc[0]
    w = np.where(gone, 0.0, 1.0)
    full = MixedLMRegressor(formula=SLEEP).fit(df, sample_weight=w)
    dropped = MixedLMRegressor(formula=SLEEP).fit(df[~gone].reset_index(drop=True))

    def counts(m):
        return [ln for ln in str(m.summary()).splitlines() if "levels of grouping" in ln]

    assert (
        counts(full)
        == counts(dropped)
        == [f" Number of obs: {(~gone).sum()}; levels of grouping factors: 17"]
    )
    assert full.objective_ == pytest.approx(dropped.objective_, rel=1e-9)


def test_glmm_zero_and_repeated_weights_equal_dropped_and_repeated_rows():
    df = load_dataset("contra")
    formula = "use ~ 1 + age + urban + (1|dist)"
    rng = np.random.default_rng(4)
    w = rng.integers(0, 3, len(df)).astype(float)  # 0, 1 or 2
    weighted = MixedGLMClassifier(formula=formula).fit(df, sample_weight=w)
    expanded = df.loc[np.repeat(np.arange(len(df)), w.astype(int))].reset_index(drop=True)
    repeated = MixedGLMClassifier(formula=formula).fit(expanded)
    assert weighted.objective_ == pytest.approx(repeated.objective_, rel=1e-8)
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weighted.theta_, repeated.theta_, rtol=1e-4)
    np.testing.assert_allclose(weighted.stderror_, repeated.stderror_, rtol=1e-4)


def test_poisson_repeated_weights_equal_repeated_rows():
    rng = np.random.default_rng(5)
    n, nl = 300, 15
    g = np.arange(n) % nl
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, nl)[g]))
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    w = rng.integers(1, 3, n).astype(float)
    formula = "y ~ 1 + x + (1|g)"
    weighted = MixedGLMRegressor(formula=formula, family="poisson").fit(df, sample_weight=w)
    expanded = df.loc[np.repeat(np.arange(n), w.astype(int))].reset_index(drop=True)
    repeated = MixedGLMRegressor(formula=formula, family="poisson").fit(expanded)
    assert weighted.objective_ == pytest.approx(repeated.objective_, rel=1e-8)
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-4)
    np.testing.assert_allclose(weighted.theta_, repeated.theta_, rtol=1e-4)


@pytest.mark.parametrize("fast", [False, True])
def test_glmm_condvar_equals_the_laplace_posterior_variance(fast):
    df = load_dataset("contra")
    clf = MixedGLMClassifier(formula="use ~ 1 + age + urban + (1|dist)", fast=fast).fit(df)
    eta = clf.decision_function(df)  # fixed effects plus the conditional modes
    mu = special.expit(eta)
    w = mu * (1.0 - mu)
    levels = clf.ranef_["dist"].index
    codes = levels.get_indexer(df["dist"])
    theta = clf.theta_[0]
    expected = theta**2 / (theta**2 * np.bincount(codes, w, minlength=len(levels)) + 1.0)
    np.testing.assert_allclose(clf.condvar()["dist"][:, 0, 0], expected, rtol=1e-6)


def test_summary_prints_a_negative_correlation():
    """Reversing the slope's covariate mirrors the fit: the same summary with the
    signs of the slope, its z and the correlation reversed, character for
    character."""
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula=SLEEP).fit(df)
    flipped = df.assign(days=-df["days"])
    mf = MixedLMRegressor(formula=SLEEP).fit(flipped)
    text, text_f = str(m.summary()), str(mf.summary())
    corr = m.varcorr().table
    assert "+0.08" in text and "-0.08" in text_f
    # the fits agree to the optimizer's precision, so the printed numbers do
    assert mf.objective_ == pytest.approx(m.objective_, abs=1e-6)
    slope = f"{m.coef_[1]:.6g}"
    expected = text.replace("+0.08", "-0.08").replace(f" {slope} ", f"-{slope} ")
    z = f"{m.coef_[1] / m.stderror_[1]:.2f}"
    expected = expected.replace(f"  {z}", f" -{z}")
    assert text_f == expected, (text_f, expected, corr)
