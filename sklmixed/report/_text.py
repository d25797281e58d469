"""The model summary as MixedModels.jl prints it, character for character.

The rules below are MixedModels.jl's ``show`` methods for LinearMixedModel,
GeneralizedLinearMixedModel and VarCorr, and StatsBase's ``show`` for a
CoefTable, restated for Python:

- Julia's compact float printing (what ``Base.alignment`` measures) shows a
  Float64 with at most 6 significant digits, shortest form, always with a decimal
  point (``3.0``) and exponents without padding (``1.0e-5``);
- the variance components use ``digits`` = the longest fractional part (point
  included, minus one) of the compact SDs, then fixed notation with that many
  decimals for SDs and variances alike;
- a CoefTable aligns numbers on the decimal point, text to the left, with two
  spaces between columns and ``─`` rules the width of the table.
"""

from __future__ import annotations

import math

import numpy as np

FAMILY_NAMES = {
    "bernoulli": "Bernoulli{Float64}",
    "binomial": "Binomial{Float64}",
    "poisson": "Poisson{Float64}",
    "negative_binomial": "NegativeBinomial{Float64}",
    "gamma": "Gamma{Float64}",
    "inverse_gaussian": "InverseGaussian{Float64}",
}
# The line under the variance components for the families with a parameter beyond
# the mean: what it is, and the variance function that defines it.
DISPERSION_LABELS = {
    "negative_binomial": "Shape of the negative binomial (variance mu + mu^2/shape)",
    "gamma": "Dispersion of the Gamma family (variance phi mu^2)",
    "inverse_gaussian": "Dispersion of the inverse Gaussian family (variance phi mu^3)",
}
LINK_NAMES = {
    "logit": "LogitLink()",
    "probit": "ProbitLink()",
    "cloglog": "CloglogLink()",
    "cauchit": "CauchitLink()",
    "log": "LogLink()",
    "identity": "IdentityLink()",
    "sqrt": "SqrtLink()",
    "inverse": "InverseLink()",
}


# ------------------------------------------------------------ number formats


def compact(x: float) -> str:
    """Julia's ``show(IOContext(io, :compact => true), x)`` for a Float64."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    s = f"{x:.6g}"
    if "e" in s:
        mantissa, exp = s.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{int(exp)}"
    if "." not in s:
        s += ".0"
    return s


def alignment(s: str) -> tuple[int, int]:
    """Base.alignment of a printed number: widths before and from the point."""
    for i, ch in enumerate(s):
        if ch in ".eEfF":
            return i, len(s) - i
    return len(s), 0


def fixed(x: float, digits: int, plus: bool = False) -> str:
    """Ryu.writefixed: fixed notation with ``digits`` decimals."""
    if math.isnan(x):
        return "NaN"
    s = f"{x:+.{digits}f}" if plus else f"{x:.{digits}f}"
    return s


def julia_repr(x: float) -> str:
    """Julia's shortest round-trip printing of a Float64 (``print(x)``)."""
    x = float(x)
    if math.isfinite(x) and x == int(x) and abs(x) < 1e16:
        return f"{x:.1f}"
    s = repr(x)
    if "e" in s:
        mantissa, exp = s.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{int(exp)}"
    return s


def pvalue(p: float) -> str:
    """StatsBase's PValue: 4 decimals from 1e-4, else ``<1e-k`` (k at most 99)."""
    if math.isnan(p):
        return "NaN"
    if p >= 1e-4:
        return f"{p:.4f}"
    expo = -99 if p <= 0 else max(math.ceil(np.nextafter(math.log10(p), np.inf)), -99)
    return f"<1e-{abs(expo):02d}"


def _lpad(s: str, n: int) -> str:
    return s.rjust(n)


def _rpad(s: str, n: int) -> str:
    return s.ljust(n)


def _cpad(s: str, n: int) -> str:
    """Centre s in n columns, extra space to the right (MixedModels.jl's cpad)."""
    return _rpad(_lpad(s, (n + len(s)) >> 1), n)


# -------------------------------------------------------------- the blocks


