"""Satterthwaite and Kenward-Roger denominator df against lmerTest and pbkrtest.

Reference values: ``tests/reference/lme4/make_profile_ddf_reference.R`` (lmerTest's
``summary(m, ddf = ...)``, pbkrtest's ``vcovAdj``).

Tolerances, and why: the df and p-values are held to 1e-3 (relative) as computed
at our own estimates; they differ from lmerTest's there only because the two
optimizers stop at slightly different points of the same flat optimum (theta
within about 1e-5). At lme4's own theta the computations agree to 1e-6 for
Satterthwaite (both use Richardson-extrapolated differences) and to 1e-9 for
Kenward-Roger (closed form), which the second group of tests checks.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset
from sklmixed.exceptions import RankDeficientWarning, SingularFitWarning
from sklmixed.inference import ddf_coeftable
from sklmixed.inference._ddf import _kenward_roger, _satterthwaite

HERE = Path(__file__).resolve().parents[1] / "reference" / "lme4"
REF = json.loads((HERE / "profile_ddf_reference.json").read_text())["models"]
RTOL = 1e-3
_CACHE: dict = {}


def fitted(name):
    if name not in _CACHE:
        ref = REF[name]
        if ref["data"].endswith(".csv"):
            df = pd.read_csv(HERE / "data" / ref["data"])
        else:
            df = load_dataset(ref["data"])
        model = MixedLMRegressor(formula=ref["sklmixed_formula"], reml=ref["fit"]["reml"])
        with warnings.catch_warnings():  # dyestuff2 is a boundary fit, on purpose
            warnings.simplefilter("ignore", SingularFitWarning)
            model.fit(df, sample_weight=df["w"] if "weighted" in name else None)
        _CACHE[name] = model
    return _CACHE[name]


def _vec(x):
    return np.atleast_1d(np.asarray(x, dtype=float))


@pytest.mark.parametrize("name", list(REF))
def test_satterthwaite_matches_lmertest(name):
    ref = REF[name]["satterthwaite"]
    tab = fitted(name).coeftable(ddf="satterthwaite")
    assert list(tab.columns) == [
        "Coef.",
        "Std. Error",
        "df",
        "t",
        "Pr(>|t|)",
        "Lower 95%",
        "Upper 95%",
    ]
    np.testing.assert_allclose(tab["df"], _vec(ref["df"]), rtol=RTOL)
    np.testing.assert_allclose(tab["Pr(>|t|)"], _vec(ref["p"]), rtol=RTOL)
    np.testing.assert_allclose(tab["t"], _vec(ref["t"]), rtol=RTOL)
    np.testing.assert_allclose(tab["Std. Error"], _vec(ref["stderror"]), rtol=RTOL)


KR_NAMES = [n for n in REF if "kenward_roger" in REF[n]]


@pytest.mark.parametrize("name", KR_NAMES)
def test_kenward_roger_matches_pbkrtest(name):
    ref = REF[name]["kenward_roger"]
    tab = fitted(name).coeftable(ddf="kenward-roger")
    np.testing.assert_allclose(tab["df"], _vec(ref["df"]), rtol=RTOL)
    np.testing.assert_allclose(tab["Pr(>|t|)"], _vec(ref["p"]), rtol=RTOL)
    np.testing.assert_allclose(tab["Std. Error"], _vec(ref["stderror"]), rtol=RTOL)


@pytest.mark.parametrize("name", list(REF))
def test_satterthwaite_at_lme4_theta(name):
    ref = REF[name]
    model = fitted(name)
    theta = _vec(ref["fit"]["theta"])  # same term order as lme4 for these models
    _, se, df = _satterthwaite(model.problem_, theta, ref["fit"]["reml"])
    np.testing.assert_allclose(df, _vec(ref["satterthwaite"]["df"]), rtol=1e-6)
    np.testing.assert_allclose(se, _vec(ref["satterthwaite"]["stderror"]), rtol=1e-6)


@pytest.mark.parametrize("name", KR_NAMES)
def test_kenward_roger_at_lme4_theta(name):
    ref = REF[name]
    model = fitted(name)
    _, se, df = _kenward_roger(model.problem_, _vec(ref["fit"]["theta"]))
    np.testing.assert_allclose(df, _vec(ref["kenward_roger"]["df"]), rtol=1e-9)
    np.testing.assert_allclose(se, _vec(ref["kenward_roger"]["stderror"]), rtol=1e-9)


@pytest.mark.parametrize("base", ["sleepstudy", "machines"])
def test_kenward_roger_of_ml_fit_is_that_of_the_reml_refit(base):
    """pbkrtest refits an ML fit by REML; so do we, and say so."""
    with pytest.warns(UserWarning, match="refitted by REML"):
        ml = fitted(f"{base}_ml").coeftable(ddf="kenward-roger")
    reml = fitted(f"{base}_reml").coeftable(ddf="kenward-roger")
    pd.testing.assert_frame_equal(ml, reml, rtol=1e-6)


def test_t_based_intervals():
    tab = fitted("penicillin_reml").coeftable(level=0.9, ddf="satterthwaite")
    q = stats.t.ppf(0.95, tab["df"])
    np.testing.assert_allclose(tab["Lower 90%"], tab["Coef."] - q * tab["Std. Error"])
    np.testing.assert_allclose(tab["Upper 90%"], tab["Coef."] + q * tab["Std. Error"])


def test_function_and_method_agree():
    model = fitted("machines_reml")
    pd.testing.assert_frame_equal(
        ddf_coeftable(model, 0.9, "satterthwaite"), model.coeftable(0.9, ddf="satterthwaite")
    )


def test_ddf_none_is_the_z_table():
    model = fitted("sleepstudy_ml")
    pd.testing.assert_frame_equal(model.coeftable(ddf=None), model.result_.coeftable(0.95))


def test_spellings():
    model = fitted("penicillin_reml")
    a = model.coeftable(ddf="Kenward-Roger")
    b = model.coeftable(ddf="kenward-roger")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        model.coeftable(ddf="Satterthwaite"), model.coeftable(ddf="satterthwaite")
    )


def test_rank_deficient_coefficient_is_nan():
    df = load_dataset("sleepstudy")
    df["days2"] = 2 * df["days"]
    with pytest.warns(RankDeficientWarning):
        model = MixedLMRegressor(formula="reaction ~ 1 + days + days2 + (1|subj)", reml=True).fit(
            df
        )
    for ddf in ("satterthwaite", "kenward-roger"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tab = model.coeftable(ddf=ddf)
        assert np.isnan(tab.loc["days2", "df"]) and np.isnan(tab.loc["days2", "Std. Error"])
        assert tab.loc["days", "df"] > 0
        # a random intercept and a balanced covariate that varies within subjects
        # only: the classical (REML) df for days is n - subjects - 1 = 161
        assert tab.loc["days", "df"] == pytest.approx(161, rel=1e-3)


def test_model_left_as_fitted():
    model = fitted("sleepstudy_reml")
    cv = model.condvar()["subj"].copy()
    model.coeftable(ddf="satterthwaite")
    model.coeftable(ddf="kenward-roger")
    np.testing.assert_allclose(model.condvar()["subj"], cv, rtol=1e-12)


@pytest.mark.parametrize("ddf", ["kr", "Satterwhaite", 1, "residual"])
def test_bad_ddf(ddf):
    with pytest.raises(ValueError, match="ddf must be None, 'satterthwaite' or"):
        fitted("penicillin_reml").coeftable(ddf=ddf)


@pytest.mark.parametrize("level", [0, 1, 2.0, "x"])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level must be a number"):
        fitted("penicillin_reml").coeftable(level=level, ddf="satterthwaite")


def test_glmm_refused():
    df = load_dataset("contra")
    clf = MixedGLMClassifier(formula="use ~ 1 + urban + (1|dist)", fast=True).fit(df)
    with pytest.raises(ValueError, match="linear mixed models"):
        clf.coeftable(ddf="satterthwaite")
