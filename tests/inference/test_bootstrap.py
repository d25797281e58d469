"""model.bootstrap: reproducibility, the refit of a new response, intervals.

The slow test compares the bootstrap intervals of the sleepstudy random-slope model
with lme4's bootMer (4000 replicates, tests/reference/lme4/make_inference_reference.R)
within Monte Carlo error; see its docstring for the comparison with lme4's profile
intervals.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklmixed import (
    BootstrapResult,
    MixedGLMClassifier,
    MixedGLMRegressor,
    MixedLMRegressor,
    load_dataset,
)
from sklmixed.exceptions import InferenceError
from sklmixed.inference import _bootstrap
from sklmixed.inference._simulate import Simulator

REF = json.loads(
    (
        Path(__file__).resolve().parents[1] / "reference" / "lme4" / "inference_reference.json"
    ).read_text()
)
SLOPE = "reaction ~ 1 + days + (1 + days|subj)"


@pytest.fixture(scope="module")
def sleep():
    return load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def slope(sleep):
    return MixedLMRegressor(formula=SLOPE).fit(sleep)


def test_replicates_table(slope):
    boot = slope.bootstrap(n_boot=30, random_state=0)
    assert isinstance(boot, BootstrapResult)
    assert boot.replicates.shape == (30, 7)
    assert boot.replicates.columns.tolist() == ["objective"] + slope.confint().index.tolist()
    assert boot.theta.shape == (30, 3) and boot.converged.all()
    assert np.isfinite(boot.replicates.to_numpy()).all()
    assert "n_boot=30" in repr(boot)


def test_same_seed_same_replicates_whatever_n_jobs(slope):
    a = slope.bootstrap(n_boot=24, random_state=5)
    b = slope.bootstrap(n_boot=24, random_state=5, n_jobs=2)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    c = slope.bootstrap(n_boot=24, random_state=np.random.SeedSequence(5))
    pd.testing.assert_frame_equal(a.replicates, c.replicates)
    assert not a.replicates.equals(slope.bootstrap(n_boot=24, random_state=6).replicates)


def test_each_replicate_is_the_fit_of_its_simulated_response(slope, sleep):
    """The reused structure (a new response set into a copy of the fitted problem)
    gives the fit a new estimator gives from the data frame."""
    n_boot = 4
    boot = slope.bootstrap(n_boot=n_boot, random_state=11)
    seeds = np.random.SeedSequence(11).spawn(n_boot)
    sim = Simulator(slope)
    for i, seed in enumerate(seeds):
        y = sim.draw(np.random.default_rng(seed), 1)[0]
        fresh = MixedLMRegressor(formula=SLOPE).fit(sleep.assign(reaction=y))
        row = boot.replicates.iloc[i]
        # two optimizer runs from different starts: the objective agrees to the
        # optimizer's tolerance, the estimates to what that flatness allows
        assert row["objective"] == pytest.approx(fresh.objective_, abs=1e-5)
        np.testing.assert_allclose(row[["(Intercept)", "days"]], fresh.coef_, rtol=1e-5)
        assert row["sigma"] == pytest.approx(fresh.sigma_, rel=1e-4)


def test_the_model_is_left_as_it_was(sleep):
    m = MixedLMRegressor(formula=SLOPE).fit(sleep)
    before = (m.objective_, m.theta_.copy(), m.condvar()["subj"].copy())
    m.bootstrap(n_boot=5, random_state=0)
    assert m.problem_.objective(m.theta_) == pytest.approx(before[0], rel=1e-13)
    np.testing.assert_array_equal(m.theta_, before[1])
    np.testing.assert_allclose(m.condvar()["subj"], before[2], rtol=1e-12)


def test_reml_fit_bootstraps_the_reml_criterion(sleep):
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)", reml=True).fit(sleep)
    boot = m.bootstrap(n_boot=5, random_state=0)
    assert np.all(boot.replicates["objective"] > 1500)


def test_glmm_bootstrap_has_no_sigma_and_refits_by_laplace():
    contra = load_dataset("contra")
    clf = MixedGLMClassifier(formula="use ~ 1 + urban + (1|dist)", fast=True).fit(contra)
    boot = clf.bootstrap(n_boot=3, random_state=0)
    assert boot.replicates.columns.tolist() == [
        "objective",
        "(Intercept)",
        "urban: Y",
        "sd(dist: (Intercept))",
    ]
    assert np.isfinite(boot.replicates.to_numpy()).all()
    a = clf.bootstrap(n_boot=3, random_state=0)  # fresh problem copy per replicate
    pd.testing.assert_frame_equal(a.replicates, boot.replicates)


def test_lmm_with_an_offset_refits_each_simulated_response(sleep):
    """The replicate's response is simulated with the offset and refitted with it:
    each replicate is the fit of a new estimator to that response."""
    off = 30.0 * (sleep["days"].to_numpy() % 3)
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(sleep, offset=off)
    boot = m.bootstrap(n_boot=3, random_state=2)
    sim = Simulator(m)
    for i, seed in enumerate(np.random.SeedSequence(2).spawn(3)):
        y = sim.draw(np.random.default_rng(seed), 1)[0]
        fresh = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(
            sleep.assign(reaction=y), offset=off
        )
        row = boot.replicates.iloc[i]
        assert row["objective"] == pytest.approx(fresh.objective_, abs=1e-5)
        np.testing.assert_allclose(row[["(Intercept)", "days"]], fresh.coef_, rtol=1e-5)


@pytest.mark.parametrize("family, name", [("negative_binomial", "shape"), ("gamma", "dispersion")])
def test_dispersion_families_report_their_parameter(family, name):
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(15), 8)
    t = rng.integers(1, 5, g.shape[0]).astype(float)
    mu = t * np.exp(0.5 + rng.normal(scale=0.4, size=15)[g])
    if family == "gamma":
        y = rng.gamma(1 / 0.25, 0.25 * mu)
    else:
        y = rng.negative_binomial(4.0, 4.0 / (4.0 + mu))
    df = pd.DataFrame({"y": y.astype(float), "t": t, "g": g})
    m = MixedGLMRegressor(formula="y ~ 1 + offset(log(t)) + (1|g)", family=family, fast=True).fit(
        df
    )
    boot = m.bootstrap(n_boot=20, random_state=0)
    cols = ["objective", "(Intercept)", "sd(g: (Intercept))", name]
    assert boot.replicates.columns.tolist() == cols
    assert boot.theta.shape == (20, 1) and boot.converged.all()
    values = boot.replicates[name].to_numpy()
    assert np.all(values > 0)
    # the replicates scatter around the fitted parameter and intercept (the
    # offset is simulated and refitted: without it the intercept would move by
    # the mean log exposure, 0.9)
    assert np.median(values) == pytest.approx(m.dispersion_, rel=0.5)
    assert abs(boot.replicates["(Intercept)"].median() - m.coef_[0]) < 0.3
    table = m.confint(method="bootstrap", n_boot=20, random_state=0)
    assert table.index[-1] == name and table.loc[name, "lower"] > 0
    assert m.confint().index.tolist() == cols[1:]  # Wald: NaN for the parameter


def _brute_shortest(v, level):
    v = np.sort(v)
    k = math.ceil(len(v) * level)
    best = min(range(len(v) - k + 1), key=lambda i: (v[i + k - 1] - v[i], i))
    return v[best], v[best + k - 1]


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_shortest_and_percentile_intervals(level):
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, size=101)
    values[[3, 7]] = np.nan  # left out
    table = pd.DataFrame({"objective": np.zeros(101), "a": values})
    boot = BootstrapResult(table, np.zeros((101, 0)), np.ones(101, bool))
    finite = values[np.isfinite(values)]
    short = boot.confint(level)
    assert tuple(short.loc["a"]) == _brute_shortest(finite, level)
    pct = boot.confint(level, method="percentile")
    expected = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    np.testing.assert_allclose(pct.loc["a"], expected, rtol=1e-14)
    # the shortest interval of a skewed sample is shorter than the equal-tailed one
    assert np.diff(short.loc["a"]) <= np.diff(pct.loc["a"])


def test_bad_arguments(slope):
    with pytest.raises(InferenceError, match="n_boot must be a positive integer; got 0"):
        slope.bootstrap(n_boot=0)
    with pytest.raises(InferenceError, match="n_boot must be a positive integer"):
        slope.bootstrap(n_boot=2.5)
    with pytest.raises(InferenceError, match="random_state"):
        slope.bootstrap(n_boot=2, random_state=-1)
    boot = slope.bootstrap(n_boot=3, random_state=0)
    with pytest.raises(InferenceError, match="unknown bootstrap interval method 'bca'"):
        boot.confint(method="bca")
    with pytest.raises(InferenceError, match="level"):
        boot.confint(level=1.0)


def test_text_progress_bar_without_tqdm(slope, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: the plain bar
    slope.bootstrap(n_boot=4, random_state=0, verbose=True)
    err = capsys.readouterr().err
    assert "bootstrap: 100%" in err and "4/4" in err
    slope.bootstrap(n_boot=4, random_state=0)
    assert capsys.readouterr().err == ""


def test_refits_that_fail_are_reported(slope, monkeypatch):
    calls = iter(range(100))
    real = _bootstrap._LMMRefit.__call__

    def flaky(self, seed):
        out = real(self, seed)
        return out[:4] + (next(calls) != 1,)  # the second replicate "did not converge"

    monkeypatch.setattr(_bootstrap._LMMRefit, "__call__", flaky)
    with pytest.warns(Warning, match="1 of 3 bootstrap refits did not converge"):
        boot = slope.bootstrap(n_boot=3, random_state=0)
    assert boot.converged.tolist() == [True, False, True]


@pytest.mark.slow
def test_intervals_agree_with_lme4_bootmer_within_monte_carlo_error(slope):
    """Percentile intervals of 2000 replicates against lme4's bootMer (4000).

    Each endpoint is a sample quantile; its Monte Carlo standard error is estimated
    from our replicates by the order statistics that bracket the quantile with 95%
    binomial probability ((v[k_hi] - v[k_lo]) / (2 * 1.96)), and lme4's by the same
    scaled to 4000 replicates. The endpoints must agree within 4 combined standard
    errors (plus 1e-6 for the correlation's upper endpoint, 1 in both: singular
    replicates).

    Against lme4's *profile* intervals the bootstrap does not agree, and should not:
    measured with 4000 replicates, the coefficient endpoints lie 2.5-4.3 Monte Carlo
    standard errors inside the profile ones (the bootstrap distribution of beta is
    close to the Wald interval), sigma's 5-6 below, the standard deviations' 11-22
    below (the percentile interval inherits the downward bias of the ML estimates of
    the replicates: 10.9-33.2 against 14.4-37.7 for sd(subj: (Intercept))), and the
    correlation's upper endpoint is 1 (singular replicates) against 0.685. lme4's own
    bootMer shows the same differences, which is what this test checks.
    """
    ref = REF["bootstrap_percentile_sleepstudy"]
    boot = slope.bootstrap(n_boot=2000, random_state=20261125)
    ci = boot.confint(method="percentile")
    assert ci.index.tolist() == ref["names"]
    for k, name in enumerate(ref["names"]):
        v = np.sort(boot.replicates[name].dropna().to_numpy())
        n = v.shape[0]
        for side, p in (("lower", 0.025), ("upper", 0.975)):
            half = 1.96 * math.sqrt(n * p * (1 - p))
            lo, hi = max(int(n * p - half), 0), min(int(math.ceil(n * p + half)), n - 1)
            se = (v[hi] - v[lo]) / (2 * 1.96)
            se_both = se * math.sqrt(1 + n / ref["n_boot"])
            assert abs(ci.loc[name, side] - ref[side][k]) <= 4 * se_both + 1e-6, (name, side)
