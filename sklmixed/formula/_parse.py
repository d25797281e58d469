"""Parsing ``y ~ fixed + (expr | g)`` into a data-free description.

The fixed part is left as text for formulaic; random-effects terms are recognised
here at the top level of the right-hand side: ``(expr | g)``, ``(expr || g)``,
``zerocorr(expr | g)``, with grouping ``g``, ``a/b`` (nesting), ``a & b`` or
``a:b`` (interaction of grouping factors). The left side of a random term is a
``+``-separated list of items: ``1``, ``0``, ``-1``, column names, ``fulldummy(x)``,
interactions ``a & b`` / ``a:b``, or any formulaic expression (``I(x^2)``).

Every piece that formulaic will read (fixed terms, expressions in random terms,
a transformed response such as ``log(y)``) is rewritten from lme4 syntax
(:func:`sklmixed.formula._text.to_formulaic`) and checked here, without data:
formulaic must parse it and every function it calls must exist, so that a typo
is reported with a caret under it rather than as a missing column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from formulaic import Formula

from sklmixed.exceptions import FormulaError
from sklmixed.formula._context import KNOWN_FUNCTIONS, NAMESPACES
from sklmixed.formula._text import calls, formulaic_message, to_formulaic

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


@dataclass(frozen=True)
class ReItem:
    """One item of a random term's left side.

    kind: "intercept", "column" (a name), "fulldummy" (a name), "interaction"
    (names in ``parts``), or "expr" (formulaic text in ``text``).
    """

    kind: str
    text: str
    parts: tuple[Any, ...] = ()


@dataclass(frozen=True)
class RandomTermSpec:
    """``(items | group)``; ``groups`` lists the grouping factors after nesting is
    expanded, each a tuple of column names (an interaction when longer than one)."""

    items: tuple[Any, ...]
    intercept: bool
    explicit_zero: bool
    group: tuple[Any, ...]  # the grouping factor: tuple[Any, ...] of column names
    zerocorr: bool

    @property
    def group_name(self) -> str:
        return " & ".join(self.group)

    def display(self) -> str:
        parts = ["1"] if self.intercept else (["0"] if self.explicit_zero else [])
        for item in self.items:
            if item.kind == "fulldummy":
                parts.append(item.parts[0])
            elif item.kind == "interaction":
                parts.append(" & ".join(item.parts))
            else:
                parts.append(item.text)
        inner = f"{' + '.join(parts)} | {self.group_name}"
        return f"zerocorr({inner})" if self.zerocorr else f"({inner})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part (formulaic text) and random terms.

    ``response`` is the left-hand side as written (a column name without
    backticks, or an expression such as ``log(y)``); ``response_expr`` is that
    expression as formulaic text, None when the response is a plain column.
    ``offsets`` holds the fixed part's ``offset(expr)`` terms (lme4 syntax: a known
    term with coefficient 1), each as (``expr`` as written, formulaic text that
    evaluates it); they are not in ``fixed``.
    """

    text: str
    response: str | None
    fixed: str
    random: tuple[Any, ...]  # of RandomTermSpec, nesting expanded, in formula order
    response_expr: str | None = None
    offsets: tuple[tuple[str, str], ...] = ()


def _error(formula: str, pos: int, message: str) -> FormulaError:
    caret = " " * (pos + 2) + "^"
    return FormulaError(f"{message}\n  {formula}\n{caret}")


_PLAIN_PIECE = re.compile(r"^(?:-?[01]|[A-Za-z_][A-Za-z0-9_]*)$")


def _function_error(formula: str, pos: int, name: str) -> FormulaError:
    if name == "fulldummy":
        return _error(
            formula,
            pos,
            "fulldummy(x) is a term of its own inside a random-effects term, "
            "as in (1 + fulldummy(x) | g)",
        )
    if name == "zerocorr":
        return _error(formula, pos, "zerocorr(expr | g) is a random-effects term of its own")
    return _error(
        formula,
        pos,
        f"unknown function {name!r}: formulas can call I(), C(), log(), exp(), sqrt(), "
        "poly(), scale(), center(), Python's builtins and np.<function>",
    )


