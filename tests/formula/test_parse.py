"""Parsing formulas into fixed text and random-effects terms (no data needed)."""

from __future__ import annotations

import pytest

from sklmixed.exceptions import FormulaError
from sklmixed.formula import parse_formula

CASES = [
    # formula, response, fixed, random terms as displayed
    ("y ~ 1 + (1|g)", "y", "1", ["(1 | g)"]),
    ("y ~ x + (1 + x|g)", "y", "x", ["(1 + x | g)"]),
    ("y ~ 1 + (1|a/b)", "y", "1", ["(1 | a)", "(1 | a & b)"]),
    ("y ~ 1 + (1|a/b/c)", "y", "1", ["(1 | a)", "(1 | a & b)", "(1 | a & b & c)"]),
    ("y ~ 1 + (1|a:b)", "y", "1", ["(1 | a & b)"]),
    ("y ~ 1 + (1|a & b)", "y", "1", ["(1 | a & b)"]),
    ("y ~ 1 + zerocorr(1 + x|g)", "y", "1", ["zerocorr(1 + x | g)"]),
    ("y ~ 1 + (1 + x||g)", "y", "1", ["zerocorr(1 + x | g)"]),
    ("y ~ 1 + (1 + fulldummy(d)|g)", "y", "1", ["(1 + d | g)"]),
    ("y ~ 1 + (0 + m|g)", "y", "1", ["(0 + m | g)"]),
    ("y ~ 1 + (m - 1|g)", "y", "1", ["(0 + m | g)"]),
    ("y ~ 1 + a*b + (1|g) + (x|h)", "y", "1 + a*b", ["(1 | g)", "(x | h)"]),
    ("y ~ 1 + I(x - 1) + (1 + I(x**2)|g)", "y", "1 + I(x - 1)", ["(1 + I(x**2) | g)"]),
    ("~ x + (1|g)", None, "x", ["(1 | g)"]),
    ("y ~ (1|g)", "y", "1", ["(1 | g)"]),
]


@pytest.mark.parametrize("formula, response, fixed, random", CASES)
def test_parse(formula, response, fixed, random):
    parsed = parse_formula(formula)
    assert parsed.response == response
    assert parsed.fixed == fixed
    assert [t.display() for t in parsed.random] == random


def test_intercept_only_where_written():
    slope_only = parse_formula("y ~ 1 + (x|g)").random[0]
    assert not slope_only.intercept
    assert parse_formula("y ~ 1 + (1 + x|g)").random[0].intercept


def test_zero_removes_intercept_wherever_written():
    term = parse_formula("y ~ 1 + (1 + x - 1|g)").random[0]
    assert not term.intercept and term.explicit_zero


ERRORS = [
    ("y ~ (1|", "never closed"),
    ("y ~ (1|)", "empty grouping factor"),
    ("y ~ 1 + (1|g))", "')' without '('"),
    ("y ~ x +", "empty term"),
    ("y ~ 1 | g", "must be in parentheses"),
    ("y ~ (a|b|c)", "exactly one '|'"),
    ("y ~ (|g)", "empty random-effects term"),
    ("y", "exactly one '~'"),
    ("y ~ ", "nothing to the right"),
    ("y ~ 1 + (1|g + h)", "grouping factor"),
    ("y ~ 1 + (1 + fulldummy(a + b)|g)", "fulldummy() takes a column name"),
]


@pytest.mark.parametrize("formula, message", ERRORS)
def test_malformed_formulas_say_what_and_where(formula, message):
    with pytest.raises(
        FormulaError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")
    ) as info:
        parse_formula(formula)
    assert "^" in str(info.value) or "'~'" in str(info.value)


def test_non_string_formula():
    with pytest.raises(FormulaError, match="string"):
        parse_formula(3)
