"""The model report: MixedModels.jl's summary as text, HTML and Markdown.

Pure functions of a :class:`~sklmixed._results.FitResult`; nothing is refitted.
"""

from __future__ import annotations

from sklmixed.report._html import render_html, render_markdown
from sklmixed.report._text import render_coeftable, render_text, render_varcorr

__all__ = [
    "Summary",
    "VarCorr",
    "render_coeftable",
    "render_html",
    "render_markdown",
    "render_text",
    "render_varcorr",
]


class Summary:
    """A fitted model's summary: ``str`` is MixedModels.jl's report, and notebooks
    render it as HTML tables.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    >>> print(m.summary().as_text().splitlines()[0])
    Linear mixed model fit by maximum likelihood
    """

    def __init__(self, result):
        self.result = result

    def as_text(self) -> str:
        return render_text(self.result)

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return render_html(self.result)

    def to_markdown(self) -> str:
        return render_markdown(self.result)


class VarCorr:
    """Variance components of a fit: ``str`` is MixedModels.jl's ``VarCorr`` block;
    ``table`` has one row per random-effect column (and the residual)."""

    def __init__(self, result):
        self.result = result

    def __str__(self) -> str:
        return render_varcorr(self.result)

    __repr__ = __str__

    @property
    def table(self):
        import pandas as pd

        rows = []
        for vc in self.result.varcomps:
            for j, col in enumerate(vc.columns):
                rows.append(
                    {"group": vc.group, "column": col, "variance": vc.sd[j] ** 2, "sd": vc.sd[j]}
                )
        if self.result.sigma is not None:
            s = self.result.sigma
            rows.append({"group": "Residual", "column": "", "variance": s * s, "sd": s})
        return pd.DataFrame(rows)

    @property
    def correlations(self) -> dict:
        """Per grouping factor, the correlation matrix of its random effects."""
        import pandas as pd

        return {
            vc.group: pd.DataFrame(vc.corr, index=vc.columns, columns=vc.columns)
            for vc in self.result.varcomps
        }
