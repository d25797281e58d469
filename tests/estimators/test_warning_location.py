"""Warnings of fit and predict point at the line that called them.

A warning shows the file and line it is attributed to (``warnings.warn``'s
``stacklevel``). For a user that must be their own call of ``fit`` or
``predict``, not a line inside sklmixed, nor ``sys:1`` (a stacklevel one frame
too deep) or IPython's internals.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import (
    PerfectFitWarning,
    RankDeficientWarning,
    SingularFitWarning,
    UnseenLevelsWarning,
)

SLEEP = "reaction ~ 1 + days + (1 + days|subj)"


def _sleep() -> pd.DataFrame:
    df = load_dataset("sleepstudy")
    return df.assign(days2=2 * df["days"])  # a dependent column for rank deficiency


def _binary() -> pd.DataFrame:
    # no group effect at all: seed 1 gives a zero variance estimate for the
    # classifier and the Poisson regressor alike
    rng = np.random.default_rng(1)
    n = 200
    d = pd.DataFrame({"g": rng.choice(list("abcdefgh"), n), "x": rng.normal(size=n)})
    d["y"] = (rng.random(n) < 1 / (1 + np.exp(-d["x"]))).astype(int)
    d["count"] = rng.poisson(np.exp(0.5 + 0.3 * d["x"]))
    d["x2"] = 2 * d["x"]
    d["sep"] = np.where(d["y"] == 1, 1.0, -1.0) + 0.1 * d["x"]  # separates y
    d["p"] = d["count"] / (d["count"].max() + 1)
    return d


def _unseen(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df.head(5).assign(**{column: ["new " + str(v) for v in df[column].head(5)]})


def _next_line() -> int:
    """The number of the line after the caller's."""
    return sys._getframe(1).f_lineno + 1


def _check(caught, category, line: int) -> None:
    found = [w for w in caught if issubclass(w.category, category)]
    assert found, f"no {category.__name__}: {[str(w.message) for w in caught]}"
    wrong = [
        f"{w.filename}:{w.lineno}" for w in found if (w.filename, w.lineno) != (__file__, line)
    ]
    assert not wrong, f"{category.__name__} attributed to {wrong}, not to line {line} here"


# (id, estimator, data, category): each warns in fit
FIT_CASES = [
    (
        "lmm-singular",
        lambda: MixedLMRegressor(formula="yield ~ 1 + (1|batch)"),
        lambda: load_dataset("dyestuff2"),
        SingularFitWarning,
    ),
    (
        "lmm-rank",
        lambda: MixedLMRegressor(formula="reaction ~ 1 + days + days2 + (1|subj)"),
        _sleep,
        RankDeficientWarning,
    ),
    (
        "lmm-maxfeval",
        lambda: MixedLMRegressor(formula=SLEEP, maxfeval=3),
        _sleep,
        ConvergenceWarning,
    ),
    (
        "lmm-perfect",
        lambda: MixedLMRegressor(formula="z ~ 1 + days"),
        lambda: _sleep().assign(z=lambda d: 1.0 + 2.0 * d["days"]),
        PerfectFitWarning,
    ),
    (
        "classifier-singular",
        lambda: MixedGLMClassifier(formula="y ~ 1 + x + (1|g)"),
        _binary,
        SingularFitWarning,
    ),
    (
        "classifier-rank",
        lambda: MixedGLMClassifier(formula="y ~ 1 + x + x2 + (1|g)"),
        _binary,
        RankDeficientWarning,
    ),
    (
        "classifier-maxfeval",
        lambda: MixedGLMClassifier(formula="y ~ 1 + x + (1|g)", maxfeval=3),
        _binary,
        ConvergenceWarning,
    ),
    (
        "classifier-separation",
        lambda: MixedGLMClassifier(formula="y ~ 1 + sep + (1|g)", fast=True),
        _binary,
        ConvergenceWarning,
    ),
    (
        "regressor-singular",
        lambda: MixedGLMRegressor(formula="count ~ 1 + x + (1|g)"),
        _binary,
        SingularFitWarning,
    ),
    (
        "regressor-rank",
        lambda: MixedGLMRegressor(formula="count ~ 1 + x + x2 + (1|g)"),
        _binary,
        RankDeficientWarning,
    ),
    (
        "regressor-maxfeval",
        lambda: MixedGLMRegressor(formula="count ~ 1 + x + (1|g)", maxfeval=3),
        _binary,
        ConvergenceWarning,
    ),
    (
        "regressor-binomial-without-trials",
        lambda: MixedGLMRegressor(formula="p ~ 1 + x + (1|g)", family="binomial"),
        _binary,
        UserWarning,
    ),
]


@pytest.mark.parametrize(
    "make, data, category", [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES]
)
def test_fit_warnings_point_at_the_call_of_fit(make, data, category):
    estimator, df = make(), data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        estimator.fit(df)
    _check(caught, category, line)


def test_a_column_vector_y_warns_at_the_call_of_fit():
    df = _sleep()
    y = df[["reaction"]].to_numpy()
    model = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        model.fit(df, y)
    _check(caught, DataConversionWarning, line)


def _fitted(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "lmm":
            df = _sleep()
            return MixedLMRegressor(formula=SLEEP).fit(df), _unseen(df, "subj")
        df = _binary()
        if name == "classifier":
            return MixedGLMClassifier(formula="y ~ 1 + x + (1|g)").fit(df), _unseen(df, "g")
        return MixedGLMRegressor(formula="count ~ 1 + x + (1|g)").fit(df), _unseen(df, "g")


# (id, fitted model, method, keyword arguments): each meets only unseen levels
PREDICT_CASES = [
    ("lmm-predict", "lmm", "predict", {}),
    ("lmm-predict-std", "lmm", "predict", {"return_std": True}),
    ("lmm-predict-interval", "lmm", "predict_interval", {"kind": "prediction"}),
    ("lmm-score", "lmm", "score", {}),
    ("classifier-predict", "classifier", "predict", {}),
    ("classifier-proba", "classifier", "predict_proba", {}),
    ("classifier-marginal", "classifier", "predict_proba", {"marginal": True}),
    ("classifier-decision", "classifier", "decision_function", {}),
    ("classifier-score", "classifier", "score", {}),
    ("regressor-predict", "regressor", "predict", {}),
    ("regressor-score", "regressor", "score", {}),
]


@pytest.mark.parametrize(
    "name, method, kwargs", [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_unseen_levels_warn_at_the_call_of_predict(name, method, kwargs):
    model, new = _fitted(name)
    call = getattr(model, method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        call(new, **kwargs)
    _check(caught, UnseenLevelsWarning, line)
