"""Models written as lme4 and MixedModels.jl users write them, against lme4.

The lme4 figures come from ``tests/reference/lme4/formula_cases.R`` (lme4 1.1.31,
ML fits of lme4's sleepstudy, which is ours). Tolerances as in
test_lme4_reference.py: the objective ours no higher than lme4's plus 1e-6 and
within 1e-3 below it (lme4 stops earlier on the flat optimum of singular fits);
fixed effects to 1e-4 relative where the fit is regular.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import SingularFitWarning


def _sleep():
    df = load_dataset("sleepstudy")
    df["half"] = np.where(df["days"] < 5, "a", "b")
    df["third"] = np.array(["p", "q", "r"])[df["days"].to_numpy() % 3]
    return df


def _fit(formula, df=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return MixedLMRegressor(formula=formula, **kwargs).fit(_sleep() if df is None else df)


def _objective_matches(ours, lme4):
    assert lme4 - 1e-3 <= ours <= lme4 + 1e-6


def test_caret_is_a_power():
    m = _fit("reaction ~ 1 + I(days^2) + (1|subj)")
    _objective_matches(m.objective_, 1799.1630383745)
    np.testing.assert_allclose(m.coef_, [267.08533193, 1.10254596], rtol=1e-6)
    assert m.objective_ == _fit("reaction ~ 1 + I(days**2) + (1|subj)").objective_


def test_arithmetic_on_small_integer_columns():
    df = _sleep()
    assert df["days"].dtype.itemsize < 8  # the dataset's own narrow integers
    m = _fit("reaction ~ 1 + I(days*20) + (1|subj)", df)
    _objective_matches(m.objective_, 1794.0786430052)
    np.testing.assert_allclose(m.coef_, [251.40510485, 0.52336430], rtol=1e-6)


def test_categorical_slopes_drop_the_reference_level():
    m = _fit("reaction ~ 1 + days*half + (1 + days*half|subj)")
    assert m.theta_.shape == (10,)  # 4 columns, as lme4: not 5 (15 theta)
    _objective_matches(m.objective_, 1737.5284062840)
    assert list(m.ranef_["subj"].columns) == ["(Intercept)", "days", "half: b", "days & half: b"]
    assert list(m.ranef_["subj"].columns) == m.coef_names_
    # the same model from hand-made numeric columns
    df = _sleep()
    df["hb"] = (df["half"] == "b").astype(float)
    df["dhb"] = df["days"] * df["hb"]
    by_hand = _fit("reaction ~ 1 + days + hb + dhb + (1 + days + hb + dhb|subj)", df)
    assert abs(m.objective_ - by_hand.objective_) < 1e-6


def test_effects_coding_is_statsmodels_in_both_parts():
    effects = _fit("reaction ~ 1 + days + third + (1 + third|subj)", contrasts={"third": "effects"})
    dummy = _fit("reaction ~ 1 + days + third + (1 + third|subj)", contrasts={"third": "dummy"})
    _objective_matches(effects.objective_, 1792.3587424694)
    assert abs(effects.objective_ - dummy.objective_) < 1e-6
    names = ["(Intercept)", "third: q", "third: r"]
    assert effects.coef_names_ == ["(Intercept)", "days", "third: q", "third: r"]
    assert list(effects.ranef_["subj"].columns) == names
    # base level p codes -1: each coefficient is its level's deviation from the
    # mean of the three level means (lme4's contr.sum gives p's and q's: 2.40048,
    # -2.42454, so r's is their negated sum)
    b0, _, bq, br = dummy.coef_
    np.testing.assert_allclose(
        effects.coef_[[0, 2, 3]],
        [b0 + (bq + br) / 3, bq - (bq + br) / 3, br - (bq + br) / 3],
        rtol=1e-5,
        atol=1e-4,
    )
    np.testing.assert_allclose(effects.coef_[2:], [-2.42454033, 0.02406039], atol=0.02)
    # a subject's deviation for level q is read the same way in ranef_ as in coef_
    u = effects.ranef_["subj"]
    v = dummy.ranef_["subj"]
    np.testing.assert_allclose(
        u["third: q"], v["third: q"] - (v["third: q"] + v["third: r"]) / 3, atol=0.05
    )


def test_transformed_response():
    df = _sleep()
    m = _fit("log(reaction) ~ 1 + days + (1 + days|subj)", df)
    _objective_matches(m.objective_, -312.8218018413)
    np.testing.assert_allclose(m.coef_, [5.53006481, 0.03366804], rtol=1e-5)
    assert str(m.summary()).splitlines()[1].strip().startswith("log(reaction) ~ 1 + days")
    X = df.drop(columns="reaction")
    np.testing.assert_array_equal(m.predict(X), m.predict(df))
    assert m.score(df) == m.score(X, np.log(df["reaction"]))


def test_backticked_names():
    df = _sleep().rename(columns={"days": "days.n"})
    m = _fit("reaction ~ 1 + `days.n` + (1 + `days.n`|subj)", df)
    _objective_matches(m.objective_, 1751.9393444890)
    assert m.coef_names_ == ["(Intercept)", "days.n"]


# ----------------------------------------------------------------- X / y


FORMULA = "reaction ~ 1 + days + (1 + days|subj)"


def test_y_given_is_the_response_and_x_need_not_hold_it():
    df = _sleep()
    X, y = df.drop(columns="reaction"), df["reaction"]
    m = MixedLMRegressor(formula=FORMULA).fit(X, y)
    ref = MixedLMRegressor(formula=FORMULA).fit(df)
    assert m.objective_ == ref.objective_
    np.testing.assert_array_equal(m.predict(X), ref.predict(df))
    assert m.score(X, y) == ref.score(df)
    # y wins over the left-hand side when both are there
    shifted = MixedLMRegressor(formula=FORMULA).fit(df, df["reaction"] + 100)
    np.testing.assert_allclose(shifted.coef_[0], ref.coef_[0] + 100)


def test_score_without_y_takes_the_response_from_the_formula():
    df = _sleep()
    m = MixedLMRegressor(formula=FORMULA).fit(df)
    assert m.score(df) == m.score(df, df["reaction"])
    verbagg = load_dataset("verbagg")
    clf = MixedGLMClassifier(formula="r2 ~ 1 + anger + gender + (1|subj)", fast=True).fit(verbagg)
    assert clf.score(verbagg) == clf.score(verbagg, verbagg["r2"])
    verbagg["y"] = (verbagg["r2"] == "Y").astype(int)
    reg = MixedGLMRegressor(formula="y ~ 1 + anger + (1|subj)", family="bernoulli", fast=True)
    reg.fit(verbagg)
    assert reg.score(verbagg) == reg.score(verbagg, verbagg["y"])
    with pytest.raises(ValueError, match="needs y"):
        MixedLMRegressor(groups="subj").fit(df[["days", "subj"]], df["reaction"]).score(df)


def test_grid_search_with_the_response_inside_the_frame():
    df = _sleep()
    formulas = [
        "reaction ~ 1 + (1|subj)",
        "reaction ~ 1 + days + (1|subj)",
        "reaction ~ 1 + days + (1 + days|subj)",
    ]
    grid = GridSearchCV(MixedLMRegressor(), {"formula": formulas}, cv=GroupKFold(n_splits=3))
    grid.fit(df, groups=df["subj"])  # no y: every fold scores its own response
    scores = grid.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    for formula, score in zip(formulas, scores):
        explicit = cross_val_score(
            MixedLMRegressor(formula=formula),
            df,
            df["reaction"],
            cv=GroupKFold(n_splits=3),
            groups=df["subj"],
        )
        assert score == pytest.approx(explicit.mean(), rel=1e-9)
    # held-out subjects: the days slope is what predicts them
    assert grid.best_params_["formula"] != formulas[0]
    assert scores[0] < 0.05 < scores[1]
