"""Formula text read token by token: lme4 syntax rewritten for formulaic."""

from __future__ import annotations

import pytest

from sklmixed.formula._text import (
    calls,
    categorical_arguments,
    columns,
    formulaic_message,
    to_formulaic,
    with_codings,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        # ^ inside Python code (function arguments, braces) is a power, as in R
        ("I(days^2)", "I(days**2)"),
        ("log(x^2 + 1)", "log(x**2 + 1)"),
        ("I((x + 1)^2)", "I((x + 1)**2)"),
        ("{x^3}", "{x**3}"),
        # ... and between terms it is formulaic's (and R's) interaction power
        ("(a + b)^2", "(a + b)^2"),
        # & is MixedModels.jl's interaction; inside Python code it stays "and"
        ("a & b", "a : b"),
        ("I(a & b)", "I(a & b)"),
        # R names with dots are columns, numpy and contrasts namespaces are not
        ("days.n + np.log(x) + C(g, contr.sum)", "`days.n` + np.log(x) + C(g, contr.sum)"),
        ("`my col` + x", "`my col` + x"),
        ("I(x ^ 2) + y", "I(x ** 2) + y"),
    ],
)
def test_to_formulaic(text, expected):
    assert to_formulaic(text)[0] == expected


def test_origin_points_back_into_the_written_text():
    text = "a & I(b^2) + c"
    out, origin = to_formulaic(text)
    assert len(origin) == len(out)
    assert text[origin[out.index("c")]] == "c"
    assert text[origin[out.index("**")]] == "^"


def test_columns_are_names_that_are_read():
    assert columns("1 + log(x) + C(g, contr.sum) + I(`a.b` ** 2) + poly(z, degree=2)") == (
        "x",
        "g",
        "a.b",
        "z",
    )
    assert columns("np.log(x) + I(x if True else y)") == ("x", "y")
    assert columns("days.n") == ("days.n",)


def test_calls_and_categorical_arguments():
    assert calls("1 + foo(x) + np.log(y)") == [("foo", 4), ("np.log", 13)]
    assert categorical_arguments("C(g) + C(`h h`, contr.sum) + I(C(k))") == {"g", "h h"}


def test_with_codings():
    codings = {"g": "contr.sum", "h": "contr.sum"}
    assert with_codings("1 + g + C(h) + g:x", codings) == (
        "1 + C(g, contr.sum) + C(h, contr.sum) + C(g, contr.sum):x"
    )
    # explicit arguments and Python code are left as written
    assert with_codings("C(g, contr.helmert) + I(g)", codings) == "C(g, contr.helmert) + I(g)"


def test_formulaic_message_without_colour_codes():
    class Fake(Exception):
        pass

    exc = Fake("Operator `+*` is incorrectly used.\n\n1 + x ⧛\x1b[1;31m+*\x1b[0m⧚ (")
    message, mark = formulaic_message(exc)
    assert "\x1b" not in message and message == "Operator `+*` is incorrectly used."
    assert mark == 6
