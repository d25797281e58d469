"""Warnings of the inference methods point at the line that called them."""

from __future__ import annotations

import sys
import warnings

import pytest

from sklmixed import MixedLMRegressor, load_dataset, lrtest
from sklmixed.exceptions import ConvergenceWarning

SLEEP = "reaction ~ 1 + days + (1 + days|subj)"


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


def _check(caught, category, line: int) -> None:
    found = [w for w in caught if issubclass(w.category, category)]
    assert found, f"no {category.__name__}: {[str(w.message) for w in caught]}"
    wrong = [
        f"{w.filename}:{w.lineno}" for w in found if (w.filename, w.lineno) != (__file__, line)
    ]
    assert not wrong, f"{category.__name__} attributed to {wrong}, not to line {line} here"


@pytest.fixture(scope="module")
def fits():
    df = load_dataset("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = MixedLMRegressor(formula=SLEEP).fit(df)
        # stopped after 5 evaluations: far from its optimum
        stopped = MixedLMRegressor(formula=SLEEP, maxfeval=5).fit(df)
        small = MixedLMRegressor(formula="reaction ~ 1 + days + zerocorr(1 + days|subj)").fit(df)
    return full, stopped, small


def test_kenward_roger_of_an_ml_fit(fits):
    full = fits[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        full.coeftable(ddf="kenward-roger")
    _check(caught, UserWarning, line)


def test_profile_of_an_unconverged_fit(fits):
    stopped = fits[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        stopped.confint(method="profile")
    _check(caught, ConvergenceWarning, line)


def test_bootstrap_whose_refits_stop_early(fits):
    stopped = fits[1]  # the refits inherit maxfeval=5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        stopped.bootstrap(n_boot=3, random_state=0)
    _check(caught, ConvergenceWarning, line)


def test_lrtest_of_a_larger_model_with_a_higher_deviance(fits):
    _, stopped, small = fits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        lrtest(small, stopped)
    _check(caught, ConvergenceWarning, line)
