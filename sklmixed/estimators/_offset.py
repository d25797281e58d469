"""Offsets: known terms of the linear predictor (``offset(expr)`` in a formula, or
the ``offset`` parameter of ``fit``, ``predict`` and ``score``).

An offset enters the model with coefficient 1: for a count observed over an
exposure ``t`` with a log link, ``offset = log(t)`` makes the model one of the rate
per unit of exposure. Formula offsets and the ``offset`` parameter add up (as in
lme4, where ``offset()`` terms and the ``offset`` argument add).
"""

from __future__ import annotations

import numpy as np

from sklmixed.exceptions import DataError


def validate_offset(offset, n: int, what: str = "X") -> np.ndarray | None:
    """The ``offset`` parameter as a new float array of length ``n`` (None passes
    through), or a :class:`DataError` that says what is wrong with it."""
    if offset is None:
        return None
    try:
        values = np.array(offset, dtype=float)  # a copy: the caller's array is theirs
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"offset must be numeric (one value per row of {what}); got values such as "
            f"{np.asarray(offset).reshape(-1)[:3].tolist()}"
        ) from exc
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(
            f"offset must be one-dimensional (one value per row of {what}); got shape "
            f"{values.shape}"
        )
    if values.shape[0] != n:
        raise DataError(f"offset has {values.shape[0]} values but {what} has {n} rows")
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"offset has {int(bad.sum())} NaN or infinite value"
            f"{'s' if bad.sum() > 1 else ''} (first at row {int(np.argmax(bad))}); a log "
            "offset needs positive exposures"
        )
    return values


def total_offset(design, offset, n: int) -> np.ndarray | None:
    """The formula's offsets plus the ``offset`` parameter (None if neither)."""
    param = validate_offset(offset, n)
    formula = getattr(design, "offset", None)
    if formula is None:
        return param
    return formula if param is None else formula + param
