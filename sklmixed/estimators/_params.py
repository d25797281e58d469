"""The estimators' hyperparameters: scikit-learn's constraints, sklmixed's errors.

Each estimator declares ``_parameter_constraints`` (scikit-learn's
``sklearn.utils._param_validation`` vocabulary); :func:`validate_hyperparameters`
checks them, the one path for every hyperparameter, and turns scikit-learn's
``InvalidParameterError`` into a :class:`~sklmixed.exceptions.ParameterError`
whose message names the parameter, the value and what is allowed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    _Booleans,
    _NoneConstraint,
    make_constraint,
    validate_parameter_constraints,
)

from sklmixed._core._families import FAMILIES, LINKS
from sklmixed._optim import OPTIMIZERS
from sklmixed.exceptions import ParameterError
from sklmixed.formula import CODINGS

NEW_LEVELS = ("population", "error")


class _Test(Options):
    """Values of a type that pass a test. (An ``Options`` subclass: scikit-learn's
    ``make_constraint`` accepts subclasses of its own constraint classes only.)"""

    def __init__(self, kind: type, test: Callable[[Any], bool], text: str) -> None:
        super().__init__(kind, set())
        self.test, self.text = test, text

    def is_satisfied_by(self, val: Any) -> bool:
        return isinstance(val, self.type) and self.test(val)

    def __str__(self) -> str:
        return self.text


def _is_column_key(val: Any) -> bool:
    # a name, or an integer for a frame with integer column labels
    return isinstance(val, (str, numbers.Integral))


def _is_groups(val: Any) -> bool:
    if _is_column_key(val):
        return True
    try:
        return all(_is_column_key(g) for g in val)
    except TypeError:  # not iterable
        return False


class _Integer(Interval):
    """An Interval of integers that True and False do not satisfy."""

    def is_satisfied_by(self, val: Any) -> bool:
        if isinstance(val, (bool, np.bool_)) or not isinstance(val, self.type):
            return False
        # scikit-learn's bounds test (Interval.__contains__) without its np.isnan,
        # which an integer never is (a third of a fit's parameter checks)
        closed = self.closed
        if self.left is not None and (
            val < self.left if closed in ("left", "both") else val <= self.left
        ):
            return False
        return self.right is None or (
            val <= self.right if closed in ("right", "both") else val < self.right
        )


COMMON_CONSTRAINTS: dict[str, list[Any]] = {
    "formula": [None, _Test(str, lambda f: "~" in f, "a formula string containing '~'")],
    "groups": [None, _Test(object, _is_groups, "a column name or a list of column names")],
    "contrasts": [
        None,
        _Test(
            dict,
            lambda d: all(c in CODINGS for c in d.values()),
            f"a dict of column names to one of {CODINGS}",
        ),
    ],
    "new_levels": [StrOptions(set(NEW_LEVELS))],
    "optimizer": [None, StrOptions(set(OPTIMIZERS))],
    "maxfeval": [_Integer(numbers.Integral, None, None, closed="neither")],  # -1: no limit
    "warm_start": ["boolean"],
}
LMM_CONSTRAINTS: dict[str, list[Any]] = {**COMMON_CONSTRAINTS, "reml": ["boolean"]}
GLMM_CONSTRAINTS: dict[str, list[Any]] = {
    **COMMON_CONSTRAINTS,
    "family": [StrOptions(set(FAMILIES))],
    "link": [None, StrOptions(set(LINKS))],
    "nagq": [_Integer(numbers.Integral, 1, None, closed="left")],
    "fast": ["boolean"],
}


def _formula_message(v: Any, est: Any) -> str:
    if not isinstance(v, str):
        return f"formula must be a string or None; got {type(v).__name__}"
    return f"formula must contain '~'; got {v!r}"


def _contrasts_message(v: Any, est: Any) -> str:
    if not isinstance(v, dict):
        return "contrasts must be a dict such as {'days': 'dummy'}"
    col, coding = next((c, k) for c, k in v.items() if k not in CODINGS)
    return f"contrasts[{col!r}] = {coding!r}; choose one of {CODINGS}"


def _boolean_message(name: str) -> Callable[[Any, Any], str]:
    return lambda v, est: f"{name} must be True or False; got {v!r}"


# What each parameter's error says (``est`` is the estimator, for per-class choices).
MESSAGES: dict[str, Callable[[Any, Any], str]] = {
    "formula": _formula_message,
    "groups": lambda v, est: f"groups must be a column name or a list of column names; got {v!r}",
    "contrasts": _contrasts_message,
    "new_levels": lambda v, est: f"new_levels must be one of {NEW_LEVELS}; got {v!r}",
    "optimizer": lambda v, est: f"unknown optimizer {v!r}; choose one of {sorted(OPTIMIZERS)}",
    "maxfeval": lambda v, est: f"maxfeval must be an integer; got {v!r}",
    "warm_start": _boolean_message("warm_start"),
    "reml": _boolean_message("reml"),
    "fast": _boolean_message("fast"),
    "family": lambda v, est: (
        f"unknown family {v!r} for {type(est).__name__}; choose one "
        f"of {list(est._allowed_families)}"
    ),
    "link": lambda v, est: f"unknown link {v!r}; choose one of {sorted(LINKS)}",
    "nagq": lambda v, est: f"nagq must be a positive integer; got {v!r}",
}


def validate_hyperparameters(est: Any) -> None:
    """Check every hyperparameter of ``est`` against its ``_parameter_constraints``.

    Raises
    ------
    ParameterError
        For the first parameter that satisfies none of its constraints, with the
        message of :data:`MESSAGES` (scikit-learn's own for a parameter without one).
    """
    constraints = est._parameter_constraints
    for name, none_ok, bool_ok, tests in _made(constraints):
        value = getattr(est, name)
        # None and the booleans, most values, by identity (no call)
        if value is None:
            if none_ok:
                continue
        elif value is True or value is False:
            if bool_ok:
                continue
        for test in tests:
            if test(value):
                break
        else:  # some parameter satisfies none of its constraints: find the first
            break
    else:
        return
    params = {name: getattr(est, name) for name in constraints}
    caller = type(est).__name__
    for name, value in params.items():  # the first parameter at fault, in order
        try:
            validate_parameter_constraints({name: constraints[name]}, {name: value}, caller)
        except InvalidParameterError as exc:
            message = MESSAGES.get(name)
            raise ParameterError(str(exc) if message is None else message(value, est)) from None


# per parameter: its name, whether None and whether True and False satisfy it,
# and the tests of its constraints
_Tests = list[tuple[str, bool, bool, tuple[Callable[[Any], bool], ...]]]
_MADE: dict[int, tuple[dict[str, list[Any]], _Tests]] = {}


def _is_boolean(val: Any) -> bool:
    # scikit-learn's "boolean" (_Booleans: bool or np.bool_) without its generator
    return isinstance(val, (bool, np.bool_))


def _made(constraints: dict[str, list[Any]]) -> _Tests:
    """The tests of scikit-learn's constraint objects of a ``_parameter_constraints``
    dict, made once per dict (a fit then checks values only)."""
    entry = _MADE.get(id(constraints))
    if entry is None or entry[0] is not constraints:
        made = []
        for name, given in constraints.items():
            cs = [make_constraint(c) for c in given]
            tests = tuple(
                _is_boolean if isinstance(c, _Booleans) else c.is_satisfied_by for c in cs
            )
            none_ok = any(isinstance(c, _NoneConstraint) for c in cs)
            bool_ok = any(isinstance(c, _Booleans) for c in cs)
            made.append((name, none_ok, bool_ok, tests))
        entry = _MADE[id(constraints)] = (constraints, made)
    return entry[1]
