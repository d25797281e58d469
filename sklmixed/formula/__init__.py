"""The formula layer: ``"y ~ 1 + x + (1 + x|g)"`` and a DataFrame to model matrices.

Fixed effects go through formulaic; random-effects terms (``(expr|g)``,
``zerocorr(expr|g)``, ``(expr||g)``, ``(1|a/b)``, ``(1|a & b)``, ``fulldummy(x)``)
are parsed here and become the numeric core's ``ReTerm`` records.
"""

from sklmixed.formula._design import CODINGS, Design, build_design, build_design_from_columns
from sklmixed.formula._parse import ParsedFormula, RandomTermSpec, parse_formula

__all__ = [
    "CODINGS",
    "Design",
    "ParsedFormula",
    "RandomTermSpec",
    "build_design",
    "build_design_from_columns",
    "parse_formula",
]
