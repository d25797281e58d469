"""The summary and the variance components as HTML and Markdown."""

from __future__ import annotations

import re
import warnings

import pytest

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset

markdown = pytest.importorskip("markdown")


def _lmm():
    df = load_dataset("sleepstudy")
    return MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)


def _glmm():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MixedGLMClassifier(formula="r2 ~ 1 + anger + (1|item)", fast=True).fit(
            load_dataset("verbagg")
        )


def _cells(html: str, caption: str) -> list[list[tuple[str, str]]]:
    """(alignment, text) of every cell of the table with that caption."""
    table = html[html.index(f"<caption>{caption}</caption>") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    return [re.findall(r'<t[hd] style="text-align:(\w+)">(.*?)</t[hd]>', r) for r in rows]


def test_numbers_are_right_aligned_in_html():
    html = _lmm().summary()._repr_html_()
    stats = _cells(html, "Fit statistics")
    assert all(a == "right" for row in stats for a, _ in row)
    coefs = _cells(html, "Fixed-effects parameters")
    assert [a for a, _ in coefs[1]] == ["left", "right", "right", "right", "right"]
    assert coefs[1][1][1] == "251.405"
    varcomps = _cells(html, "Variance components")
    assert [a for a, _ in varcomps[1]] == ["left", "left", "right", "right", "right"]


def test_numbers_are_right_aligned_in_markdown():
    md = _lmm().summary().to_markdown()
    rules = [line for line in md.splitlines() if line.startswith("|:") or line.startswith("|-")]
    assert rules == [
        "|---:|---:|---:|---:|---:|",
        "|:---|:---|---:|---:|---:|",
        "|:---|---:|---:|---:|---:|",
    ]


@pytest.mark.parametrize("fit", [_lmm, _glmm], ids=["lmm", "glmm"])
def test_markdown_renders_three_tables(fit):
    # Python-Markdown is what MkDocs renders with: the GLMM's family line must
    # not swallow the first table
    html = markdown.markdown(fit().summary().to_markdown(), extensions=["tables"])
    assert html.count("<table>") == 3
    assert "Pr(&gt;|z|)" in html


def test_varcorr_renders_as_html():
    vc = _lmm().varcorr()
    html = vc._repr_html_()
    cells = _cells(html, "Variance components")
    assert [c for _, c in cells[0]] == ["Group", "Column", "Variance", "Std.Dev.", "Corr."]
    assert [c for _, c in cells[1]][:4] == ["subj", "(Intercept)", "565.51067", "23.78047"]
    assert cells[2][4] == ("right", "+0.08")
    assert cells[-1][0][1] == "Residual"
