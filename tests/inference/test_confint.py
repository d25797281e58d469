"""model.confint: row names, Wald intervals against lme4, bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset
from sklmixed.exceptions import InferenceError, RankDeficientWarning

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


def test_wald_intervals_as_lme4(slope):
    ref = REF["confint_wald_sleepstudy"]
    ci = slope.confint()
    assert ci.columns.tolist() == ["lower", "upper"]
    assert ci.index.tolist() == ref["names"]
    # lme4's estimates and standard errors agree with ours to far below 1e-3 of a
    # standard error (both optimizers stop within 1e-7 of the same optimum)
    tol = 1e-3 * slope.stderror_
    lower = np.array([np.nan if v is None else v for v in ref["lower"]])
    upper = np.array([np.nan if v is None else v for v in ref["upper"]])
    np.testing.assert_allclose(ci["lower"].iloc[:2], lower[:2], rtol=0, atol=tol.min())
    np.testing.assert_allclose(ci["upper"].iloc[:2], upper[:2], rtol=0, atol=tol.min())
    assert ci.iloc[2:].isna().all().all()  # variance parameters have no Wald interval


def test_wald_level_sets_the_normal_quantile(slope):
    ci = slope.confint(level=0.9)
    half = (ci["upper"] - ci["lower"]).iloc[:2].to_numpy() / 2
    np.testing.assert_allclose(half, 1.6448536269514722 * slope.stderror_, rtol=1e-12)


def test_rows_for_crossed_zerocorr_and_glmm_models():
    pen = load_dataset("penicillin")
    m = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(pen)
    assert m.confint().index.tolist() == [
        "(Intercept)",
        "sd(plate: (Intercept))",
        "sd(sample: (Intercept))",
        "sigma",
    ]
    sleep = load_dataset("sleepstudy")
    z = MixedLMRegressor(formula="reaction ~ 1 + days + zerocorr(1 + days|subj)").fit(sleep)
    assert z.confint().index.tolist() == [
        "(Intercept)",
        "days",
        "sd(subj: (Intercept))",
        "sd(subj: days)",
        "sigma",
    ]
    contra = load_dataset("contra")
    g = MixedGLMClassifier(formula="use ~ 1 + urban + (1|dist)", fast=True).fit(contra)
    ci = g.confint()
    assert ci.index.tolist() == ["(Intercept)", "urban: Y", "sd(dist: (Intercept))"]
    assert "sigma" not in ci.index  # no dispersion parameter


def test_dropped_coefficient_has_nan_limits(sleep):
    d = sleep.assign(days2=2 * sleep["days"])
    with pytest.warns(RankDeficientWarning):
        m = MixedLMRegressor(formula="reaction ~ 1 + days + days2 + (1|subj)").fit(d)
    ci = m.confint()
    assert ci.loc["days2"].isna().all()
    assert ci.loc["days"].notna().all()


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, float("nan"), "high", None])
def test_level_outside_the_unit_interval_is_refused(slope, level):
    with pytest.raises(InferenceError, match="level"):
        slope.confint(level=level)


def test_unknown_method_is_refused(slope):
    with pytest.raises(InferenceError, match="unknown confint method 'normal'"):
        slope.confint(method="normal")


def test_profile_method_delegates_to_the_profile_module(slope):
    if importlib.util.find_spec("sklmixed.inference._profile") is None:
        with pytest.raises(NotImplementedError, match="profile intervals"):
            slope.confint(method="profile")
    else:
        ci = slope.confint(method="profile")
        assert isinstance(ci, pd.DataFrame)
        assert ci.index.tolist() == REF["confint_profile_sleepstudy"]["names"]


def test_bootstrap_method_gives_the_shortest_bootstrap_intervals(sleep):
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(sleep)
    ci = m.confint(method="bootstrap", n_boot=50, random_state=3)
    expected = m.bootstrap(n_boot=50, random_state=3).confint(method="shortest")
    pd.testing.assert_frame_equal(ci, expected)


def test_unfitted_model_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MixedLMRegressor(formula=SLOPE).confint()
