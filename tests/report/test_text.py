"""Number formats of the MixedModels.jl report (Julia's printing rules)."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._results import FitResult, VarComp
from sklmixed.report import Summary, render_coeftable, render_varcorr
from sklmixed.report._text import alignment, compact, fixed, julia_repr, pvalue


@pytest.mark.parametrize(
    "x, text",
    [
        (1527.4999999999989, "1527.5"),
        (17.694568, "17.6946"),
        (0.0116044, "0.0116044"),
        (0.09983800001, "0.099838"),
        (3.0, "3.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.234567e-5, "1.23457e-5"),
        (2.5e7, "2.5e7"),
        (float("nan"), "NaN"),
    ],
)
def test_compact(x, text):
    assert compact(x) == text


def test_alignment_splits_at_the_point():
    assert alignment("1527.5") == (4, 2)
    assert alignment("-0.0411091") == (2, 8)
    assert alignment("NaN") == (3, 0)
    assert alignment("1.23457e-5") == (1, 9)


@pytest.mark.parametrize(
    "p, text",
    [
        (0.8682, "0.8682"),
        (1e-4, "0.0001"),
        (7.8e-5, "<1e-04"),
        (4.2e-6, "<1e-05"),
        (3.2e-12, "<1e-11"),
        (0.0, "<1e-99"),
        (1e-300, "<1e-99"),
        (float("nan"), "NaN"),
    ],
)
def test_pvalue(p, text):
    assert pvalue(p) == text


def test_fixed_and_julia_repr():
    assert fixed(0.0833, 2, plus=True) == "+0.08"
    assert fixed(-0.3, 2, plus=True) == "-0.30"
    assert julia_repr(319.65427684225943) == "319.65427684225943"
    assert julia_repr(2.0) == "2.0"


def _result(sigma=25.59182, corr=0.0813, structural=False):
    sz = np.array([[False, structural], [structural, False]])
    vc = VarComp(
        "subj",
        ("(Intercept)", "days"),
        np.array([23.78047, 5.71683]),
        np.array([[1, corr], [corr, 1]]),
        sz,
        18,
    )
    return FitResult(
        formula="reaction ~ 1 + days + (1 + days | subj)",
        nobs=180,
        coef=np.array([251.405, 10.4673]),
        coef_names=("(Intercept)", "days"),
        stderror=np.array([6.63226, 1.50224]),
        vcov=np.eye(2),
        theta=np.ones(3),
        sigma=sigma,
        varcomps=(vc,),
        objective=1751.9393,
        loglik=-875.96965,
        aic=1763.9393,
        aicc=1764.4249,
        bic=1783.0971,
        dof=6,
    )


def test_varcorr_block_of_the_page():
    assert render_varcorr(_result()).splitlines() == [
        "Variance components:",
        "            Column    Variance Std.Dev.   Corr.",
        "subj     (Intercept)  565.51075 23.78047",
        "         days          32.68215  5.71683 +0.08",
        "Residual              654.94125 25.59182",
    ]


def test_structural_zero_prints_a_dot():
    assert render_varcorr(_result(structural=True)).splitlines()[3].endswith("   .  ")


def test_coeftable_of_the_page():
    assert render_coeftable(_result()).splitlines() == [
        "──────────────────────────────────────────────────",
        "                Coef.  Std. Error      z  Pr(>|z|)",
        "──────────────────────────────────────────────────",
        "(Intercept)  251.405      6.63226  37.91    <1e-99",
        "days          10.4673     1.50224   6.97    <1e-11",
        "──────────────────────────────────────────────────",
    ]


def test_html_and_markdown_carry_the_numbers():
    s = Summary(_result())
    html, md = s._repr_html_(), s.to_markdown()
    for token in ["251.405", "6.63226", "37.91", "1e-99", "23.78047", "+0.08", "1751.9393"]:
        assert token in html and token in md
    assert "&lt;1e-99" in html and "<table>" in html
    assert str(s) == repr(s) and str(s).startswith("Linear mixed model fit by maximum likelihood")
