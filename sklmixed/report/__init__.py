"""The model report: MixedModels.jl's summary as text, HTML and Markdown.

Pure functions of a fit's frozen results (``FitResult``); nothing is refitted.
"""

from __future__ import annotations

from sklmixed.report._html import render_html, render_markdown, render_varcorr_html
from sklmixed.report._text import render_coeftable, render_text, render_varcorr

__all__ = [
    "Summary",
    "VarCorr",
    "render_coeftable",
    "render_html",
    "render_markdown",
    "render_text",
    "render_varcorr",
    "render_varcorr_html",
]


class Summary:
    """A fitted model's summary: MixedModels.jl's report as text, HTML or Markdown.

    ``str(summary)`` (and ``print``) is MixedModels.jl's text report line for
    line; Jupyter renders the same content as HTML tables. Obtained from a fitted
    estimator's ``summary()``; nothing is refitted.

    Parameters
    ----------
    result : FitResult
        The frozen results of a fit, as the estimators keep them.

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
        """The report as MixedModels.jl prints it.

        Returns
        -------
        text : str
            The header, the fit statistics, the variance components, the
            numbers of observations and levels, and the fixed-effects table.
        """
        return render_text(self.result)

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return render_html(self.result)

    def to_markdown(self) -> str:
        """The report as Markdown, for a README or a MkDocs page.

        Returns
        -------
        markdown : str
            The title and formula, then three tables (fit statistics, variance
            components, fixed effects) with the numbers right-aligned.

        Examples
        --------
        >>> from sklmixed import MixedLMRegressor, load_dataset
        >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
        >>> print(m.summary().to_markdown().splitlines()[0])
        **Linear mixed model fit by maximum likelihood**
        """
        return render_markdown(self.result)


class VarCorr:
    """The variance components of a fit (MixedModels.jl's and lme4's ``VarCorr``).

    ``str`` is MixedModels.jl's ``Variance components:`` block, Jupyter renders
    it as an HTML table, and ``table`` and ``correlations`` hold the numbers.
    Obtained from a fitted estimator's ``varcorr()``.

    Parameters
    ----------
    result : FitResult
        The frozen results of a fit, as the estimators keep them.

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff"))
    >>> print(m.varcorr())
    Variance components:
                Column    Variance Std.Dev.
    batch    (Intercept)  1388.3333 37.2603
    Residual              2451.2500 49.5101
    """

    def __init__(self, result):
        self.result = result

    def __str__(self) -> str:
        return render_varcorr(self.result)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return render_varcorr_html(self.result)

    @property
    def table(self):
        """The variances and standard deviations as a DataFrame.

        One row per random-effect column of each grouping factor, then one for
        the residual (for models with a dispersion parameter); columns
        ``group``, ``column``, ``variance`` and ``sd``, unrounded.
        """
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
        """Per grouping factor, the correlation matrix of its random effects.

        A dict from grouping-factor name to a DataFrame indexed and labelled by
        the factor's random-effect columns; zero where the formula makes the
        effects uncorrelated (``zerocorr``, ``||``).
        """
        import pandas as pd

        return {
            vc.group: pd.DataFrame(vc.corr, index=vc.columns, columns=vc.columns)
            for vc in self.result.varcomps
        }