def formulaic_piece(formula: str, offset: int, piece: str) -> str:
    """``piece`` (at ``offset`` in ``formula``) rewritten for formulaic, after
    checking that formulaic parses it and that every function it calls exists."""
    text, origin = to_formulaic(piece)
    if _PLAIN_PIECE.match(text.strip()):
        return text
    for name, start in calls(piece):
        if "." in name and name.split(".", 1)[0] in NAMESPACES:
            continue  # np.log: numpy reports a wrong attribute when evaluated
        if name not in KNOWN_FUNCTIONS:
            raise _function_error(formula, offset + start, name)
    try:
        Formula(text)
    except Exception as exc:  # formulaic's parser raises many classes
        message, mark = formulaic_message(exc)
        at = offset + origin[min(mark, len(origin) - 1)] if mark is not None and origin else offset
        raise _error(formula, at, f"cannot parse {piece.strip()!r}: {message}") from None
    return text


def _offset_term(formula: str, pos: int, piece: str) -> tuple[str, str] | None:
    """An ``offset(expr)`` term of the fixed part (at ``pos`` in ``formula``) as
    (``expr`` as written, formulaic text); None for any other piece.

    The expression is evaluated inside ``I()``, so that it is read as Python
    (``log(t) / 2``, ``np.log(t) + 1``), as R reads the argument of ``offset()``,
    not as formula operators.
    """
    head = "offset("
    if not (piece.startswith(head) and piece.endswith(")")):
        return None
    inner = piece[len(head) : -1]
    depth = 0
    for i, ch in enumerate(piece[len(head) - 1 :]):  # one group: offset(a)(b) is not
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and i < len(piece) - len(head):
            raise _error(formula, pos, f"offset() takes one expression; got {piece!r}")
    if not inner.strip() or len(split_top(inner, ",")) > 1:
        raise _error(formula, pos, f"offset() takes one expression; got {piece!r}")
    # "I(" is two characters where "offset(" is seven: carets land on the expression
    text = formulaic_piece(formula, pos + len(head) - 2, f"I({inner})")
    return " ".join(inner.split()), text.strip()


def _check_parentheses(formula: str) -> None:
    depth = 0
    for i, ch in enumerate(formula):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _error(formula, i, "unbalanced parentheses: ')' without '('")
    if depth > 0:
        pos = formula.rfind("(")
        raise _error(formula, pos, "unbalanced parentheses: '(' is never closed")


def split_top(text: str, sep: str) -> list[tuple[int, str]]:
    """Split at ``sep`` outside parentheses and backticks; keep start offsets."""
    out, depth, start, i, tick = [], 0, 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "`":
            tick = not tick
        elif not tick and ch == "(":
            depth += 1
        elif not tick and ch == ")":
            depth -= 1
        elif not tick and depth == 0 and text.startswith(sep, i):
            if sep == "|" and text.startswith("||", i):  # '||' is not a split at '|'
                i += 2
                continue
            out.append((start, text[start:i]))
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    out.append((start, text[start:]))
    return out


def _strip_name(name: str) -> str:
    name = name.strip()
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def _parse_group(formula: str, offset: int, text: str) -> list[tuple[str, ...]]:
    """``g`` -> [(g,)]; ``a/b/c`` -> [(a,), (a, b), (a, b, c)]; ``a & b`` -> [(a, b)]."""
    if not text.strip():
        raise _error(formula, offset, "empty grouping factor after '|'")
    nested = [part for _, part in split_top(text, "/")]
    levels: list[tuple[str, ...]] = []
    prefix: tuple[Any, ...] = ()
    for part in nested:
        names = re.split(r"\s*[&:]\s*", part.strip())
        for name in names:
            if not _NAME.match(name.strip()):
                raise _error(
                    formula,
                    offset,
                    f"grouping factor {part.strip()!r} must be column names "
                    "joined by '&', ':' or '/'",
                )
        prefix = prefix + tuple(_strip_name(n) for n in names)
        levels.append(prefix)
    return levels


def _minus_as_plus(text: str) -> str:
    """'a - 1' -> 'a + -1' at the top level only (not inside I(x - 1))."""
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        out.append("+-" if ch == "-" and depth == 0 else ch)
    return "".join(out)


