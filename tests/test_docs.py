"""What the documentation shows runs: code blocks, formulas, the troubleshooting list.

- Every ```python block of README.md and docs/*.md runs; the blocks of one file
  run in order in one namespace, as a reader would paste them. A block that is
  not meant to run is preceded by the line ``<!-- no-run: why -->``.
- Every formula in a code span (Markdown backticks or ``<code>``) parses.
- docs/troubleshooting.md names every exception and warning class of
  ``sklmixed.exceptions``.
- The site's address in mkdocs.yml is where the estimators' HTML repr links.
"""

from __future__ import annotations

import html
import inspect
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
NO_RUN = "<!-- no-run:"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, runs) of each ```python block."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, m.start()) + 1
        out.append((line, m.group(1), not before.startswith(NO_RUN)))
    return out


# A formula in a code span: "y ~ ...", random-effects terms alone ("(1 | g)",
# "zerocorr(1 + x | g)", "(1 | a) + (1 | a & b)"), or a formula="..." argument.
_TWO_SIDED = re.compile(r"[A-Za-z_][\w.]* ~ [^~]+")
_RANDOM_TERMS = re.compile(r"(zerocorr)?\([^()]*\|[^()]*\)( \+ (zerocorr)?\([^()]*\|[^()]*\))*")
_ARGUMENT = re.compile(r'formula="([^"]+)"')


def formulas_in(code: str) -> list[str]:
    """The model formulas a code span shows (lme4 and Julia calls are not ours)."""
    found = _ARGUMENT.findall(code)
    if found:
        return found
    code = code.strip()
    if _TWO_SIDED.fullmatch(code) and "..." not in code:
        return [code]
    if _RANDOM_TERMS.fullmatch(code):
        return ["y ~ 1 + " + code]
    return []


def code_spans(text: str) -> list[str]:
    """Inline code of a Markdown page: `...` and <code>...</code>, outside fences."""
    text = _FENCE.sub("", text)
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    spans += [html.unescape(s) for s in re.findall(r"<code>(.*?)</code>", text)]
    return spans


def test_formulas_in_recognizes_what_the_pages_show():
    assert formulas_in("reaction ~ 1 + days + (1 + days|subj)") == [
        "reaction ~ 1 + days + (1 + days|subj)"
    ]
    assert formulas_in("(1 | a) + (1 | a & b)") == ["y ~ 1 + (1 | a) + (1 | a & b)"]
    assert formulas_in('MixedLMRegressor(formula="y ~ 1 + x + (1 + x|g)").fit(d)') == [
        "y ~ 1 + x + (1 + x|g)"
    ]
    assert formulas_in("lmer(y ~ x + (x | g), d, REML = FALSE)") == []
    assert formulas_in("fit(MixedModel, @formula(y ~ 1 + x + (1 + x | g)), d)") == []
    assert formulas_in("coef_") == []


def test_python_blocks_are_found_and_markable():
    text = "a\n```python\nx = 1\n```\n<!-- no-run: needs a GPU -->\n```python\nboom\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n", True), (6, "boom\n", False)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_formula_in_a_code_span_parses(page):
    from sklmixed.formula import parse_formula

    bad = []
    for span in code_spans(page.read_text()):
        for formula in formulas_in(span):
            if "\\" in formula:  # a Markdown escape that would reach the reader
                bad.append(f"{formula!r}: backslash")
                continue
            try:
                parse_formula(formula)
            except Exception as exc:
                bad.append(f"{formula!r}: {exc}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p.read_text())],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_every_python_block_runs(page, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for line, code, runs in python_blocks(page.read_text()):
        if not runs:
            continue
        with warnings.catch_warnings():
            # a page may show a fit that warns (a singular fit, say): that is
            # part of what it documents, not a failure of the block
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{page.name}, block at line {line}: {type(exc).__name__}: {exc}")
    capsys.readouterr()


def test_troubleshooting_lists_every_exception_and_warning():
    import sklmixed.exceptions as exc_module

    classes = {
        name
        for name, obj in vars(exc_module).items()
        if inspect.isclass(obj) and issubclass(obj, (Exception, Warning))
    }
    assert set(exc_module.__all__) <= classes
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    named = set(re.findall(r"`(\w+(?:Error|Warning))`", text))
    missing = sorted(c for c in classes if c not in named)
    assert not missing, f"docs/troubleshooting.md does not mention {missing}"
    # and every class the page names exists (here, in Python or in scikit-learn)
    import builtins

    import sklearn.exceptions

    unknown = sorted(
        n
        for n in named
        if not any(hasattr(m, n) for m in (exc_module, builtins, sklearn.exceptions))
    )
    assert not unknown, f"docs/troubleshooting.md names classes that do not exist: {unknown}"


def test_site_url_is_where_the_estimators_link():
    from sklmixed.estimators._base import DOCS_URL

    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^site_url: (\S+)$", config, re.M).group(1) == DOCS_URL
