"""Errors and warnings that sklmixed raises, so that users can catch or filter them.

Every error a user can meet is one of these classes (or scikit-learn's
``NotFittedError``). Each subclasses the builtin exception that scikit-learn's
conventions and its estimator checks expect: ``ValueError`` for bad formulas and
data, ``KeyError`` as well for a column that is not there, ``ValueError`` and
``TypeError`` for a bad hyperparameter (as scikit-learn's ``InvalidParameterError``),
``RuntimeError`` for a numerical fit that failed. Bad input is reported before any
numerics. Warnings derive from ``SklmixedWarning``; ``ConvergenceWarning`` is
scikit-learn's, so existing filters for it apply.
"""

from __future__ import annotations

import sys
from types import FrameType

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DataTypeError",
    "FitError",
    "FormulaError",
    "IllConditionedWarning",
    "InferenceError",
    "MissingColumnError",
    "ModelError",
    "NumericTextWarning",
    "ParameterError",
    "PerfectFitWarning",
    "RankDeficientWarning",
    "RowsNotAvailableError",
    "SingularFitWarning",
    "SklmixedWarning",
    "UnseenLevelsWarning",
]


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` that blames the user's line.

    Call it as ``warnings.warn(message, category, stacklevel=user_stacklevel())``.
    The count runs from the function that warns to the caller of the outermost
    sklmixed frame on the stack: the line that called ``fit``, ``predict`` or
    ``score``, however deep inside sklmixed the warning is raised, and also when
    scikit-learn code sits between sklmixed frames (its ``score`` calls our
    ``predict``). A fixed ``stacklevel`` breaks whenever a call path gains or loses
    a frame (Python 3.12's ``skip_file_prefixes`` would stop at the first frame
    outside the package, inside scikit-learn in that case).

    Returns
    -------
    int
        The number of frames from the caller of this function out to the
        caller of the outermost sklmixed frame (or to the outermost frame).
    """
    frame: FrameType | None = sys._getframe(1)  # the function that warns: level 1
    level, outermost = 1, 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "sklmixed" or name.startswith("sklmixed."):
            outermost = level
        frame = frame.f_back
        level += 1
    # one frame further out than the outermost sklmixed frame: its caller
    return min(outermost + 1, level - 1)


class FormulaError(ValueError):
    """A formula that cannot be parsed or does not fit the data."""


class MissingColumnError(FormulaError, KeyError):
    """A formula or argument names a column that the data does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """Data that cannot be modelled as asked (NaN, one level, wrong response, ...)."""


class DataTypeError(DataError, TypeError):
    """Data of a type that cannot be used at all (a dict in a feature column, ...);
    a ``TypeError`` too, as scikit-learn's input validation raises for these."""


class ParameterError(ValueError, TypeError):
    """A hyperparameter of an estimator with an unsupported value or type (checked at
    ``fit``, as scikit-learn does; both a ``ValueError`` and a ``TypeError``, as
    scikit-learn's ``InvalidParameterError``)."""


class ModelError(ValueError):
    """A request that the fitted model cannot answer (a grouping factor it does not
    have, a plot of random effects it has none of)."""


class RowsNotAvailableError(ModelError):
    """A request that needs the rows of the training data (fitted values,
    residuals, leverage, a new response) from a model fitted out of core, which
    kept only their cross-products."""


class FitError(RuntimeError):
    """The numerical fit failed (the conditional modes or the factor could not be
    computed at any parameter value the optimizer tried)."""


class InferenceError(ValueError):
    """An inference request that cannot be honoured: models that a likelihood-ratio
    test cannot compare, a confidence level outside (0, 1), an unknown method."""


class SklmixedWarning(UserWarning):
    """Base class of sklmixed's own warnings."""


class SingularFitWarning(SklmixedWarning):
    """The fit is on the boundary: a variance is zero or a correlation is +-1."""


class RankDeficientWarning(SklmixedWarning):
    """Fixed-effects columns were dropped as linearly dependent on earlier ones."""


class IllConditionedWarning(SklmixedWarning):
    """A column, or the model, is ill-conditioned even after sklmixed's internal
    centring and scaling; the message names the column and what to do."""


class PerfectFitWarning(SklmixedWarning):
    """A linear model without random effects whose fixed effects reproduce the
    response exactly: the coefficients are those of the exact fit, but the residual
    variance is zero and the log-likelihood infinite. (With random effects such a
    fit is an error: the variance components are then undefined.)"""


class NumericTextWarning(SklmixedWarning):
    """A column that the formula uses as a predictor holds numbers written as text
    (a CSV read with ``dtype=str``, say): like R, sklmixed codes a text column as
    categorical, which is a different model from the numeric covariate."""


class UnseenLevelsWarning(SklmixedWarning):
    """``predict`` met a grouping factor none of whose levels were seen in fit, so
    every row gets the population prediction for it (often a sign that the codes
    changed type or spelling since fit)."""
