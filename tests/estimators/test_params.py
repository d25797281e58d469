"""Hyperparameter validation: one declaration per estimator, sklmixed's errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.exceptions import ParameterError

ESTIMATORS = [MixedLMRegressor, MixedGLMClassifier, MixedGLMRegressor]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_hyperparameter_has_a_constraint(cls):
    assert set(cls._parameter_constraints) == set(cls().get_params(deep=False))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"formula": 3}, "formula must be a string or None; got int"),
        ({"formula": "y"}, "formula must contain '~'; got 'y'"),
        ({"groups": 1.5}, "groups must be a column name or a list"),
        ({"groups": ["g", 1.5]}, "groups must be a column name or a list"),
        ({"contrasts": ["days"]}, "contrasts must be a dict"),
        ({"contrasts": {"days": "poly"}}, "contrasts\\['days'\\] = 'poly'"),
        ({"new_levels": "ignore"}, "new_levels must be one of"),
        ({"optimizer": "LN_MAGIC"}, "unknown optimizer 'LN_MAGIC'"),
        ({"maxfeval": 1.5}, "maxfeval must be an integer; got 1.5"),
        ({"maxfeval": True}, "maxfeval must be an integer; got True"),
        ({"warm_start": 1}, "warm_start must be True or False; got 1"),
        ({"reml": "yes"}, "reml must be True or False"),
    ],
)
def test_lmm_parameter_errors_name_the_parameter(params, message):
    with pytest.raises(ParameterError, match=message):
        MixedLMRegressor(**params)._validate_params()


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (MixedGLMRegressor, {"family": "tweedie"}, "unknown family 'tweedie'"),
        (MixedGLMClassifier, {"family": "poisson"}, "choose one of \\['bernoulli'\\]"),
        (MixedGLMRegressor, {"link": "nope"}, "unknown link 'nope'"),
        (MixedGLMRegressor, {"family": "poisson", "link": "logit"}, "not available"),
        (MixedGLMRegressor, {"nagq": 0}, "nagq must be a positive integer"),
        (MixedGLMRegressor, {"nagq": True}, "nagq must be a positive integer"),
        (MixedGLMRegressor, {"fast": "no"}, "fast must be True or False"),
    ],
)
def test_glmm_parameter_errors_name_the_parameter(cls, params, message):
    with pytest.raises(ParameterError, match=message):
        cls(**params)._validate_params()


@pytest.mark.parametrize("groups", [None, "g", 0, ["g", "h"], ("g",), np.array(["g"])])
def test_valid_groups(groups):
    MixedLMRegressor(groups=groups)._validate_params()


def test_fitted_attributes_are_read_from_the_result():
    m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    assert m.coef_ is m.result_.coef and m.theta_ is m.result_.theta
    assert m.aic_ == m.result_.aic and m.optsum_["feval"] == m.result_.optsum.feval
    assert not hasattr(MixedLMRegressor(), "coef_")


def test_random_effects_follow_terms_by_name_in_any_order_and_after_pickling():
    # the core orders the terms by size (plate, 24 levels, before sample, 6):
    # the design keeps the formula's order
    df = load_dataset("penicillin")
    a = MixedLMRegressor(formula="diameter ~ 1 + (1|sample) + (1|plate)").fit(df)
    b = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(df)
    np.testing.assert_allclose(a.predict(df), b.predict(df), rtol=1e-10)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict(df), a.predict(df))
    np.testing.assert_array_equal(c.fitted_values(), a.fitted_values())


VALUES = [None, True, False, np.True_, np.False_, 0, 1, -1, 2, np.int64(3), np.int64(-1)]
VALUES += [0.0, 1.5, np.nan, "", "population", "error", "LN_BOBYQA", "y ~ 1 + (1|g)", "g"]
VALUES += [["g"], ("g", 1), {"days": "dummy"}, {"days": "poly"}, "poisson", "bernoulli", "logit"]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_the_quick_tests_accept_what_scikit_learn_accepts(cls):
    # validate_hyperparameters' tests against scikit-learn's own, value by value
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    from sklmixed.estimators._params import validate_hyperparameters

    for name, constraints in cls._parameter_constraints.items():
        for value in VALUES:
            try:
                validate_parameter_constraints({name: constraints}, {name: value}, cls.__name__)
                valid = True
            except InvalidParameterError:
                valid = False
            est = cls().set_params(**{name: value})
            try:
                validate_hyperparameters(est)
                accepted = True
            except ParameterError:
                accepted = False
            assert accepted == valid, (name, value)
