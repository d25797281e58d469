"""Random-effects terms as the numeric core sees them.

A random-effects term is one grouping factor with ``l`` levels and ``k`` columns of
its model matrix. The core never sees formulas or data frames: the formula layer
hands it one :class:`ReTerm` per grouping factor (terms sharing a grouping factor
already amalgamated), and the core orders them, builds the cross-product blocks
and factors them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, eq=False)
class ReTerm:
    """One grouping factor's random effects.

    Parameters
    ----------
    name : str
        Grouping factor as printed in the summary (``"subj"``, ``"batch & cask"``).
    refs : ndarray of int64, shape (n,)
        For each observation, the index of its level in ``levels`` (0-based).
    levels : tuple[Any, ...]
        Level labels, in the order of the random effects (sorted, as MixedModels.jl).
    z : ndarray of float64, shape (n, k)
        The term's model-matrix columns (before the indicator of the level).
    cnames : tuple[Any, ...] of str
        Names of the ``k`` columns, e.g. ``("(Intercept)", "days")``.
    inds : ndarray of int64, shape (ntheta, 2)
        The free positions ``(row, col)`` of the lower-triangular relative
        covariance factor ``lambda`` (k x k), in column-major order. A full
        correlated term has every lower-triangle position; ``zerocorr`` only the
        diagonal; an amalgamation of ``(1|g) + (x|g)`` the block-diagonal ones.
    """

    name: str
    refs: NDArray[Any]
    levels: tuple[Any, ...]
    z: NDArray[Any]
    cnames: tuple[Any, ...]
    inds: NDArray[Any] = field(default=None)  # type: ignore[arg-type]  # filled in __post_init__

    def __post_init__(self) -> None:
        k = self.z.shape[1]
        if self.inds is None:
            rows, cols = np.tril_indices(k)
            order = np.lexsort((rows, cols))  # column-major
            object.__setattr__(self, "inds", np.column_stack((rows[order], cols[order])))

    # The sizes are read dozens of times in every fit; the fields are frozen, so
    # each is computed once and kept.

    @cached_property
    def k(self) -> int:
        """Number of random effects per level."""
        return int(self.z.shape[1])

    @cached_property
    def nlevels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @cached_property
    def nranef(self) -> int:
        """Total number of random effects, ``k * l``."""
        return self.k * self.nlevels

    @cached_property
    def ntheta(self) -> int:
        """Number of covariance parameters of this term."""
        return int(self.inds.shape[0])

    @property
    def is_scalar(self) -> bool:
        return self.k == 1

    @property
    def structural_zero(self) -> NDArray[Any]:
        """(k, k) bool: True where the correlation is zero by construction."""
        k = self.k
        # Two columns may correlate only if lambda has a free entry linking them:
        # build the free-pattern of lambda and see where lambda lambda' can be nonzero.
        pattern = np.zeros((k, k), dtype=bool)
        pattern[self.inds[:, 0], self.inds[:, 1]] = True
        reach = (pattern.astype(int) @ pattern.T.astype(int)) > 0
        return np.asarray(~reach)

    def lambda_from_theta(self, theta: NDArray[Any]) -> NDArray[Any]:
        """The k x k lower-triangular factor with ``theta`` in its free positions."""
        lam = np.zeros((self.k, self.k))
        lam[self.inds[:, 0], self.inds[:, 1]] = theta
        return lam

    def initial_theta(self) -> NDArray[Any]:
        """lambda = I: ones on the diagonal positions, zeros elsewhere."""
        return np.asarray((self.inds[:, 0] == self.inds[:, 1]).astype(float))
