"""lrtest against lme4's anova, and its refusals.

Reference: tests/reference/lme4/make_inference_reference.R (lme4 1.1-31). lme4 prints
Chisq 42.139 on 2 df, p = 7.0724e-10 for the ML random-slope sleepstudy model against
the random-intercept one; the deviances of the two fits agree with lme4's to 1e-6 (the
optimizers stop within that of the same optimum), so chisq is held to 1e-5 and p to
1e-5 relative (more than the printed digits).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMRegressor, MixedLMRegressor, load_dataset, lrtest
from sklmixed.exceptions import InferenceError

REF = json.loads(
    (
        Path(__file__).resolve().parents[1] / "reference" / "lme4" / "inference_reference.json"
    ).read_text()
)
DATA = Path(__file__).resolve().parents[1] / "reference" / "lme4" / "data"


@pytest.fixture(scope="module")
def sleep():
    return load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def fits(sleep):
    forms = REF["anova_sleepstudy"]["sklmixed_formulas"]
    return [MixedLMRegressor(formula=f).fit(sleep) for f in forms]


def _check(table, ref, deviance=True, atol=1e-5):
    np.testing.assert_array_equal(table["dof"], ref["npar"])
    if deviance:
        np.testing.assert_allclose(table["deviance"], ref["deviance"], rtol=0, atol=1e-6)
    assert np.isnan(table["chisq"].iloc[0]) and np.isnan(table["p"].iloc[0])
    assert np.isnan(table["df"].iloc[0])
    np.testing.assert_allclose(table["chisq"].iloc[1:], ref["chisq"][1:], rtol=0, atol=atol)
    np.testing.assert_array_equal(table["df"].iloc[1:], ref["df"][1:])
    # p moves with chisq: d log p / d chisq is about -1/2 for these df
    np.testing.assert_allclose(table["p"].iloc[1:], ref["p"][1:], rtol=max(1e-5, atol))


def test_sleepstudy_random_slope_as_lme4_prints(fits):
    table = lrtest(fits[1], fits[2])
    assert table.columns.tolist() == ["formula", "dof", "deviance", "chisq", "df", "p"]
    # lme4: 1794.0786 and 1751.9393, Chisq 42.139 on 2 Df, Pr(>Chisq) 7.0724e-10
    assert table["deviance"].round(4).tolist() == [1794.0786, 1751.9393]
    assert round(table["chisq"].iloc[1], 3) == 42.139
    assert table["df"].iloc[1] == 2
    assert f"{table['p'].iloc[1]:.4g}" == "7.072e-10"
    assert table["formula"].tolist() == [fits[1].result_.formula, fits[2].result_.formula]


def test_three_models_in_any_order_are_sorted_by_dof(fits):
    table = lrtest(fits[2], fits[0], fits[1])
    _check(table, REF["anova_sleepstudy"])
    assert table.index.tolist() == [2, 3, 1]  # positions in the call
    assert table.index.name == "model"


def test_reml_fits_with_the_same_fixed_effects(sleep):
    ref = REF["anova_sleepstudy_reml"]
    models = [MixedLMRegressor(formula=f, reml=True).fit(sleep) for f in ref["sklmixed_formulas"]]
    _check(lrtest(*models), ref)


def test_binomial_glmm_as_lme4():
    ref = REF["anova_cbpp"]
    df = pd.read_csv(DATA / "cbpp.csv")
    models = [
        MixedGLMRegressor(formula=f, family="binomial").fit(df, sample_weight=df["size"])
        for f in ref["sklmixed_formulas"]
    ]
    table = lrtest(*models)
    # lme4's deviance column is -2 log L; ours the GLMM deviance (objective_), which
    # differs from it by a constant of the data: the differences agree. GLMM optima
    # are held to 1e-3 against lme4 (tests/estimators/test_lme4_reference.py: our
    # Laplace deviance may be up to 1e-3 below glmer's), so chisq is too.
    _check(table, ref, deviance=False, atol=1e-3)
    np.testing.assert_allclose(
        np.diff(table["deviance"]), np.diff(ref["deviance"]), rtol=0, atol=1e-3
    )


def test_the_user_data_is_not_modified(sleep, fits):
    before = sleep.copy()
    lrtest(fits[0], fits[1])
    pd.testing.assert_frame_equal(sleep, before)


SLOPE = "reaction ~ 1 + days + (1 + days|subj)"
INTERCEPT = "reaction ~ 1 + days + (1|subj)"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: [MixedLMRegressor(formula=SLOPE).fit(d)], "at least two"),
        (lambda d: [MixedLMRegressor(formula=SLOPE).fit(d), "model"], "argument 2"),
        (
            lambda d: [MixedLMRegressor(formula=SLOPE).fit(d), MixedLMRegressor(formula=SLOPE)],
            "not a fitted",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula=INTERCEPT).fit(d.iloc[:170]),
                MixedLMRegressor(formula=SLOPE).fit(d),
            ],
            "fitted to 180 observations and model 1 .* to 170",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula=INTERCEPT).fit(d),
                MixedLMRegressor(formula=SLOPE).fit(d.assign(reaction=d["reaction"] * 2)),
            ],
            "different responses",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula=INTERCEPT).fit(d),
                MixedLMRegressor(formula=SLOPE).fit(d, sample_weight=np.r_[2.0, np.ones(179)]),
            ],
            "different sample_weight",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula=SLOPE).fit(d),
                MixedLMRegressor(formula="reaction ~ 1 + I(days**2) + (1 + days|subj)").fit(d),
            ],
            "both have 6 parameters",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula="reaction ~ 1 + I(days**2) + (1|subj)").fit(d),
                MixedLMRegressor(formula=SLOPE).fit(d),
            ],
            "fixed effects of model 1 .* are not nested",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula="reaction ~ 1 + days + (1|grp)").fit(
                    d.assign(grp=d["days"] % 3)
                ),
                MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
                    d.assign(grp=d["days"] % 3)
                ),
            ],
            "grouping factor 'grp' of model 1 .* has no random effects",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula="reaction ~ 1 + days + (0 + days|subj)").fit(d),
                MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj) + (1|grp)").fit(
                    d.assign(grp=d["days"] % 3)
                ),
            ],
            r"'subj': the random effects \[days\] of model 1 .* not within those \[\(Intercept\)\]",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula="reaction ~ 1 + (1|subj)", reml=True).fit(d),
                MixedLMRegressor(formula=SLOPE, reml=True).fit(d),
            ],
            "REML fits with different fixed effects.*reml=False",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula=INTERCEPT, reml=True).fit(d),
                MixedLMRegressor(formula=SLOPE).fit(d),
            ],
            "mix REML and maximum likelihood",
        ),
        (
            lambda d: [
                MixedLMRegressor(formula="fast ~ 1 + days + (1|subj)").fit(
                    d.assign(fast=(d["reaction"] < 280).astype(float))
                ),
                MixedGLMRegressor(formula="fast ~ 1 + days + (1|subj)", family="bernoulli").fit(
                    d.assign(fast=(d["reaction"] < 280).astype(float))
                ),
            ],
            "mix a linear and a generalized",
        ),
    ],
    ids=[
        "one-model",
        "not-a-model",
        "unfitted",
        "different-rows",
        "different-response",
        "different-weights",
        "same-dof",
        "fixed-not-nested",
        "group-missing",
        "re-columns-not-nested",
        "reml-different-fixed",
        "reml-and-ml",
        "lmm-and-glmm",
    ],
)
@pytest.mark.filterwarnings("ignore::sklmixed.exceptions.SingularFitWarning")
def test_refusals_name_the_problem(sleep, make, message):
    models = make(sleep)
    with pytest.raises(InferenceError, match=message):
        lrtest(*models)


def test_glmms_of_different_families_are_refused(sleep):
    d = sleep.assign(fast=(sleep["reaction"] < 280).astype(float))
    m0 = MixedGLMRegressor(formula="fast ~ 1 + (1|subj)", family="poisson").fit(d)
    m1 = MixedGLMRegressor(formula="fast ~ 1 + days + (1|subj)", family="bernoulli").fit(d)
    with pytest.raises(InferenceError, match="differ in family or link"):
        lrtest(m0, m1)


def test_a_model_without_random_effects_is_nested_in_one_with(sleep, fits):
    lm = MixedLMRegressor(formula="reaction ~ 1 + days").fit(sleep)
    table = lrtest(fits[1], lm)
    assert table["dof"].tolist() == [3, 4]
    assert table["chisq"].iloc[1] == pytest.approx(lm.objective_ - fits[1].objective_)


def test_an_offset_against_its_free_coefficient(sleep):
    """offset(10 * days) fixes the slope at 10: nested in the model that estimates
    it, and fitted to the same response (an LMM's problem holds y - offset)."""
    fixed = MixedLMRegressor(formula="reaction ~ 1 + offset(10 * days) + (1|subj)").fit(sleep)
    free = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(sleep)
    table = lrtest(fixed, free)
    assert table["df"].iloc[1] == 1
    assert table["chisq"].iloc[1] == pytest.approx(fixed.objective_ - free.objective_)
    # the same through the offset parameter, and for a GLMM
    param = MixedLMRegressor(formula="reaction ~ 1 + (1|subj)").fit(
        sleep, offset=10.0 * sleep["days"]
    )
    assert lrtest(param, free)["chisq"].iloc[1] == pytest.approx(table["chisq"].iloc[1])
    d = sleep.assign(count=np.round(sleep["reaction"] / 10), t=1.0 + sleep["days"])
    g0 = MixedGLMRegressor(formula="count ~ 1 + offset(log(t)) + (1|subj)").fit(d)
    g1 = MixedGLMRegressor(formula="count ~ 1 + log(t) + (1|subj)").fit(d)
    assert lrtest(g0, g1)["chisq"].iloc[1] == pytest.approx(g0.objective_ - g1.objective_)
    with pytest.raises(InferenceError, match="different responses"):
        lrtest(fixed, free.fit(sleep.assign(reaction=sleep["reaction"] + 1)))


def test_models_fitted_out_of_core_are_compared_by_their_response_moments():
    # a fit from a pyarrow Dataset keeps no rows: the same-data check compares
    # the weighted moments of the response, nesting the coefficient names
    import pyarrow as pa
    import pyarrow.dataset as ds

    from sklmixed import DatasetSource

    df = load_dataset("sleepstudy")
    data = ds.dataset(pa.Table.from_pandas(df, preserve_index=False))
    big = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        DatasetSource(data, batch_size=50)
    )
    small = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)")
    expected = lrtest(small.fit(df), MixedLMRegressor(formula=big.formula).fit(df))
    for first in (small.fit(data), small.fit(df)):  # out of core, or in memory
        got = lrtest(first, big)
        np.testing.assert_allclose(got["chisq"].iloc[1], expected["chisq"].iloc[1], rtol=1e-7)
        np.testing.assert_allclose(got["p"].iloc[1], expected["p"].iloc[1], rtol=1e-6)
    shifted = df.assign(reaction=df["reaction"] + np.r_[1.0, np.zeros(len(df) - 1)])
    with pytest.raises(InferenceError, match="different responses"):
        lrtest(small.fit(shifted), big)
    other = MixedLMRegressor(formula="reaction ~ 1 + I(days^2) + (1|subj)").fit(data)
    with pytest.raises(InferenceError, match="not nested"):
        lrtest(other, big)
