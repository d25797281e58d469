"""Formula text as lme4 and MixedModels.jl users write it, read token by token.

formulaic evaluates function arguments (``I(x^2)``, ``log(x + 1)``) as Python,
where ``^`` is XOR, and it has no ``&``; R and Julia read ``^`` in those places as
a power and ``a & b`` as an interaction. This module splits a piece of formula
into tokens, tells formula operators from Python code (anything inside a
function call or ``{...}``), rewrites the text for formulaic while remembering
where every character came from (for error carets), and lists the data columns
and the functions a piece uses, so that a wrong name is reported before any data
is touched.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from sklmixed.formula._context import NAMESPACES

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<bquote>`[^`]*`?)
  | (?P<string>'(?:\\.|[^'\\])*'?|"(?:\\.|[^"\\])*"?)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>\*\*|==|!=|<=|>=|//|[-+*/:^&|~<>=!%,@])
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Token:
    """One token: its kind, text, offset in the piece, and whether it is Python
    code (inside a function call or braces) rather than formula syntax."""

    kind: str
    text: str
    start: int
    python: bool


@lru_cache(maxsize=1024)
def tokenize(text: str) -> tuple[Token, ...]:
    """Tokens of ``text`` without white space.

    Examples
    --------
    >>> [t.text for t in tokenize("a & I(b^2)") if t.python]
    ['b', '^', '2']
    """
    tokens: list[Token] = []
    stack: list[bool] = []  # per open bracket: is its content Python code?
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        if kind == "space":
            continue
        value = m.group()
        if kind == "name" and value == ".":
            kind = "op"  # formulaic's "every other column"
        python = stack[-1] if stack else False
        if kind == "open":
            call = value == "(" and bool(tokens) and tokens[-1].kind in ("name", "bquote")
            stack.append(python or call or value == "{")
        elif kind == "close" and stack:
            stack.pop()
            python = stack[-1] if stack else False
        tokens.append(Token(kind, value, m.start(), python))
    return tuple(tokens)


def column_of(token: Token) -> str:
    """The column a name token stands for (backticks removed)."""
    if token.kind == "bquote":
        return token.text.strip("`")
    return token.text


def quote(name: str) -> str:
    """A column name as formula text: backticked unless it is an identifier."""
    return name if _IDENTIFIER.match(name) and not keyword.iskeyword(name) else f"`{name}`"


def _is_call(tokens: tuple[Token, ...], i: int) -> bool:
    nxt = i + 1
    return nxt < len(tokens) and tokens[nxt].text == "(" and tokens[i].kind == "name"


def _is_namespaced(name: str) -> bool:
    return "." in name and name.split(".", 1)[0] in NAMESPACES


@lru_cache(maxsize=1024)
def to_formulaic(text: str) -> tuple[str, tuple[int, ...]]:
    """Rewrite lme4 syntax for formulaic; return the text and, for each of its
    characters, the offset in ``text`` it came from.

    ``^`` in Python code becomes ``**``; ``&`` between terms becomes ``:``;
    R names with dots (``days.n``) are backticked, as formulaic would otherwise
    read them as attribute access (``np.log`` and ``contr.sum`` stay as they are).

    Examples
    --------
    >>> to_formulaic("a & b + I(days^2)")[0]
    'a : b + I(days**2)'
    """
    out: list[str] = []
    origin: list[int] = []
    prev_end = 0
    tokens = tokenize(text)
    for i, tok in enumerate(tokens):
        gap = text[prev_end : tok.start]
        out.append(gap)
        origin.extend(range(prev_end, tok.start))
        value = tok.text
        if tok.kind == "op" and tok.text == "^" and tok.python:
            value = "**"
        elif tok.kind == "op" and tok.text == "&" and not tok.python:
            value = ":"
        elif (
            tok.kind == "name"
            and "." in tok.text
            and not _is_namespaced(tok.text)
            and not _is_call(tokens, i)
            and not (tok.python and i > 0 and tokens[i - 1].text == ".")
        ):
            value = f"`{tok.text}`"
        out.append(value)
        origin.extend(min(tok.start + j, tok.start + len(tok.text) - 1) for j in range(len(value)))
        prev_end = tok.start + len(tok.text)
    out.append(text[prev_end:])
    origin.extend(range(prev_end, len(text)))
    return "".join(out), tuple(origin)


def _is_keyword_argument(tokens: tuple[Token, ...], i: int) -> bool:
    nxt = i + 1
    return tokens[i].python and nxt < len(tokens) and tokens[nxt].text == "="


@lru_cache(maxsize=1024)
def columns(text: str) -> tuple[str, ...]:
    """Data columns a piece of formula reads, in order of appearance.

    Names that are called, keyword arguments, Python keywords and attributes of
    ``np``/``contr`` are not columns.

    Examples
    --------
    >>> columns("1 + log(x) + C(g, contr.sum) + I(`a.b` ** 2) + poly(z, degree=2)")
    ('x', 'g', 'a.b', 'z')
    """
    out: list[str] = []
    tokens = tokenize(text)
    for i, tok in enumerate(tokens):
        if tok.kind == "bquote":
            name = column_of(tok)
        elif tok.kind == "name":
            if _is_call(tokens, i) or _is_keyword_argument(tokens, i):
                continue
            if _is_namespaced(tok.text) or (tok.python and keyword.iskeyword(tok.text)):
                continue
            name = tok.text
        else:
            continue
        if name not in out:
            out.append(name)
    return tuple(out)


def calls(text: str) -> list[tuple[str, int]]:
    """(function name, offset) of every call in a piece of formula."""
    tokens = tokenize(text)
    return [(tok.text, tok.start) for i, tok in enumerate(tokens) if _is_call(tokens, i)]


def _first_argument_of_c(tokens: tuple[Token, ...], i: int) -> bool:
    """Whether token i is ``x`` in a formula-level ``C(x ...)``."""
    return (
        i >= 2
        and tokens[i - 1].text == "("
        and tokens[i - 2].text == "C"
        and not tokens[i - 2].python
        and tokens[i].kind in ("name", "bquote")
        and i + 1 < len(tokens)
        and tokens[i + 1].text in (",", ")")
    )


@lru_cache(maxsize=1024)
def categorical_arguments(text: str) -> frozenset[str]:
    """Columns marked categorical by a formula-level ``C(x, ...)``."""
    tokens = tokenize(text)
    return frozenset(
        column_of(tok) for i, tok in enumerate(tokens) if _first_argument_of_c(tokens, i)
    )


def with_codings(text: str, codings: Mapping[str, str]) -> str:
    """Give the columns in ``codings`` (column -> coding text) their coding.

    A bare column ``x`` in formula syntax becomes ``C(x, coding)`` and ``C(x)``
    becomes ``C(x, coding)``; ``C(x, ...)`` with arguments and columns inside
    Python code are left as written.

    Examples
    --------
    >>> with_codings("1 + g + C(h) + g:x + I(x + 1)", {"g": "contr.sum", "h": "contr.sum"})
    '1 + C(g, contr.sum) + C(h, contr.sum) + C(g, contr.sum):x + I(x + 1)'
    """
    if not codings:
        return text
    tokens = tokenize(text)
    out: list[str] = []
    prev_end = 0
    for i, tok in enumerate(tokens):
        out.append(text[prev_end : tok.start])
        prev_end = tok.start + len(tok.text)
        name = column_of(tok)
        if tok.kind not in ("name", "bquote") or name not in codings:
            out.append(tok.text)
        elif _first_argument_of_c(tokens, i):
            closes = tokens[i + 1].text == ")"
            out.append(f"{tok.text}, {codings[name]}" if closes else tok.text)
        elif tok.python or _is_call(tokens, i):
            out.append(tok.text)
        else:
            out.append(f"C({tok.text}, {codings[name]})")
    out.append(text[prev_end:])
    return "".join(out)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def formulaic_message(exc: BaseException) -> tuple[str, int | None]:
    """formulaic's error message without terminal colour codes, and the offset in
    the parsed text that it points at (its ``⧛...⧚`` marks), if any."""
    text = _ANSI.sub("", str(exc))
    message, _, context = text.partition("\n\n")
    mark = context.find("⧛")
    message = " ".join(message.split())
    return message, (mark if mark >= 0 else None)
