"""Bad input: a clear error naming the culprit, raised before any numerics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError, FormulaError, MissingColumnError

SLEEP = "reaction ~ 1 + days + (1 + days|subj)"


def sleep():
    return load_dataset("sleepstudy")


@pytest.mark.parametrize(
    "estimator, data, error, message",
    [
        (
            MixedLMRegressor(formula="reaction ~ 1 + dayz + (1|subj)"),
            sleep,
            MissingColumnError,
            "'dayz' not found",
        ),
        (MixedLMRegressor(formula="reaction ~ 1 + (1|"), sleep, FormulaError, "never closed"),
        (MixedLMRegressor(formula="reaction ~ 1 + (1|)"), sleep, FormulaError, "empty grouping"),
        (MixedLMRegressor(formula="reaction ~ 1 + ((1|subj)"), sleep, FormulaError, "unbalanced"),
        (
            MixedLMRegressor(formula=SLEEP),
            lambda: sleep().assign(days=np.r_[np.nan, range(179)]),
            DataError,
            "'days' has 1 missing",
        ),
        (
            MixedLMRegressor(formula=SLEEP),
            lambda: sleep().assign(reaction=np.r_[np.inf, range(179)]),
            DataError,
            "'reaction' has 1 missing .* or infinite",
        ),
        (
            MixedLMRegressor(formula="reaction ~ 1 + (1|one)"),
            lambda: sleep().assign(one="a"),
            DataError,
            "'one' has a single level",
        ),
        (
            MixedLMRegressor(formula="reaction ~ 1 + (1|row)"),
            lambda: sleep().assign(row=range(180)),
            DataError,
            "as many levels",
        ),
        (
            MixedLMRegressor(formula=SLEEP),
            lambda: sleep().assign(reaction=1.0),
            DataError,
            "response is constant",
        ),
        (MixedLMRegressor(formula=SLEEP), lambda: sleep().head(0), DataError, "empty data"),
        (
            MixedLMRegressor(formula="subj ~ 1 + days + (1|subj)"),
            sleep,
            DataError,
            "must be numeric",
        ),
        (
            MixedGLMClassifier(formula="btype ~ 1 + (1|subj)"),
            lambda: load_dataset("verbagg"),
            ValueError,
            "Only binary classification.*found 3 classes",
        ),
        (
            MixedGLMRegressor(formula="y ~ 1 + (1|subj)", family="bernoulli"),
            lambda: sleep().assign(y=np.arange(180) % 3),
            DataError,
            "must be 0/1.*found \\[2.0\\]",
        ),
        (
            MixedGLMRegressor(formula="y ~ 1 + (1|subj)"),
            lambda: sleep().assign(y=np.arange(180) - 1),
            DataError,
            "poisson response must be non-negative.*-1",
        ),
        (
            MixedGLMRegressor(formula="y ~ 1 + (1|subj)", family="binomial"),
            lambda: sleep().assign(y=np.linspace(0, 2, 180)),
            DataError,
            "proportion.*\\[0, 1\\]",
        ),
        (MixedLMRegressor(formula=SLEEP, reml="yes"), sleep, TypeError, "reml must be"),
        (
            MixedGLMClassifier(formula="r2 ~ 1 + (1|subj)", family="gaussian"),
            lambda: load_dataset("verbagg"),
            ValueError,
            "unknown family 'gaussian'",
        ),
        (
            MixedGLMClassifier(formula="r2 ~ 1 + (1|subj)", link="log"),
            lambda: load_dataset("verbagg"),
            ValueError,
            "link 'log' is not available",
        ),
        (
            MixedGLMClassifier(formula="r2 ~ 1 + (1|subj)", link="nope"),
            lambda: load_dataset("verbagg"),
            ValueError,
            "unknown link 'nope'",
        ),
        (
            MixedLMRegressor(formula=SLEEP, optimizer="LN_MAGIC"),
            sleep,
            ValueError,
            "unknown optimizer 'LN_MAGIC'",
        ),
        (
            MixedGLMClassifier(formula="r2 ~ 1 + (1|subj) + (1|item)", nagq=5),
            lambda: load_dataset("verbagg"),
            ValueError,
            "single scalar random-effects term",
        ),
        (
            MixedGLMClassifier(formula="use ~ 1 + (1 + urban|dist)", nagq=5),
            lambda: load_dataset("contra"),
            ValueError,
            "single scalar random-effects term",
        ),
        (
            MixedGLMClassifier(formula="use ~ 1 + (1|dist)", nagq=0),
            lambda: load_dataset("contra"),
            ValueError,
            "nagq must be a positive integer",
        ),
        (
            MixedLMRegressor(formula=SLEEP, new_levels="ignore"),
            sleep,
            ValueError,
            "new_levels must be one of",
        ),
        (
            MixedLMRegressor(formula=SLEEP, contrasts={"days": "poly"}),
            sleep,
            ValueError,
            "contrasts\\['days'\\] = 'poly'",
        ),
    ],
)
def test_clear_errors(estimator, data, error, message):
    with pytest.raises(error, match=message) as info:
        estimator.fit(data())
    assert type(info.value).__module__ == "sklmixed.exceptions"


@pytest.mark.parametrize(
    "weights, message",
    [
        (np.r_[-1.0, np.ones(179)], "negative"),
        (np.r_[np.nan, np.ones(179)], "NaN"),
        (np.ones(10), "10 values for 180"),
        (np.zeros(180), "at least one non-zero"),
    ],
)
def test_bad_sample_weight(weights, message):
    with pytest.raises(DataError, match=message):
        MixedLMRegressor(formula=SLEEP).fit(sleep(), sample_weight=weights)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        MixedLMRegressor(formula=SLEEP).predict(sleep())
    with pytest.raises(NotFittedError):
        MixedGLMClassifier().predict_proba(np.ones((3, 2)))


def test_predict_with_a_missing_column_or_unseen_fixed_level():
    m = MixedLMRegressor(formula=SLEEP).fit(sleep())
    with pytest.raises(MissingColumnError, match="'days' not found"):
        m.predict(sleep().drop(columns="days"))
    clf = MixedGLMClassifier(formula="r2 ~ 1 + btype + (1|item)", fast=True).fit(
        load_dataset("verbagg")
    )
    new = load_dataset("verbagg").head(3).assign(btype="whisper")
    with pytest.raises(DataError, match="'btype' has levels not seen in fit: \\['whisper'\\]"):
        clf.predict(new)


def test_errors_are_never_internal_exceptions():
    # a handful of malformed inputs: every one must be a ValueError/TypeError/KeyError
    bad = [
        "reaction ~",
        "~",
        "reaction ~ 1 + (1 | subj | days)",
        "reaction ~ 1 + (days)(1|subj)",
        "reaction ~ 1 + I(days ** ) + (1|subj)",
        "reaction ~ 1 + (1 + nope|subj)",
    ]
    for formula in bad:
        with pytest.raises((ValueError, TypeError, KeyError)) as info:
            MixedLMRegressor(formula=formula).fit(sleep())
        assert type(info.value).__module__ == "sklmixed.exceptions"


def test_fit_never_modifies_the_callers_data():
    df = sleep()
    df["days"] = df["days"].astype("int64")
    before = df.copy()
    MixedLMRegressor(formula=SLEEP, contrasts={"days": "dummy"}).fit(df)
    pd.testing.assert_frame_equal(df, before)


def test_a_failed_glmm_fit_is_a_fit_error(monkeypatch):
    from sklmixed.estimators import _glmm
    from sklmixed.exceptions import FitError

    def fail(*args, **kwargs):
        raise FloatingPointError("PIRLS did not converge")

    monkeypatch.setattr(_glmm, "fit_glmm", fail)
    with pytest.raises(FitError, match="PIRLS did not converge. Try fast=True"):
        MixedGLMClassifier(formula="use ~ 1 + age + (1|dist)").fit(load_dataset("contra"))


def test_parameter_errors_are_value_and_type_errors():
    from sklmixed.exceptions import ParameterError

    for est in [
        MixedLMRegressor(formula=SLEEP, reml="yes"),
        MixedLMRegressor(formula=3),
        MixedLMRegressor(groups=1.5),
        MixedGLMRegressor(formula=SLEEP, family="tweedie"),
    ]:
        with pytest.raises(ParameterError):
            est.fit(sleep())


def test_a_formula_column_repeated_in_the_data_is_named():
    # pandas returns a frame for a repeated label: a clear error, not one from inside
    df = load_dataset("sleepstudy")
    doubled = pd.concat([df, df[["days"]]], axis=1)
    with pytest.raises(DataError, match="'days' of the formula appears more than once"):
        MixedLMRegressor(formula="reaction ~ days + (1|subj)").fit(doubled)
    # a repeated column that the formula does not read is no concern
    x = df[["days"]].rename(columns={"days": "x"})
    extra = pd.concat([df, x, x], axis=1)
    fitted = MixedLMRegressor(formula="reaction ~ days + (1|subj)").fit(extra)
    reference = MixedLMRegressor(formula="reaction ~ days + (1|subj)").fit(df)
    assert fitted.objective_ == reference.objective_
