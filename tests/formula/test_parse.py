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


def test_lme4_syntax_is_rewritten_for_formulaic():
    parsed = parse_formula("y ~ 1 + I(x^2) + a & b + (1 + I(x^2)|g)")
    assert parsed.fixed == "1 + I(x**2) + a : b"
    assert parsed.random[0].items[0].text == "I(x**2)"


def test_transformed_and_backticked_responses():
    parsed = parse_formula("log(y) ~ 1 + x")
    assert (parsed.response, parsed.response_expr) == ("log(y)", "log(y)")
    parsed = parse_formula("`y.1` ~ 1 + x")
    assert (parsed.response, parsed.response_expr) == ("y.1", None)


FUNCTION_ERRORS = [
    ("y ~ 1 + foo(x)", "unknown function 'foo'", 8),
    ("y ~ 1 + (1 + bar(x)|g)", "unknown function 'bar'", 13),
    ("baz(y) ~ 1 + x", "unknown function 'baz'", 0),
    ("y ~ 1 + fulldummy(x)", "inside a random-effects term", 8),
]


@pytest.mark.parametrize("formula, message, pos", FUNCTION_ERRORS)
def test_unknown_functions_are_named_with_a_caret(formula, message, pos):
    with pytest.raises(FormulaError, match=message) as info:
        parse_formula(formula)
    lines = str(info.value).splitlines()
    assert lines[1] == f"  {formula}"
    assert lines[2] == " " * (pos + 2) + "^"


def test_formulaic_syntax_errors_are_clean_and_placed():
    formula = "y ~ 1 + x +* (1|g)"
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    text = str(info.value)
    assert "\x1b" not in text and "⧛" not in text
    assert "cannot parse" in text and "Operator" in text
    lines = text.splitlines()
    assert lines[1] == f"  {formula}" and lines[2].index("^") - 2 == formula.index("*")
