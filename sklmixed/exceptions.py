"""Errors and warnings that sklmixed raises, so that users can catch or filter them.

Every error is a subclass of ``ValueError`` (bad formulas, bad data) or of
``KeyError`` as well (a column that is not there), raised before any numerics.
Warnings derive from :class:`SklmixedWarning`; ``ConvergenceWarning`` is
scikit-learn's, so existing filters for it apply.
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FitFailedError",
    "FormulaError",
    "IllConditionedWarning",
    "MissingColumnError",
    "RankDeficientWarning",
    "SingularFitWarning",
    "SklmixedWarning",
]


class FormulaError(ValueError):
    """A formula that cannot be parsed or does not fit the data."""


class MissingColumnError(FormulaError, KeyError):
    """A formula or argument names a column that the data does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """Data that cannot be modelled as asked (NaN, one level, wrong response, ...)."""


class FitFailedError(DataError):
    """The numerics could not fit these data as asked (the conditional modes of a
    GLMM could not be found, the objective is not finite at the start, ...); the
    message says why and what to try."""


class SklmixedWarning(UserWarning):
    """Base class of sklmixed's own warnings."""


class SingularFitWarning(SklmixedWarning):
    """The fit is on the boundary: a variance is zero or a correlation is +-1."""


class RankDeficientWarning(SklmixedWarning):
    """Fixed-effects columns were dropped as linearly dependent on earlier ones."""


class IllConditionedWarning(SklmixedWarning):
    """A column, or the model, is ill-conditioned even after sklmixed's internal
    centring and scaling; the message names the column and what to do."""
