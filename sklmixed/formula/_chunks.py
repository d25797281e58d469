"""Designs for data seen one chunk of rows at a time.

A fit out of core never holds all rows, but its model matrices must be those of
all rows: the same columns, categorical codings and grouping-factor levels as a
design built from the whole frame. So the levels are collected first, in one
pass over the chunks (:func:`collect_levels`, :func:`combine_levels`), and the
design is then built from one chunk completed with a row for every level it
lacks (:func:`build_chunked_design`); applied to each chunk with
:meth:`~sklmixed.formula.Design.transform`, it gives the rows' matrices with the
levels of the whole data.

Transforms whose state is learned from the rows (``scale(x)``, ``center(x)``,
``poly(x)``, splines) would learn it from that one chunk: such formulas are
refused with a message that says what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sklmixed._core._reterm import ReTerm
from sklmixed.exceptions import DataError, FormulaError
from sklmixed.formula._design import (
    Design,
    _add,
    _is_categorical,
    _levels,
    _predictor_columns,
    _Response,
    _sort_key,
    build_design,
    missing_count,
)
from sklmixed.formula._parse import parse_formula
from sklmixed.formula._text import categorical_arguments

# formulaic's transforms whose result depends on statistics of all rows.
_STATEFUL = re.compile(r"\b(center|scale|standardize|poly|bs|cs|cr|cc|te|hashed)\s*\(")


@dataclass
class FormulaColumns:
    """What a formula reads from the data, known before any row is read.

    Attributes
    ----------
    used : list of str
        Every column read (the response's first, when it is asked for).
    groupings : list of tuple of str
        The grouping factors (an interaction when longer than one column).
    categorical : set of str
        Columns that the formula or ``contrasts`` marks categorical whatever
        their type.
    """

    used: list[Any]
    groupings: list[tuple[Any, ...]]
    categorical: set[Any] = field(default_factory=set)


def formula_columns(
    formula: str, contrasts: dict[Any, Any] | None = None, *, with_response: bool = True
) -> FormulaColumns:
    """The columns ``formula`` reads; FormulaError for a transform that needs all
    rows at once (see the module).

    Examples
    --------
    >>> formula_columns("reaction ~ 1 + days + (1 + days|subj)").used
    ['reaction', 'days', 'subj']
    """
    parsed = parse_formula(formula)
    texts = [parsed.fixed] + [t for _, t in parsed.offsets]
    texts += [item.text for term in parsed.random for item in term.items if item.kind == "expr"]
    if with_response and parsed.response_expr is not None:
        texts.append(parsed.response_expr)
    for text in texts:
        found = _STATEFUL.search(text)
        if found:
            raise FormulaError(
                f"{found.group(1)}() learns its state from all rows, which a fit out of "
                "core never holds at once; compute the transformed column beforehand "
                "(or fit on data in memory)"
            )
    used: list[Any] = []
    if with_response and parsed.response is not None:
        _add(used, _Response(parsed.response, parsed.response_expr).columns())
    _add(used, _predictor_columns(parsed))
    categorical = set(map(str, contrasts or {})) | set(categorical_arguments(parsed.fixed))
    for term in parsed.random:
        for item in term.items:
            if item.kind == "fulldummy":
                categorical.add(item.parts[0])
            elif item.kind == "expr":
                categorical |= set(categorical_arguments(item.text))
    groupings = []
    for term in parsed.random:
        if term.group not in groupings:
            groupings.append(tuple(term.group))
    return FormulaColumns(used, groupings, categorical)


@dataclass
class ChunkCheck:
    """What the first pass over the chunks finds: rows, missing values per
    column, and the distinct values of every column whose levels matter."""

    n: int
    missing: dict[Any, int]
    levels: dict[tuple[Any, ...], pd.DataFrame]


def collect_levels(chunk: pd.DataFrame, columns: FormulaColumns) -> ChunkCheck:
    """One chunk's rows, missing values and distinct levels (see :class:`ChunkCheck`).

    Distinct values are kept for the grouping factors (their column tuples) and
    for every categorical column (text, pandas Categorical, or marked so).
    """
    missing = {col: missing_count(chunk[col]) for col in columns.used}
    keys: list[tuple[Any, ...]] = []
    for col in columns.used:
        if col in columns.categorical or _is_categorical(chunk[col]):
            keys.append((col,))
    for g in columns.groupings:
        if g not in keys:
            keys.append(g)
    levels = {key: chunk[list(key)].drop_duplicates().reset_index(drop=True) for key in keys}
    return ChunkCheck(int(chunk.shape[0]), missing, levels)


def combine_levels(a: ChunkCheck, b: ChunkCheck) -> ChunkCheck:
    """Both chunks' :class:`ChunkCheck` (``a``'s rows first)."""
    missing = {col: a.missing[col] + b.missing[col] for col in a.missing}
    levels = {}
    for key in a.levels.keys() | b.levels.keys():
        parts = [x.levels[key] for x in (a, b) if key in x.levels]
        both = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        levels[key] = both.drop_duplicates().reset_index(drop=True)
    return ChunkCheck(a.n + b.n, missing, levels)


def _grouping_levels(values: pd.DataFrame, columns: tuple[Any, ...]) -> list[Any]:
    """A grouping factor's levels, sorted as ``_Grouping.fit`` sorts them."""
    if len(columns) == 1:
        return _levels(values[columns[0]])
    keys = list(zip(*(values[c] for c in columns)))
    return sorted(set(keys), key=lambda t: tuple(map(_sort_key, t)))


