"""sklmixed.exceptions: the classes users catch, and that they are what is raised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sklmixed import exceptions as ex

PACKAGE = Path(ex.__file__).parent


@pytest.mark.parametrize(
    "cls, bases",
    [
        (ex.FormulaError, (ValueError,)),
        (ex.MissingColumnError, (ex.FormulaError, KeyError)),
        (ex.DataError, (ValueError,)),
        (ex.DataTypeError, (ex.DataError, TypeError)),
        (ex.ParameterError, (ValueError, TypeError)),
        (ex.ModelError, (ValueError,)),
        (ex.FitError, (RuntimeError,)),
        (ex.SingularFitWarning, (ex.SklmixedWarning, UserWarning)),
        (ex.RankDeficientWarning, (ex.SklmixedWarning,)),
        (ex.PerfectFitWarning, (ex.SklmixedWarning,)),
        (ex.UnseenLevelsWarning, (ex.SklmixedWarning,)),
    ],
)
def test_each_class_is_the_builtin_that_scikit_learn_expects(cls, bases):
    assert all(issubclass(cls, b) for b in bases)
    assert cls.__name__ in ex.__all__


def test_missing_column_message_is_not_quoted_as_a_key_error():
    assert str(ex.MissingColumnError("column 'x' not found")) == "column 'x' not found"


# Where users meet errors: the estimators, the report, the plots, the command line
# and the data sets. The formula layer and the core are reached through them (and
# raise sklmixed's classes for bad input, the core's own numerics aside).
USER_FACING = [
    *sorted((PACKAGE / "estimators").glob("*.py")),
    *sorted((PACKAGE / "report").glob("*.py")),
    PACKAGE / "plotting.py",
    PACKAGE / "_cli.py",
    PACKAGE / "datasets.py",
]


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_user_facing_modules_raise_only_sklmixed_exceptions(path):
    builtin = re.compile(
        r"raise\s+(ValueError|TypeError|KeyError|IndexError|RuntimeError|"
        r"FloatingPointError|ArithmeticError|Exception)\b"
    )
    offending = [
        f"{path.name}:{i}: {line.strip()}"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if builtin.search(line)
    ]
    assert offending == []
