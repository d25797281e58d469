"""What formulaic evaluates our formulas with, beside the data.

- MixedModels.jl's ``EffectsCoding`` as a formulaic contrast: formulaic's
  ``contr.sum`` is R's (the *last* level coded -1, columns named by the first
  levels); StatsModels.jl codes the *first* level -1 in every column and names the
  columns by the other levels. One coding must mean one thing in ``coef_`` and in
  ``ranef_``, so both parts of the model use this one.
- The R functions that lme4 formulas use and formulaic lacks (``sqrt``,
  ``ceiling``, ...), and a correct ``exp10`` (formulaic's computes ``x**10``).

The names are looked up after the data's columns and before formulaic's own
transforms, both when a design is built and when it is applied to new data.
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from formulaic.transforms import TRANSFORMS
from formulaic.transforms.contrasts import Contrasts
from numpy.typing import NDArray

# The name of the effects coding in formula text: a dunder name, so that no data
# column shadows it.
EFFECTS = "__sklmixed_effects__"


class EffectsCoding(Contrasts):  # type: ignore[misc]  # formulaic ships no type hints
    """StatsModels.jl's ``EffectsCoding()``: the first level is the base.

    Each non-base level gets a column that is 1 for that level, -1 for the base
    level and 0 otherwise; the columns are named by the non-base levels.

    Examples
    --------
    >>> EffectsCoding().get_coding_matrix(["a", "b", "c"]).to_numpy().tolist()
    [[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]
    """

    FACTOR_FORMAT_REDUCED = "{name}[E.{field}]"

    @Contrasts.override  # type: ignore[untyped-decorator]
    def _get_coding_matrix(
        self, levels: Sequence[Hashable], reduced_rank: bool = True, sparse: bool = False
    ) -> Any:
        n = len(levels)
        if not reduced_rank:
            matrix: NDArray[np.float64] = np.eye(n)
        else:
            matrix = np.eye(n)[:, 1:]
            matrix[0, :] = -1.0
        return sp.csc_matrix(matrix) if sparse else matrix

    @Contrasts.override  # type: ignore[untyped-decorator]
    def get_coding_column_names(
        self, levels: Sequence[Hashable], reduced_rank: bool = True
    ) -> list[Hashable]:
        return list(levels[1:]) if reduced_rank else list(levels)

    @Contrasts.override  # type: ignore[untyped-decorator]
    def get_coefficient_row_names(
        self, levels: Sequence[Hashable], reduced_rank: bool = True
    ) -> list[Hashable]:
        if reduced_rank:
            return ["avg", *(f"{level} - avg" for level in levels[1:])]
        return list(levels)


def _exp10(x: Any) -> Any:
    return np.power(10.0, x)


# R's names for the elementwise functions lme4 formulas commonly use.
CONTEXT: dict[str, Any] = {
    EFFECTS: EffectsCoding(),
    "sqrt": np.sqrt,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "exp10": _exp10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "floor": np.floor,
    "ceiling": np.ceil,
    "sign": np.sign,
}

# Formula-level codings: the text that selects each coding inside ``C(x, ...)``.
CODING_TEXT = {"dummy": "contr.treatment", "effects": EFFECTS, "helmert": "contr.helmert"}

# Names a formula may call: formulaic's transforms, ours, and Python's builtins
# (formulaic evaluates function calls as Python).
KNOWN_FUNCTIONS = frozenset(TRANSFORMS) | frozenset(CONTEXT) | frozenset(dir(builtins))

# Names whose attributes are functions or codings (``np.log``, ``contr.sum``),
# never data columns.
NAMESPACES = frozenset({"np", "contr"})