def render_varcorr(result) -> str:
    """The ``Variance components:`` block (as ``VarCorr(m)`` prints it)."""
    comps = result.varcomps
    names = [vc.group for vc in comps]
    cnames = [c for vc in comps for c in vc.columns]
    sds = [float(s) for vc in comps for s in vc.sd]
    has_resid = result.sigma is not None
    if not comps and not has_resid:  # a GLMM without random-effects terms
        return "Variance components: none (the model has no random-effects terms)"
    if has_resid:
        sds.append(float(result.sigma))
        names = names + ["Residual"]
    nmwd = max((len(s) for s in names), default=0) + 1
    # no random-effects terms: no "Column" column, only the residual row
    cnmwd = max((len(s) for s in cnames), default=0) + 1 if cnames else 0
    ncorr = max((len(vc.columns) * (len(vc.columns) - 1) // 2 for vc in comps), default=0)
    digits = max((alignment(compact(s))[1] for s in sds), default=1) - 1
    show_sd = [fixed(s, digits) for s in sds]
    show_var = [fixed(s * s, digits) for s in sds]
    varwd = max(len(s) for s in show_var) + 1
    stdwd = max(len(s) for s in show_sd) + 1
    lines = ["Variance components:"]
    header = " " * nmwd + (_cpad("Column", cnmwd) if cnames else "") + _cpad("Variance", varwd)
    header += _cpad("Std.Dev.", stdwd)
    if ncorr:
        header += "  Corr."
    lines.append(header)
    ind = 0
    for vc in comps:
        k = len(vc.columns)
        for j in range(k):
            row = _rpad(vc.group if j == 0 else "", nmwd)
            row += _rpad(cnames[ind], cnmwd) + _lpad(show_var[ind], varwd)
            row += _lpad(show_sd[ind], stdwd)
            for col in range(j):
                if vc.structural_zero[j, col]:
                    row += "   .  "
                else:
                    row += _lpad(fixed(float(vc.corr[j, col]), 2, plus=True), 6)
            lines.append(row)
            ind += 1
    last = ""
    if has_resid:
        last = _rpad("Residual", nmwd) + " " * cnmwd + _lpad(show_var[ind], varwd)
        last += _lpad(show_sd[ind], stdwd)
    lines.append(last)
    return "\n".join(lines)


def render_coeftable(result) -> str:
    """The fixed-effects table (as ``coeftable(m)`` prints it)."""
    coef = np.asarray(result.coef, dtype=float)
    se = np.asarray(result.stderror, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / se
    from scipy.stats import norm

    p = 2.0 * norm.sf(np.abs(z))
    colnames = ["Coef.", "Std. Error", "z", "Pr(>|z|)"]
    # Each cell: (text, kind) where numbers align on the point, text to the left.
    cols = [
        [(str(n), "text") for n in result.coef_names],
        [(compact(v), "num") for v in coef],
        [(compact(v), "num") for v in se],
        [("NaN" if math.isnan(v) else f"{v:.2f}", "num") for v in z],
        [(pvalue(v), "text") for v in p],
    ]

    def align(cell):
        text, kind = cell
        return alignment(text) if kind == "num" else (0, len(text))

    widths = []
    for j, col in enumerate(cols):
        left = max((align(c)[0] for c in col), default=0)  # no fixed effects: no rows
        right = max((align(c)[1] for c in col), default=0)
        if j > 0 and len(colnames[j - 1]) > left + right:
            left += len(colnames[j - 1]) - (left + right)
        widths.append((left, right))
    total = sum(a + b for a, b in widths) + 2 * (len(widths) - 1)
    rule = "─" * total
    header = " " * sum(widths[0]) + "".join(
        "  " + _lpad(name, sum(widths[j + 1])) for j, name in enumerate(colnames)
    )
    rows = []
    for i in range(len(coef)):
        cells = []
        for j, col in enumerate(cols):
            a = align(col[i])
            cells.append(" " * (widths[j][0] - a[0]) + col[i][0] + " " * (widths[j][1] - a[1]))
        rows.append("  ".join(cells))
    return "\n".join([rule, header, rule, *rows, rule])


def _statistics(labels, values) -> list[str]:
    nums = [fixed(v, 4) for v in values]
    fieldwd = max(max(len(s) for s in nums) + 1, 11)
    head = "".join(_rpad(_lpad(lab, (fieldwd + len(lab)) >> 1), fieldwd) for lab in labels)
    return [head, "".join(_lpad(s, fieldwd) for s in nums)]


def dispersion_line(result) -> str | None:
    """``Shape of the negative binomial (...): 0.883667`` (None without one)."""
    if getattr(result, "dispersion", None) is None:
        return None
    label = DISPERSION_LABELS.get(result.family, f"Dispersion of the {result.family} family")
    return f"{label}: {compact(result.dispersion)}"


def _nobs_line(result) -> str:
    nlevels = ", ".join(str(vc.nlevels) for vc in result.varcomps)
    if not nlevels:  # no random-effects terms
        return f" Number of obs: {result.nobs}"
    return f" Number of obs: {result.nobs}; levels of grouping factors: {nlevels}"


def render_text(result) -> str:
    """The whole summary of a fit (MixedModels.jl's ``show(m)``)."""
    if result.is_glmm:
        lines = [
            f"Generalized Linear Mixed Model fit by maximum likelihood (nAGQ = {result.nagq})",
            f"  {result.formula}",
            f"  Distribution: {FAMILY_NAMES.get(result.family, result.family)}",
            f"  Link: {LINK_NAMES.get(result.link, result.link)}",
            "",
            *_statistics(
                ["  logLik", " deviance", "AIC", "AICc", "BIC"],
                [result.loglik, result.deviance, result.aic, result.aicc, result.bic],
            ),
            "",
            render_varcorr(result),
            _nobs_line(result),
        ]
        extra = dispersion_line(result)
        if extra is not None:
            lines.append(f" {extra}")
        lines += ["", "Fixed-effects parameters:", render_coeftable(result)]
        return "\n".join(lines)
    head = "REML" if result.reml else "maximum likelihood"
    lines = [f"Linear mixed model fit by {head}", f" {result.formula}"]
    if result.reml:
        lines.append(f" REML criterion at convergence: {julia_repr(result.objective)}")
    else:
        lines += _statistics(
            ["  logLik", "-2 logLik", "AIC", "AICc", "BIC"],
            [-result.objective / 2, result.objective, result.aic, result.aicc, result.bic],
        )
    lines += [
        "",
        render_varcorr(result),
        _nobs_line(result),
        "",
        "  Fixed-effects parameters:",
        render_coeftable(result),
    ]
    return "\n".join(lines)
