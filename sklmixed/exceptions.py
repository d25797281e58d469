"""Errors and warnings that sklmixed raises, so that users can catch or filter them.

Errors about the input (a formula, the data, a hyperparameter) are subclasses of
``ValueError`` (``MissingColumnError`` is a ``KeyError`` as well) and are raised
before any numerics, with a message naming the column, term or value at fault.
sklmixed's own warnings derive from ``SklmixedWarning``; ``ConvergenceWarning``
is scikit-learn's, so existing filters for it apply. The troubleshooting page
lists every error and warning a fit can raise, these and the others.
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
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


class SklmixedWarning(UserWarning):
    """Base class of sklmixed's own warnings."""


class SingularFitWarning(SklmixedWarning):
    """The fit is on the boundary: a variance is zero or a correlation is +-1."""


class RankDeficientWarning(SklmixedWarning):
    """Fixed-effects columns were dropped as linearly dependent on earlier ones."""