def build_chunked_design(
    formula: str,
    sample: pd.DataFrame,
    check: ChunkCheck,
    contrasts: dict[Any, Any] | None = None,
    *,
    with_response: bool = True,
) -> Design:
    """The design of all rows from one chunk ``sample`` and the levels in ``check``.

    The returned design's ``X`` has no rows and ``y`` is None; its ``reterms``
    hold the levels of all rows but no rows either (``refs`` and ``z`` empty).
    Apply :meth:`Design.transform` to each chunk for its matrices.
    """
    if sample.shape[0] == 0:
        raise DataError("cannot fit a model to empty data (0 rows)")
    # One row for every level the sample lacks, so that the categorical codings
    # (fixed and random parts) see every level of the data.
    extra = []
    for key, values in check.levels.items():
        if len(key) != 1:
            continue
        col = key[0]
        lacking = values[col][~values[col].isin(sample[col])]
        if lacking.shape[0]:
            rows = sample.iloc[np.zeros(lacking.shape[0], dtype=np.int64)].copy()
            rows[col] = lacking.to_numpy()
            extra.append(rows)
    frame = pd.concat([sample, *extra], ignore_index=True) if extra else sample
    design = build_design(formula, frame, contrasts, with_response=with_response)
    stubs = []
    for builder, term in zip(design._builders, design.reterms):
        columns = tuple(builder.grouping.columns)
        levels = _grouping_levels(check.levels[columns], columns)
        builder.grouping.levels = levels
        stubs.append(
            ReTerm(
                term.name,
                np.zeros(0, dtype=np.int64),
                tuple(levels),
                np.zeros((0, term.k)),
                term.cnames,
                term.inds,
            )
        )
    design.reterms = stubs
    design.X = np.zeros((0, design.X.shape[1]))
    design.y = None
    design.offset = None
    return design


def chunk_terms(design: Design, parts: list[tuple[Any, Any]], terms: list[ReTerm]) -> list[ReTerm]:
    """The chunk's random-effects terms, in the order of ``terms`` (stubs of
    ``design.reterms``), from ``parts`` = ``design.transform(chunk)[1]``."""
    by_id = {id(t): (refs, z) for t, (refs, z) in zip(design.reterms, parts)}
    out = []
    for t in terms:
        refs, z = by_id[id(t)]
        if refs.shape[0] and int(refs.min()) < 0:
            raise DataError(
                f"grouping factor {t.name!r} has a level that the first pass over the "
                "data did not see: did the data change between passes?"
            )
        out.append(ReTerm(t.name, refs, t.levels, z, t.cnames, t.inds))
    return out


__all__ = [
    "ChunkCheck",
    "FormulaColumns",
    "build_chunked_design",
    "chunk_terms",
    "collect_levels",
    "combine_levels",
    "formula_columns",
]