def _parse_items(formula: str, offset: int, text: str) -> tuple[tuple[ReItem, ...], bool, bool]:
    """Left side of a random term -> (items, intercept, explicit_zero)."""
    items: list[ReItem] = []
    intercept, zero = False, False
    if not text.strip():
        raise _error(formula, offset, "empty random-effects term before '|'")
    pieces = [p.strip() for _, p in split_top(_minus_as_plus(text), "+")]
    for piece in pieces:
        piece = re.sub(r"^-\s*", "-", piece)
        if piece == "":
            continue
        if piece == "1":
            intercept = True
        elif piece in ("0", "-1"):
            zero = True
        elif piece.startswith("-"):
            raise _error(formula, offset, f"cannot remove {piece[1:]!r} in a random term")
        elif piece.startswith("fulldummy(") and piece.endswith(")"):
            name = piece[len("fulldummy(") : -1].strip()
            if not _NAME.match(name):
                raise _error(formula, offset, f"fulldummy() takes a column name; got {name!r}")
            items.append(ReItem("fulldummy", piece, (_strip_name(name),)))
        elif _NAME.match(piece):
            items.append(ReItem("column", _strip_name(piece), (_strip_name(piece),)))
        else:
            names = re.split(r"\s*[&:]\s*", piece)
            if len(names) > 1 and all(_NAME.match(n) for n in names):
                items.append(ReItem("interaction", piece, tuple(_strip_name(n) for n in names)))
            else:
                at = formula.find(piece, offset)
                text = formulaic_piece(formula, at if at >= 0 else offset, piece)
                items.append(ReItem("expr", text.strip()))
    if zero:  # '0' or '-1' removes the intercept wherever it is written
        intercept = False
    if not intercept and not items:
        raise _error(formula, offset, "a random term needs at least one column or '1'")
    return tuple(items), intercept, zero


def _random_term(formula: str, offset: int, inner: str, zerocorr: bool) -> list[RandomTermSpec]:
    bars = split_top(inner, "||")
    if len(bars) == 2:
        zerocorr = True
    else:
        bars = split_top(inner, "|")
    if len(bars) != 2:
        raise _error(formula, offset, "a random-effects term needs exactly one '|' or '||'")
    (lo, lhs), (go, rhs) = bars
    items, intercept, zero = _parse_items(formula, offset + lo, lhs)
    return [
        RandomTermSpec(items, intercept, zero, group, zerocorr)
        for group in _parse_group(formula, offset + go, rhs)
    ]


def _is_wrapped(piece: str) -> bool:
    """Whether the whole piece is one parenthesized group ``( ... )``."""
    if not (piece.startswith("(") and piece.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(piece):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(piece) - 1:
            return False
    return True


def parse_formula(formula: str) -> ParsedFormula:
    """Split a mixed-model formula into response, fixed part and random terms.

    Examples
    --------
    >>> f = parse_formula("y ~ 1 + x + (1 + x | g)")
    >>> f.response, f.fixed, f.random[0].display()
    ('y', '1 + x', '(1 + x | g)')
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string; got {type(formula).__name__}")
    return _parse_cached(formula)


@lru_cache(maxsize=256)  # estimators refit the same formula (cross-validation, grids)
def _parse_cached(formula: str) -> ParsedFormula:
    _check_parentheses(formula)
    sides = split_top(formula, "~")
    if len(sides) != 2:
        raise _error(formula, 0, "a formula needs exactly one '~' (response ~ terms)")
    (_, lhs), (rhs_off, rhs) = sides
    response = lhs.strip() or None
    response_expr = None
    if response is not None and not _NAME.match(response):
        at = len(lhs) - len(lhs.lstrip())
        response_expr = formulaic_piece(formula, at, response).strip()
    if not rhs.strip():
        raise _error(formula, rhs_off, "nothing to the right of '~'")
    fixed: list[str] = []
    random: list[RandomTermSpec] = []
    offsets: list[tuple[str, str]] = []
    for off, raw in split_top(rhs, "+"):
        piece = raw.strip()
        pos = rhs_off + off + (len(raw) - len(raw.lstrip()))
        if not piece:
            raise _error(formula, pos, "empty term (two '+' in a row, or a trailing '+')")
        if piece.startswith("zerocorr(") and piece.endswith(")"):
            inner = piece[len("zerocorr(") : -1]
            random.extend(_random_term(formula, pos + len("zerocorr("), inner, True))
        elif (
            _is_wrapped(piece)
            and len(split_top(piece[1:-1], "|")) > 1
            or (_is_wrapped(piece) and len(split_top(piece[1:-1], "||")) > 1)
        ):
            random.extend(_random_term(formula, pos + 1, piece[1:-1], False))
        elif "|" in piece and "(" not in piece:
            raise _error(formula, pos, "a random-effects term must be in parentheses: (expr | g)")
        elif (offset := _offset_term(formula, pos, piece)) is not None:
            offsets.append(offset)
        else:
            fixed.append(formulaic_piece(formula, pos, piece).strip())
    # offsets alone leave an intercept-only fixed part, as in R
    fixed_text = " + ".join(fixed) if fixed else "1"
    if response is not None and response_expr is None:
        response = _strip_name(response)
    return ParsedFormula(
        formula, response, fixed_text, tuple(random), response_expr, tuple(offsets)
    )
