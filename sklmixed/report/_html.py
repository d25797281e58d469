"""The summary as HTML tables (notebooks) and as Markdown.

Same content as the text report: the header, the fit statistics, the variance
components and the fixed-effects table; numbers formatted by the text rules.
"""

from __future__ import annotations

import html
import math

import numpy as np
from scipy.stats import norm

from sklmixed.report._text import (
    FAMILY_NAMES,
    LINK_NAMES,
    compact,
    dispersion_line,
    fixed,
    julia_repr,
    pvalue,
)


def _title(result) -> list[str]:
    if result.is_glmm:
        return [
            f"Generalized Linear Mixed Model fit by maximum likelihood (nAGQ = {result.nagq})",
            result.formula,
            f"Distribution: {FAMILY_NAMES.get(result.family, result.family)}; "
            f"Link: {LINK_NAMES.get(result.link, result.link)}",
        ]
    head = "REML" if result.reml else "maximum likelihood"
    return [f"Linear mixed model fit by {head}", result.formula]


def _statistics(result) -> tuple[list[str], list[str]]:
    if result.reml and not result.is_glmm:
        return ["REML criterion at convergence"], [julia_repr(result.objective)]
    second = ("deviance", result.deviance) if result.is_glmm else ("-2 logLik", result.objective)
    labels = ["logLik", second[0], "AIC", "AICc", "BIC"]
    values = [result.loglik, second[1], result.aic, result.aicc, result.bic]
    return labels, [fixed(v, 4) for v in values]


def _varcomp_rows(result) -> tuple[list[str], list[list[str]]]:
    sds = [float(s) for vc in result.varcomps for s in vc.sd]
    if result.sigma is not None:
        sds.append(float(result.sigma))
    from sklmixed.report._text import alignment

    digits = max((alignment(compact(s))[1] for s in sds), default=2) - 1
    rows = []
    for vc in result.varcomps:
        for j, col in enumerate(vc.columns):
            corr = [
                "." if vc.structural_zero[j, c] else fixed(float(vc.corr[j, c]), 2, plus=True)
                for c in range(j)
            ]
            rows.append(
                [
                    vc.group if j == 0 else "",
                    col,
                    fixed(vc.sd[j] ** 2, digits),
                    fixed(vc.sd[j], digits),
                    " ".join(corr),
                ]
            )
    if result.sigma is not None:
        rows.append(
            ["Residual", "", fixed(result.sigma**2, digits), fixed(result.sigma, digits), ""]
        )
    return ["Group", "Column", "Variance", "Std.Dev.", "Corr."], rows


def _coef_rows(result) -> tuple[list[str], list[list[str]]]:
    coef, se = np.asarray(result.coef, float), np.asarray(result.stderror, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / se
    p = 2.0 * norm.sf(np.abs(z))
    rows = [
        [str(name), compact(c), compact(s), "NaN" if math.isnan(zz) else f"{zz:.2f}", pvalue(pp)]
        for name, c, s, zz, pp in zip(result.coef_names, coef, se, z, p)
    ]
    return ["", "Coef.", "Std. Error", "z", "Pr(>|z|)"], rows


def _nobs(result) -> str:
    levels = ", ".join(str(vc.nlevels) for vc in result.varcomps)
    if not levels:  # no random-effects terms
        return f"Number of obs: {result.nobs}"
    return f"Number of obs: {result.nobs}; levels of grouping factors: {levels}"


# How many leading columns of each table are labels (left-aligned); the rest
# are numbers (right-aligned, so that their decimal points line up).
_LABELS = {"Fit statistics": 0, "Variance components": 2, "Fixed-effects parameters": 1}


def _align(i: int, labels: int) -> str:
    return "left" if i < labels else "right"


def _html_table(header, rows, caption) -> str:
    e = html.escape
    labels = _LABELS[caption]
    head = "".join(
        f'<th style="text-align:{_align(i, labels)}">{e(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:{_align(i, labels)}">{e(c)}</td>' for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return (
        f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def render_html(result) -> str:
    """The summary as HTML (what ``_repr_html_`` shows in Jupyter)."""
    e = html.escape
    title = _title(result)
    parts = [f"<div class='sklmixed-summary'><p><b>{e(title[0])}</b><br><code>{e(title[1])}</code>"]
    parts += [f"<br>{e(t)}" for t in title[2:]]
    parts.append("</p>")
    labels, values = _statistics(result)
    parts.append(_html_table(labels, [values], "Fit statistics"))
    header, rows = _varcomp_rows(result)
    if rows:  # a GLMM without random-effects terms has none
        parts.append(_html_table(header, rows, "Variance components"))
    parts.append(f"<p>{e(_nobs(result))}</p>")
    extra = dispersion_line(result)
    if extra is not None:
        parts.append(f"<p>{e(extra)}</p>")
    parts.append(_html_table(*_coef_rows(result), "Fixed-effects parameters"))
    parts.append("</div>")
    return "".join(parts)


def render_varcorr_html(result) -> str:
    """The variance components as an HTML table (``VarCorr._repr_html_``)."""
    table = _html_table(*_varcomp_rows(result), "Variance components")
    return f"<div class='sklmixed-varcorr'>{table}</div>"


def _md_table(header, rows, caption) -> str:
    def esc(s):
        return str(s).replace("|", "\\|")

    labels = _LABELS[caption]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join(":---" if i < labels else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(result) -> str:
    """The summary as Markdown (a title, three tables and the observation counts)."""
    title = _title(result)
    labels, values = _statistics(result)
    out = [f"**{title[0]}**", "", f"`{title[1]}`", ""]
    # a table needs a blank line before it to be one (the GLMM's family line)
    out += [t + "  " for t in title[2:]] + ([""] if title[2:] else [])
    out += [_md_table(labels, [values], "Fit statistics"), ""]
    header, rows = _varcomp_rows(result)
    if rows:  # a GLMM without random-effects terms has none
        out += ["Variance components:", "", _md_table(header, rows, "Variance components"), ""]
    out += [
        _nobs(result),
        "",
    ]
    extra = dispersion_line(result)
    if extra is not None:
        out += [extra, ""]
    out += [
        "Fixed-effects parameters:",
        "",
        _md_table(*_coef_rows(result), "Fixed-effects parameters"),
    ]
    return "\n".join(out)
