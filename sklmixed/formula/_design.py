"""Model matrices from a parsed formula and a DataFrame.

The fixed-effects matrix comes from formulaic (or, for a formula of plain numeric
columns, a direct fast path), with column names rewritten to MixedModels.jl's
(``dept: D02``, ``service: Y & dept: D02``). Random-effects terms become
:class:`~sklmixed._core._reterm.ReTerm` records: codes of the grouping factor's
levels and the term's model-matrix columns, amalgamated per grouping factor.
Everything needed to rebuild the matrices for new data is kept in the Design.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from numpy.typing import NDArray
from pandas.api.extensions import ExtensionArray

from sklmixed._core._reterm import ReTerm
from sklmixed.exceptions import (
    DataError,
    FormulaError,
    MissingColumnError,
    NumericTextWarning,
    user_stacklevel,
)
from sklmixed.formula._context import CODING_TEXT, CONTEXT
from sklmixed.formula._parse import ParsedFormula, RandomTermSpec, parse_formula
from sklmixed.formula._text import categorical_arguments, formulaic_message, quote, with_codings
from sklmixed.formula._text import columns as text_columns

CODINGS = ("dummy", "effects", "helmert")

# a column's values: an ndarray for numpy dtypes, else the column's ExtensionArray
ArrayLike: TypeAlias = NDArray[Any] | ExtensionArray


# ----------------------------------------------------------------- columns


class _Columns(dict[Any, ArrayLike]):
    """The values of the columns of ``frame`` (``cols[col]``), each looked up
    once, on first use, and their Series where pandas' methods are needed
    (``cols.series(col)``). Read-only: these are the frame's own columns.

    pandas builds a new Series on every ``frame[col]`` (9 us, ~15 us inside a fit;
    a small fit reads two or three columns, a tenth of its design), where pandas'
    accessor of the column's array costs 0.6 us. That accessor is pandas' own (for
    read-only use), so it serves a label of one column of a DataFrame whose
    lookups are pandas'; anything else (a subclass's lookup, duplicated labels, a
    MultiIndex, a pandas without it) goes through the Series. A dict, so that a
    column read again costs no call.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._series: dict[Any, pd.Series] = {}
        self._coded: dict[Any, tuple[list[Any], NDArray[Any]]] = {}

    def __missing__(self, col: Any) -> ArrayLike:
        """The values as ``frame[col]`` holds them: an ndarray (read-only, like a
        Series' ``to_numpy()``) or the column's ExtensionArray."""
        frame = self.frame
        loc = frame.columns.get_loc(col)
        if (
            isinstance(loc, int)
            and _COLUMN_ARRAY is not None
            and type(frame).__getitem__ is pd.DataFrame.__getitem__
        ):
            values = _COLUMN_ARRAY(frame, loc)
        else:
            values = _as_values(self.series(col))
        if isinstance(values, np.ndarray) and values.flags.writeable:
            values = values.view()
            values.flags.writeable = False  # the user's data: never written through
        self[col] = values
        return values

    def series(self, col: Any) -> pd.Series:
        """Column ``col`` as a Series (``frame[col]``)."""
        if col not in self._series:
            self._series[col] = self.frame[col]
        return self._series[col]

    def levels_and_codes(self, col: Any) -> tuple[list[Any], NDArray[Any]]:
        """:func:`_levels_and_codes` of column ``col``, computed once (a column
        can be both a categorical predictor and a grouping factor)."""
        if col not in self._coded:
            self._coded[col] = _levels_and_codes(self[col])
        return self._coded[col]


_COLUMN_ARRAY = getattr(pd.DataFrame, "_get_column_array", None)


def _as_values(column: pd.Series | ArrayLike) -> ArrayLike:
    """A Series' values (``to_numpy()`` for a numpy dtype, its ExtensionArray
    otherwise); values as they are."""
    if not isinstance(column, pd.Series):
        return column
    return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array


def _as_float(values: ArrayLike) -> NDArray[Any]:
    """``Series.to_numpy(dtype=float)`` of the column's values."""
    if isinstance(values, np.ndarray):
        return np.asarray(values, dtype=np.float64)
    return np.asarray(values.to_numpy(dtype=np.float64))


def _plain_matrix(cols: _Columns, columns: list[Any]) -> NDArray[Any]:
    """The named columns as floats, None for an intercept column of ones: one
    matrix filled in place (``np.column_stack`` of the pieces makes a vector per
    column and costs twice as much)."""
    out = np.empty((len(cols.frame.index), len(columns)))
    for j, col in enumerate(columns):
        if col is None:
            out[:, j] = 1.0
            continue
        values = cols[col]
        # numpy's own cast of an ndarray, as np.asarray(values, dtype=float)
        out[:, j] = values if isinstance(values, np.ndarray) else _as_float(values)
    return out


def _is_categorical(column: pd.Series | ArrayLike) -> bool:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return False  # the common case, without pandas' dtype dispatch (~3 us)
    return not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) or (
        isinstance(dtype, pd.CategoricalDtype)
    )


def _levels(column: pd.Series | ArrayLike) -> list[Any]:
    """Levels in MixedModels.jl order: a Categorical's categories (those present),
    otherwise the sorted distinct values."""
    return _levels_and_codes(column)[0]


def _levels_and_codes(column: pd.Series | ArrayLike) -> tuple[list[Any], NDArray[Any]]:
    """(levels, code of each value) of a column or its values; codes are -1 for
    missing values."""
    array: Any = _as_values(column) if isinstance(column, pd.Series) else column
    dtype = array.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(array.codes)
        present = np.unique(codes[codes >= 0])
        remap = np.full(len(dtype.categories) + 1, -1)
        remap[present] = np.arange(present.shape[0])
        return [dtype.categories[i] for i in present], remap[codes]
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        found = _arrow_levels_and_codes(array)
        if found is not None:
            return found
    values = array if isinstance(array, np.ndarray) else array.to_numpy()
    if (
        values.dtype == object
        and values.shape[0] <= _FEW_VALUES
        and pd.api.types.infer_dtype(values, skipna=False) == "string"
    ):
        return _text_levels_and_codes(values)
    try:
        # hashing, then sorting only the distinct values (np.unique sorts all n)
        codes, levels = pd.factorize(values, sort=True)
        return list(levels), np.asarray(codes, dtype=np.int64)
    except TypeError:  # mixed types: sort by their text
        levels = sorted(pd.unique(values).tolist(), key=str)
        return levels, pd.Index(levels).get_indexer(values)


# Up to this many values, text is coded in Python (a set, a sort and a dict lookup
# per value, C loops all). Inside a fit, with nothing in the caches, Arrow's hashing
# kernel costs 45-75 us and pandas' factorize 55-75 us whatever the size; the
# Python coding 13 us for dyestuff2's 30 values and ~40 us for sleepstudy's 180
# (~0.2 us a value), so that hashing wins beyond a few hundred values.
_FEW_VALUES = 256


def _text_levels_and_codes(strings: Any) -> tuple[list[Any], NDArray[Any]]:
    """``_levels_and_codes`` of a sequence of str (no missing values): sorted as
    Python sorts str (by code point), as pandas sorts them."""
    levels = sorted(set(strings))
    position = {level: i for i, level in enumerate(levels)}
    codes = np.fromiter(map(position.__getitem__, strings), dtype=np.int64, count=len(strings))
    return levels, codes


def _arrow_levels_and_codes(array: ArrayLike) -> tuple[list[Any], NDArray[Any]] | None:
    """``_levels_and_codes`` of an Arrow-backed text column without nulls (None
    otherwise): Arrow's hashing on its own strings, then a sort of the distinct
    values only. pandas would first convert every value to a Python object
    (27 us against 20 us for penicillin's 144 rows, 470 us against 160 us for
    10000 rows of 100 levels). Sorted as Python sorts str (by code point), as
    pandas sorts them."""
    import pyarrow as pa

    values = pa.array(array)
    if isinstance(values, pa.ChunkedArray):  # one dictionary for all the chunks
        values = values.combine_chunks()
    if values.null_count:
        return None
    if len(values) <= _FEW_VALUES:
        return _text_levels_and_codes(values.to_pylist())
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    found = encoded.dictionary.to_pylist()  # in order of first appearance
    levels = sorted(found)
    codes = encoded.indices.to_numpy()
    if levels == found:  # rows grouped by level in sorted order, as most data sets
        return levels, codes.astype(np.int64)
    position = {level: i for i, level in enumerate(levels)}
    rank = np.array([position[v] for v in found], dtype=np.int64)
    return levels, rank[codes]


def level_label(level: Any) -> str:
    """How a level prints in a name: integers without '.0'."""
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


@dataclass
class _CatColumn:
    """A categorical column of a formula-free design, dummy coded (the first
    level is the reference) with the training levels."""

    name: str
    levels: list[Any]

    def names(self) -> list[str]:
        return [f"{self.name}: {level_label(v)}" for v in self.levels[1:]]

    def codes(self, series: pd.Series) -> NDArray[Any]:
        idx = pd.Index(self.levels).get_indexer(series)
        if np.any(idx < 0):
            unseen = sorted(map(str, pd.unique(series[idx < 0])))
            raise DataError(f"column {self.name!r} has levels not seen in fit: {unseen[:10]}")
        return np.asarray(idx)

    def matrix(self, series: pd.Series) -> NDArray[Any]:
        return np.asarray(np.eye(len(self.levels))[:, 1:][self.codes(series)])


# ------------------------------------------------------ what formulaic reads


@dataclass
class _Prep:
    """How the columns that formulaic reads are handed to it.

    Categorical columns (strings, categoricals, columns named in ``contrasts`` or
    in ``C(x)``) become Categoricals with the training levels, so that new data
    is coded the same way and unseen levels are an error; integer columns become
    float64, because formulaic evaluates ``I(days*20)`` in the column's own dtype
    and an int8 column would wrap around (R computes in doubles).
    """

    categories: dict[str, list[Any]] = field(default_factory=dict)
    floats: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, cols: _Columns, columns: list[str], categorical: set[str]) -> _Prep:
        prep = cls()
        for col in columns:
            values = cols[col]
            if col in categorical or _is_categorical(values):
                if col not in categorical:
                    _warn_numeric_text(col, cols.series(col))
                prep.categories[col] = cols.levels_and_codes(col)[0]
            elif pd.api.types.is_integer_dtype(values.dtype):
                prep.floats.append(col)
        return prep

    def labels(self) -> dict[str, dict[str, str]]:
        """Per categorical column, formulaic's text of each level -> ours."""
        return {
            col: {str(v): level_label(v) for v in levels} for col, levels in self.categories.items()
        }

    def apply(self, cols: _Columns, fitting: bool = False) -> pd.DataFrame:
        """A shallow copy of the frame of ``cols`` with the columns converted (the
        caller's frame is never modified); the frame itself when nothing needs
        converting. New data (not ``fitting``) must not hold levels that the
        training data did not."""
        df = cols.frame
        if not self.categories and not self.floats:
            return df
        for col, levels in self.categories.items():
            if fitting:
                break  # the levels are those of this very frame
            unseen = ~cols.series(col).isin(levels)
            if unseen.any():
                raise DataError(
                    f"column {col!r} has levels not seen in fit: "
                    f"{sorted(map(str, pd.unique(cols.series(col)[unseen])))[:10]}"
                )
        out = df.copy(deep=False)
        for col in self.floats:
            out[col] = cols.series(col).to_numpy(dtype=np.float64)
        for col, levels in self.categories.items():
            series = cols.series(col)
            if fitting:
                # the codes found with the levels (fit): pandas would look every
                # value up again, 5 of the 11 ms of verbagg's design (7584 rows)
                ordered = isinstance(series.dtype, pd.CategoricalDtype) and series.dtype.ordered
                codes = cols.levels_and_codes(col)[1]
                out[col] = pd.Categorical.from_codes(codes, categories=levels, ordered=ordered)
            else:
                out[col] = pd.Categorical(series, categories=levels)
        return out


def _warn_numeric_text(col: str, series: pd.Series) -> None:
    """Warn when a text column used as a categorical predictor holds only numbers
    (a CSV read back as text): the user most likely meant the numeric covariate.
    ``C(x)`` or a ``contrasts`` entry says categorical on purpose and is silent."""
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(series):
        return
    values = pd.unique(series.dropna())
    if len(values) < 3 or not all(isinstance(v, str) for v in values):
        return  # two levels code the same model either way
    if pd.to_numeric(pd.Series(values), errors="coerce").notna().all():
        warnings.warn(
            f"column {col!r} holds numbers written as text ({len(values)} distinct values "
            f"such as {list(values[:3])}); it is coded as categorical, one coefficient per "
            f"level. Convert it with pd.to_numeric for a numeric covariate, or write "
            f"C({col}) to keep it categorical without this warning",
            NumericTextWarning,
            stacklevel=user_stacklevel(),
        )


def _model_matrix(text: str, data: pd.DataFrame, what: str) -> Any:
    """formulaic's model matrix of ``text``; its errors as FormulaError naming
    ``what``, without formulaic's terminal colour codes."""
    try:
        # log(0), 1/0: the values are checked (and named) afterwards
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return model_matrix(text, data, na_action="raise", context=CONTEXT)
    except Exception as exc:  # formulaic's evaluation errors are many classes
        message, _ = formulaic_message(exc)
        raise FormulaError(f"cannot evaluate {what}: {message}") from None


def _apply_spec(spec: Any, data: pd.DataFrame) -> Any:
    """A fitted formulaic spec applied to new data (checked afterwards)."""
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return spec.get_model_matrix(data, context=CONTEXT)
    except Exception as exc:  # formulaic's evaluation errors are many classes
        message, _ = formulaic_message(exc)
        raise DataError(f"cannot evaluate the formula on these data: {message}") from None


def _check_matrix(matrix: NDArray[Any], names: list[Any], what: str) -> None:
    """Values computed by the formula (log(0), 1/x, ...) must be finite."""
    bad = ~np.isfinite(matrix)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise DataError(
            f"{what} column{'s' if len(cols) > 1 else ''} {', '.join(map(repr, cols))} "
            f"{'have' if len(cols) > 1 else 'has'} {int(bad.sum())} NaN or infinite "
            "value(s) computed from the data (a log or division of zero or a negative?)"
        )


# ------------------------------------------------------------ fixed part


@dataclass
class _FixedPart:
    """Builds X: formulaic's model spec, or plain columns on the fast path."""

    names: list[Any]
    display: str
    spec: Any = None  # formulaic ModelSpec
    plain: list[Any] | None = None  # fast path: [None for intercept | column name]

    def transform(self, cols: _Columns) -> NDArray[Any]:
        """X for the columns of a frame prepared by the design's :class:`_Prep`."""
        if self.plain is not None:
            return _plain_matrix(cols, self.plain)
        mm = _apply_spec(self.spec, cols.frame)
        return np.asarray(mm, dtype=float)


_FACTOR = re.compile(r"^(?:C\((?P<cname>[^,()]+)(?:,.*)?\)|(?P<name>.+?))\[(?P<level>.*)\]$")
_CODING_PREFIX = re.compile(r"^[A-Z]+\.")  # formulaic's T., S., H. (and our E.)


def _split_interaction(name: str) -> list[str]:
    """Split a formulaic column name at ':' outside brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


def mixedmodels_name(name: str, level_labels: dict[Any, Any]) -> str:
    """formulaic's ``dept[T.D02]`` / ``service[T.Y]:dept[T.D02]`` -> ``dept: D02`` /
    ``service: Y & dept: D02``; ``Intercept`` -> ``(Intercept)``.

    Examples
    --------
    >>> mixedmodels_name("C(g, contr.sum)[S.a]:x", {})
    'g: a & x'
    """
    if name == "Intercept":
        return "(Intercept)"
    out = []
    for part in _split_interaction(name):
        m = _FACTOR.match(part)
        if m:
            var = (m.group("cname") or m.group("name")).strip().strip("`")
            level = m.group("level")
            labels = level_labels.get(var, {})
            if level not in labels:  # a coding's prefix, unless the level has one
                level = _CODING_PREFIX.sub("", level)
            out.append(f"{var}: {labels.get(level, level)}")
        else:
            out.append(part)
    return " & ".join(out)


@lru_cache(maxsize=256)  # formulaic's parse costs 0.3 ms a fit of the same formula
def _fixed_display(fixed_text: str) -> str:
    """The fixed part as StatsModels prints it: expanded, '&' for interactions."""
    formula = Formula(fixed_text)
    terms = [str(t) for t in formula]
    has_intercept = "1" in terms
    terms = [t.replace(":", " & ") for t in terms if t != "1"]
    head = ["1"] if has_intercept else ["0"]
    return " + ".join(head + terms)


@dataclass(frozen=True)
class _PlainTerms:
    """A fixed part written as a sum of names and ``1``/``0``/``-1``."""

    pieces: tuple[str, ...]
    columns: tuple[str | None, ...]  # of X: None for the intercept, then the names
    names: tuple[str, ...]
    display: str


@lru_cache(maxsize=256)
def _plain_terms(fixed_text: str) -> _PlainTerms | None:
    """The fixed part's terms if it is a sum of names and ``1``/``0``/``-1``; None
    when it subtracts a term. Whether the names are numeric columns depends on
    the data."""
    if "-" in fixed_text.replace("-1", ""):
        return None
    pieces = tuple(p.strip() for p in fixed_text.split("+"))
    intercept = "0" not in pieces and "-1" not in pieces
    plain_cols: list[str | None] = [None] if intercept else []
    plain_cols += [p for p in pieces if p not in ("1", "0", "-1") and p not in plain_cols]
    names = tuple("(Intercept)" if c is None else c for c in plain_cols)
    display = " + ".join((["1"] if intercept else ["0"]) + [c for c in plain_cols if c])
    return _PlainTerms(pieces, tuple(plain_cols), names, display)


def _fixed_is_plain(parsed: ParsedFormula, cols: _Columns, categorical: set[str]) -> bool:
    """Whether the fixed part is an intercept and numeric columns (no formulaic)."""
    terms = _plain_terms(parsed.fixed)
    if terms is None:
        return False
    for p in terms.pieces:
        if p in ("1", "0", "-1"):
            continue
        if p not in cols.frame.columns or p in categorical or _is_categorical(cols[p]):
            return False
    return True


def _build_fixed(
    parsed: ParsedFormula,
    cols: _Columns,
    codings: dict[str, str],
    labels: dict[str, dict[str, str]],
    plain: bool,
) -> tuple[_FixedPart, NDArray[Any]]:
    if plain:
        terms = _plain_terms(parsed.fixed)
        assert terms is not None  # plain: checked by _fixed_is_plain
        part = _FixedPart(names=list(terms.names), display=terms.display, plain=list(terms.columns))
        return part, part.transform(cols)
    text = with_codings(parsed.fixed, codings)
    mm = _model_matrix(text, cols.frame, f"the fixed-effects part {parsed.fixed!r}")
    names = [mixedmodels_name(str(c), labels) for c in mm.columns]
    part = _FixedPart(names=names, display=_fixed_display(parsed.fixed), spec=mm.model_spec)
    return part, np.asarray(mm, dtype=float)


# ---------------------------------------------------------------- offsets


@dataclass
class _Offsets:
    """The formula's ``offset(expr)`` terms: evaluated on the prepared fitting data
    and on new data, and added up (several offsets add, as in R).

    ``terms`` holds (``expr`` as written, formulaic text ``I(expr)``) pairs; the
    formulaic specs are kept at fit so that stateful transforms are reused.
    """

    terms: tuple[tuple[str, str], ...]
    specs: list[Any] = field(default_factory=list)

    def columns(self) -> tuple[str, ...]:
        out: list[str] = []
        for _, text in self.terms:
            _add(out, text_columns(text))
        return tuple(out)

    def fit(self, df: pd.DataFrame) -> NDArray[Any]:
        """The total offset of the (prepared) fitting data; keeps the specs."""
        self.specs = []
        total = np.zeros(df.shape[0])
        for expr, text in self.terms:
            try:
                # NaN (the log of a negative exposure) passes here and is reported
                # by _values, naming the term and the row
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    mm = model_matrix("0 + " + text, df, na_action="ignore", context=CONTEXT)
            except Exception as exc:  # formulaic's evaluation errors are many classes
                message, _ = formulaic_message(exc)
                raise FormulaError(f"cannot evaluate offset({expr}): {message}") from None
            self.specs.append(mm.model_spec)
            total = total + self._values(expr, mm)
        return total

    def transform(self, df: pd.DataFrame) -> NDArray[Any]:
        """The total offset of new (prepared) data."""
        total = np.zeros(df.shape[0])
        for (expr, _), spec in zip(self.terms, self.specs):
            total = total + self._values(expr, _apply_spec(spec, df))
        return total

    @staticmethod
    def _values(expr: str, mm: Any) -> NDArray[Any]:
        if mm.shape[1] != 1:
            raise FormulaError(
                f"offset({expr}) must be one numeric value per row; it gives "
                f"{mm.shape[1]} columns (is a categorical column inside?)"
            )
        values = np.asarray(mm, dtype=float)[:, 0]
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(
                f"offset({expr}) has {int(bad.sum())} NaN or infinite value"
                f"{'s' if bad.sum() > 1 else ''} (first at row {int(np.argmax(bad))}); "
                "a log offset needs positive exposures"
            )
        return values


# ---------------------------------------------------------- random terms


def _term_text(spec: RandomTermSpec, codings: dict[str, str]) -> tuple[str, bool]:
    """A random term's left side as a formulaic formula, before the codings of
    ``contrasts`` are applied; and whether formulaic's intercept column is to be
    dropped.

    The columns are coded as in the fixed part: with an intercept in the term a
    categorical loses its reference level; after ``0 +`` the first categorical
    gets all its levels (R's and StatsModels' rule); ``fulldummy(x)`` gets all
    levels whatever the intercept. A term written with neither ``1`` nor ``0``
    (``(days | g)`` beside ``(1 | g)``) is coded as if its intercept were there
    and then goes without it, as MixedModels.jl does.
    """
    parts = []
    for item in spec.items:
        if item.kind == "column":
            parts.append(quote(item.parts[0]))
        elif item.kind == "fulldummy":
            name = item.parts[0]
            coding = codings.get(name, CODING_TEXT["dummy"])
            parts.append(f"C({quote(name)}, {coding}, spans_intercept=False)")
        elif item.kind == "interaction":
            parts.append(":".join(quote(p) for p in item.parts))
        else:
            parts.append(item.text)
    zero = spec.explicit_zero and not spec.intercept
    return " + ".join(["0" if zero else "1", *parts]), not spec.intercept and not zero


@dataclass
class _ReColumns:
    """The model-matrix columns of one random-effects term (before the group):
    plain numeric columns directly, anything else through formulaic."""

    spec: RandomTermSpec
    plain: list[str] | None = None  # fast path: numeric columns after the intercept
    text: str = ""  # formulaic formula of the term's columns
    drop_intercept: bool = False
    model_spec: Any = None
    names: list[Any] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        spec: RandomTermSpec,
        cols: _Columns,
        codings: dict[str, str],
        categorical: set[str],
    ) -> _ReColumns:
        plain = []
        for item in spec.items:
            col = item.parts[0] if item.kind == "column" else None
            if col is None or col in categorical or _is_categorical(cols[col]):
                text, drop = _term_text(spec, codings)
                return cls(spec, text=text, drop_intercept=drop)
            plain.append(col)
        return cls(spec, plain=plain)

    def columns(self) -> tuple[str, ...]:
        """Data columns read through formulaic (none on the fast path)."""
        return () if self.plain is not None else text_columns(self.text)

    def fit(
        self, cols: _Columns, codings: dict[str, str], labels: dict[str, dict[str, str]]
    ) -> NDArray[Any]:
        if self.plain is not None:
            self.names = (["(Intercept)"] if self.spec.intercept else []) + list(self.plain)
            return self.transform(cols)
        what = f"the random-effects term {self.spec.display()}"
        mm = _model_matrix(with_codings(self.text, codings), cols.frame, what)
        self.model_spec = mm.model_spec
        raw = [str(c) for c in mm.columns]
        kept = [c for c in raw if not (self.drop_intercept and c == "Intercept")]
        self.names = [mixedmodels_name(c, labels) for c in kept]
        return self._select(mm)

    def _select(self, mm: Any) -> NDArray[Any]:
        z = np.asarray(mm, dtype=float)
        raw = [str(c) for c in mm.columns]
        if self.drop_intercept and "Intercept" in raw:
            z = np.delete(z, raw.index("Intercept"), axis=1)
        return z

    def transform(self, cols: _Columns) -> NDArray[Any]:
        if self.plain is not None:
            return _plain_matrix(cols, [None, *self.plain] if self.spec.intercept else self.plain)
        return self._select(_apply_spec(self.model_spec, cols.frame))


# -------------------------------------------------------------- response


@dataclass
class _Response:
    """The left-hand side: a column (values as they are, labels included) or an
    expression such as ``log(reaction)`` (evaluated by formulaic, one column)."""

    name: str
    expr: str | None = None
    spec: Any = None

    def columns(self) -> tuple[str, ...]:
        return text_columns(self.expr) if self.expr is not None else (self.name,)

    def values(self, cols: _Columns, keep: bool = False) -> NDArray[Any]:
        """The response of a frame's columns; ``keep`` stores formulaic's spec (at
        fit), so that stateful transforms such as ``scale(y)`` are reused afterwards."""
        if self.expr is None:
            values = cols[self.name]  # as Series.to_numpy() gives them
            return values if isinstance(values, np.ndarray) else np.asarray(values.to_numpy())
        data = _Prep.fit(cols, list(self.columns()), set()).apply(cols, fitting=True)
        if self.spec is not None:
            mm = _apply_spec(self.spec, data)
        else:
            mm = _model_matrix("0 + " + self.expr, data, f"the response {self.name!r}")
            if keep:
                self.spec = mm.model_spec
        if mm.shape[1] != 1:
            raise FormulaError(
                f"the response {self.name!r} must be one numeric column; it gives "
                f"{mm.shape[1]} columns {[str(c) for c in mm.columns][:5]}"
            )
        y = np.asarray(mm, dtype=float)[:, 0]
        _check_matrix(y[:, None], [self.name], "response")
        return y


@dataclass
class _Grouping:
    """Codes of a grouping factor (a column or an interaction of columns)."""

    columns: tuple[Any, ...]
    levels: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " & ".join(self.columns)

    def _keys(self, cols: _Columns) -> pd.Series:
        if len(self.columns) == 1:
            return cols.series(self.columns[0])
        keys = zip(*(cols.series(c) for c in self.columns))
        return pd.Series(list(keys), index=cols.frame.index)

    def fit(self, cols: _Columns) -> NDArray[Any]:
        """Codes of the rows of a frame's columns (learning the levels)."""
        if len(self.columns) == 1:
            self.levels, refs = cols.levels_and_codes(self.columns[0])
        else:
            keys = self._keys(cols)
            self.levels = sorted(set(keys.tolist()), key=lambda t: tuple(map(_sort_key, t)))
            refs = pd.Index(self.levels, tupleize_cols=False).get_indexer(keys)
        # new arrays, never the data's: no copy needed when already int64
        return refs.astype(np.int64, copy=False)

    def transform(self, cols: _Columns, new_level_codes: bool = False) -> NDArray[Any]:
        index = pd.Index(self.levels, tupleize_cols=False)
        keys = self._keys(cols)
        refs = np.asarray(index.get_indexer(keys).astype(np.int64))
        unseen = refs < 0
        if new_level_codes and unseen.any():
            # each distinct unseen level its own code after the training levels,
            # numbered in order of first appearance
            codes, _ = pd.factorize(keys[unseen])
            refs[unseen] = len(self.levels) + codes.astype(np.int64)
        return refs


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float, np.number)) else (1, str(value))


# ---------------------------------------------------------------- design


@dataclass
class _TermBuilder:
    """One amalgamated grouping factor: its pieces and where their columns go."""

    grouping: _Grouping
    pieces: list[Any]  # of _ReColumns
    zerocorr: list[Any]  # per piece

    def plain(self) -> bool:
        """Whether every column is a data column as it is (no formulaic)."""
        for piece in self.pieces:
            if piece.plain is None:
                return False
        return True

    def fit(
        self,
        cols: _Columns,
        prepared: _Columns,
        codings: dict[str, str],
        labels: dict[str, dict[str, str]],
    ) -> ReTerm:
        """The term of the fitting data (``cols``, and ``prepared`` for formulaic)."""
        refs = self.grouping.fit(cols)
        zs = [piece.fit(prepared, codings, labels) for piece in self.pieces]
        plain = self.plain()
        # a plain piece's matrix is new: alone, it is the term's as it is
        z = zs[0] if plain and len(zs) == 1 else np.hstack(zs)
        cnames = [nm for piece in self.pieces for nm in piece.names]
        if not plain:
            _check_matrix(z, cnames, f"random-effects ({self.grouping.name})")
        if len(set(cnames)) < len(cnames):
            dup = sorted({c for c in cnames if cnames.count(c) > 1})
            raise FormulaError(
                f"random-effects columns {dup} appear twice for grouping factor "
                f"{self.grouping.name!r}"
            )
        if len(self.grouping.levels) < 2:
            raise DataError(
                f"grouping factor {self.grouping.name!r} has a single level "
                f"({self.grouping.levels[0]!r}); a random effect needs at least two levels"
            )
        return ReTerm(
            self.grouping.name, refs, tuple(self.grouping.levels), z, tuple(cnames), self.inds()
        )

    def inds(self) -> NDArray[Any]:
        layout = []
        for piece, zc in zip(self.pieces, self.zerocorr):
            layout.append((len(piece.names), bool(zc)))
        return _inds(tuple(layout)).copy()  # a copy: the cached array stays as computed


@lru_cache(maxsize=256)  # a few layouts recur: (1|g), (1 + x|g), zerocorr(...)
def _inds(layout: tuple[tuple[int, bool], ...]) -> NDArray[Any]:
    """The free positions of lambda for pieces of (k, zerocorr), in column-major order."""
    pos: list[tuple[int, int]] = []
    off = 0
    for k, zc in layout:
        if zc:
            pos.extend((off + i, off + i) for i in range(k))
        else:  # the lower triangle
            pos.extend((off + i, off + j) for i in range(k) for j in range(i + 1))
        off += k
    pos.sort(key=lambda rc: (rc[1], rc[0]))  # column-major
    return np.asarray(pos, dtype=np.int64).reshape(-1, 2)


@dataclass
class Design:
    """Model matrices of a mixed model and what is needed to rebuild them.

    Attributes
    ----------
    response_name : str or None
        The left-hand side as written (a column, or an expression like ``log(y)``).
    y : ndarray or None
        The response: a column exactly as in the data (not converted), an
        expression's values as floats; None when the response was not asked for.
    X : ndarray of shape (n, p)
    coef_names : list[Any] of str
    reterms : list[Any] of ReTerm
        One per grouping factor, in formula order.
    formula_text : str
        The formula as MixedModels.jl prints it.
    used_columns : list[Any] of str
        Every column read, the response's included.
    predictor_columns : list[Any] of str
        The columns that new data needs for :meth:`transform` (and the offsets).
    offset : ndarray of shape (n,) or None
        The sum of the formula's ``offset(expr)`` terms on the fitting data; None
        without any.
    """

    response_name: str | None
    y: NDArray[Any] | None
    X: NDArray[Any]
    coef_names: list[Any]
    reterms: list[Any]
    formula_text: str
    used_columns: list[Any]
    _fixed: _FixedPart = None  # type: ignore[assignment]
    _builders: list[Any] = field(default_factory=list)
    predictor_columns: list[Any] = field(default_factory=list)
    _prep: _Prep = field(default_factory=_Prep)
    _response: _Response | None = None
    offset: NDArray[Any] | None = None
    _offsets: _Offsets | None = None

    @property
    def has_intercept(self) -> bool:
        return "(Intercept)" in self.coef_names

    @property
    def has_response(self) -> bool:
        """Whether the formula has a left-hand side for :meth:`response`."""
        return self._response is not None

    def transform(
        self, data: pd.DataFrame, new_level_codes: bool = False
    ) -> tuple[NDArray[Any], list[tuple[NDArray[Any], NDArray[Any]]]]:
        """X and, per random-effects term, (refs, z) for new data; refs index the
        training levels, -1 for a level not seen in fit (with ``new_level_codes``,
        ``nlevels + j`` for the j-th distinct unseen level instead, so that rows
        sharing an unseen level can be told apart from rows of another)."""
        _check_columns(data, self.predictor_columns)
        cols = _check_finite(data, self.predictor_columns)
        prepared = _prepared_columns(self._prep, cols)
        X = self._fixed.transform(prepared)
        # only values computed by formulaic can be NaN or infinite: plain columns
        # were checked with the data (~5 us a matrix)
        if self._fixed.plain is None:
            _check_matrix(X, self.coef_names, "fixed-effects")
        parts = []
        for builder in self._builders:
            refs = builder.grouping.transform(cols, new_level_codes)
            z = np.hstack([piece.transform(prepared) for piece in builder.pieces])
            if not builder.plain():
                names = [nm for p in builder.pieces for nm in p.names]
                _check_matrix(z, names, "random-effects")
            parts.append((refs, z))
        return X, parts

    def offset_for(self, data: pd.DataFrame) -> NDArray[Any] | None:
        """The formula's offsets evaluated on new data (None without any)."""
        if self._offsets is None:
            return None
        needed = list(self._offsets.columns())
        _check_columns(data, needed)
        _check_finite(data, needed)
        return self._offsets.transform(self._prep.apply(_Columns(data)))

    def response(self, data: pd.DataFrame) -> NDArray[Any]:
        """The formula's response evaluated on ``data`` (for scoring new data).

        Examples
        --------
        >>> from sklmixed import load_dataset
        >>> df = load_dataset("sleepstudy")
        >>> design = build_design("log(reaction) ~ 1 + days + (1|subj)", df)
        >>> design.response(df.head(2)).round(4).tolist()
        [5.5197, 5.5557]
        """
        if self._response is None:
            raise FormulaError(
                f"the formula {self.formula_text!r} has no response (left of '~'); pass y"
            )
        needed = list(self._response.columns())
        _check_columns(data, needed)
        return self._response.values(_check_finite(data, needed))


def _check_columns(df: pd.DataFrame, columns: list[Any]) -> None:
    labels = df.columns
    if not labels.is_unique:  # (pandas caches the answer)
        repeated = [c for c in dict.fromkeys(columns) if int((labels == c).sum()) > 1]
        if repeated:
            raise DataError(
                f"column{'s' if len(repeated) > 1 else ''} "
                f"{', '.join(map(repr, repeated))} of the formula "
                f"{'appear' if len(repeated) > 1 else 'appears'} more than once in the "
                "data: rename or drop the copies"
            )
    # Labels all text (pandas caches what it checks here): the Index's hash lookup
    # answers as the list would, and listing an Arrow-backed Index of three costs
    # ~8 us. (Others match more loosely: a MultiIndex finds a tuple's first part, a
    # NaN label None.)
    if labels.inferred_type == "string" and not labels.hasnans:
        for col in columns:
            if col not in labels:
                break
        else:
            return
    check_columns_available(list(labels), columns)


def check_columns_available(available: list[Any], columns: list[Any]) -> None:
    """MissingColumnError naming the ``columns`` not among ``available``."""
    have = set(available)
    missing = [c for c in columns if c not in have]
    if missing:
        shown = ", ".join(map(str, available[:30]))
        raise MissingColumnError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"not found in the data; available columns: {shown}"
        )


def _check_finite(df: pd.DataFrame, columns: list[Any]) -> _Columns:
    """Raise for a column with missing or infinite values; return the frame's
    columns (these looked up already)."""
    cols = _Columns(df)
    for col in columns:
        bad = missing_count(cols[col])
        if bad:
            raise missing_values_error(col, bad)
    return cols


def _prepared_columns(prep: _Prep, cols: _Columns, fitting: bool = False) -> _Columns:
    """The columns of ``prep.apply`` of the frame of ``cols``: the same lookups
    when it converts nothing (the frame itself is returned then)."""
    prepared = prep.apply(cols, fitting=fitting)
    return cols if prepared is cols.frame else _Columns(prepared)


def missing_count(column: pd.Series | ArrayLike) -> int:
    """Missing (NaN/None) or infinite values of a column or its values."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return 0  # numpy integers and booleans hold no missing values
    if isinstance(dtype, pd.StringDtype):
        # the string array's own count or mask of missing values, without
        # converting the strings to an object array first (the costliest step of
        # a small fit's checks) or building a Series of the mask
        array: Any = column.array if isinstance(column, pd.Series) else column
        if dtype.storage == "pyarrow":
            import pyarrow as pa  # present: it holds these strings

            return int(pa.array(array).null_count)
        return int(array.isna().sum())
    values = column if isinstance(column, np.ndarray) else column.to_numpy()
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        return 0 if finite.all() else int(finite.shape[0] - finite.sum())
    if values.dtype.kind in "iub":  # an extension type's integers, without NA
        return 0
    return int(pd.isna(values).sum())


def missing_values_error(col: Any, bad: int) -> DataError:
    """The error for ``bad`` missing or infinite values in column ``col``."""
    return DataError(
        f"column {col!r} has {bad} missing (NaN/None) or infinite value"
        f"{'s' if bad > 1 else ''}; remove or impute those rows before fitting"
    )


def _add(out: list[Any], names: Any) -> None:
    for name in names:
        if name not in out:
            out.append(name)


def _predictor_columns(parsed: ParsedFormula) -> list[Any]:
    """Data columns the right-hand side reads, in a stable order."""
    return list(_rhs_columns(parsed.text))


# keyed by the formula's text: a str keeps its hash, a ParsedFormula hashes its
# terms anew on every lookup
@lru_cache(maxsize=256)  # a refit of the same formula (cross-validation, grids)
def _rhs_columns(formula: str) -> tuple[Any, ...]:
    parsed = parse_formula(formula)
    cols: list[Any] = []
    _add(cols, text_columns(parsed.fixed))
    for term in parsed.random:
        for item in term.items:
            _add(cols, text_columns(item.text) if item.kind == "expr" else item.parts)
        _add(cols, term.group)
    for _, text in parsed.offsets:
        _add(cols, text_columns(text))
    return tuple(cols)


@lru_cache(maxsize=256)
def _random_display(formula: str) -> str:
    """The random-effects terms as MixedModels.jl prints them."""
    return " + ".join(spec.display() for spec in parse_formula(formula).random)


def _codings(contrasts: dict[Any, Any]) -> dict[str, str]:
    """``contrasts`` as the text that selects each coding in ``C(x, ...)``."""
    return {str(col): CODING_TEXT[coding] for col, coding in contrasts.items()}


def build_design(
    formula: str,
    data: pd.DataFrame,
    contrasts: dict[Any, Any] | None = None,
    *,
    with_response: bool = True,
    fetched: dict[Any, pd.Series] | None = None,
) -> Design:
    """Parse ``formula`` and build the model matrices from ``data``.

    Parameters
    ----------
    formula : str
        ``"y ~ 1 + x + (1 + x | g)"`` in lme4/MixedModels.jl syntax.
    data : DataFrame
        Never modified.
    contrasts : dict[Any, Any], optional
        Column -> ``"dummy"``, ``"effects"`` or ``"helmert"`` (StatsModels.jl's
        DummyCoding, EffectsCoding and HelmertCoding, in the fixed and the
        random part alike); marks the column categorical with that coding.
    with_response : bool, default=True
        Evaluate the left-hand side. False when the response comes from
        elsewhere (an estimator's ``y``): the data need not hold its columns.
    fetched : dict, optional
        Receives the values of the columns of ``data`` that were read (an
        ndarray or an ExtensionArray), by name, so that the caller need not look
        them up again (pandas builds a new Series for each lookup).

    Examples
    --------
    >>> from sklmixed import load_dataset
    >>> d = build_design("reaction ~ 1 + days + (1 + days|subj)", load_dataset("sleepstudy"))
    >>> d.coef_names, d.reterms[0].cnames, d.reterms[0].nlevels
    (['(Intercept)', 'days'], ('(Intercept)', 'days'), 18)
    """
    contrasts = dict(contrasts or {})
    for col, coding in contrasts.items():
        if coding not in CODINGS:
            raise ValueError(f"contrasts[{col!r}] = {coding!r}; choose one of {CODINGS}")
    parsed = parse_formula(formula)
    response = None
    if parsed.response is not None:
        response = _Response(parsed.response, parsed.response_expr)
    predictors = _predictor_columns(parsed)
    used = list(response.columns()) if response is not None and with_response else []
    _add(used, predictors)
    _check_columns(data, used)
    cols = _check_finite(data, used)

    codings = {col: text for col, text in _codings(contrasts).items() if col in data.columns}
    pieces = [_ReColumns.make(spec, cols, codings, set(codings)) for spec in parsed.random]
    categorical = set(codings) | set(categorical_arguments(parsed.fixed))
    for piece in pieces:
        categorical |= categorical_arguments(piece.text)
    fixed_plain = _fixed_is_plain(parsed, cols, categorical)
    read: list[Any] = [] if fixed_plain else list(text_columns(parsed.fixed))
    for piece in pieces:
        _add(read, piece.columns())
    offsets = _Offsets(parsed.offsets) if parsed.offsets else None
    if offsets is not None:
        for col in offsets.columns():
            if col in categorical or _is_categorical(cols[col]):
                expr = next(e for e, t in parsed.offsets if col in text_columns(t))
                raise FormulaError(f"offset({expr}): column {col!r} is not numeric")
        # through the prep too: an integer exposure is evaluated in doubles
        _add(read, offsets.columns())
    if read:
        prep = _Prep.fit(cols, read, categorical)
        labels = prep.labels()
        prepared = _prepared_columns(prep, cols, fitting=True)
    else:  # data columns as they are: nothing for formulaic to read
        prep, labels, prepared = _Prep(), {}, cols
    fixed, X = _build_fixed(parsed, prepared, codings, labels, fixed_plain)
    if not fixed_plain:  # plain columns were checked with the data (_check_finite)
        _check_matrix(X, fixed.names, "fixed-effects")
    offset = offsets.fit(prepared.frame) if offsets is not None else None

    builders: list[_TermBuilder] = []
    by_group: dict[Any, Any] = {}
    for spec, piece in zip(parsed.random, pieces):
        if spec.group not in by_group:
            by_group[spec.group] = _TermBuilder(_Grouping(spec.group), [], [])
            builders.append(by_group[spec.group])
        by_group[spec.group].pieces.append(piece)
        by_group[spec.group].zerocorr.append(spec.zerocorr)
    reterms = [builder.fit(cols, prepared, codings, labels) for builder in builders]
    random_display = _random_display(parsed.text)
    rhs = fixed.display + "".join(f" + offset({expr})" for expr, _ in parsed.offsets)
    rhs += " + " + random_display if random_display else ""
    text = f"{parsed.response} ~ {rhs}" if parsed.response else f"~ {rhs}"
    y = response.values(cols, keep=True) if response is not None and with_response else None
    if fetched is not None:
        fetched.update(cols)  # the values of the columns used, as read
    return Design(
        parsed.response,
        y,
        X,
        list(fixed.names),
        reterms,
        text,
        used,
        fixed,
        builders,
        predictors,
        prep,
        response,
        offset=offset,
        _offsets=offsets,
    )


def build_design_from_columns(
    data: pd.DataFrame, *, fixed: list[Any], groups: list[Any], response: Any = None
) -> Design:
    """Design for ``formula=None``: intercept, the ``fixed`` columns (numeric as
    they are, others dummy-coded) and a random intercept for each ``groups`` column.
    """
    _check_columns(data, list(fixed) + list(groups))
    columns = _check_finite(data, list(fixed) + list(groups))
    n = data.shape[0]
    xs, names, cats = [np.ones((n, 1))], ["(Intercept)"], []
    for col in fixed:
        if _is_categorical(columns[col]):
            cat = _CatColumn(str(col), _levels(columns[col]))
            cats.append((col, cat))
            xs.append(cat.matrix(columns.series(col)))
            names.extend(cat.names())
        else:
            xs.append(_as_float(columns[col])[:, None])
            names.append(str(col))
    X = np.hstack(xs)
    part = _ColumnsFixed(names=names, display="", columns=list(fixed), cats=dict(cats))
    builders, reterms = [], []
    for g in groups:
        spec = RandomTermSpec((), True, False, (g,), False)
        piece = _ReColumns(spec, plain=[])
        builder = _TermBuilder(_Grouping((g,)), [piece], [False])
        refs = builder.grouping.fit(columns)
        z = piece.fit(columns, {}, {})
        if len(builder.grouping.levels) < 2:
            raise DataError(f"grouping factor {g!r} has a single level")
        builders.append(builder)
        reterms.append(
            ReTerm(
                str(g), refs, tuple(builder.grouping.levels), z, tuple(piece.names), builder.inds()
            )
        )
    rhs = " + ".join(["1"] + [str(c) for c in fixed] + [f"(1 | {g})" for g in groups])
    y = None if response is None else np.asarray(response)
    used = list(fixed) + list(groups)
    return Design("y", y, X, names, reterms, f"y ~ {rhs}", used, part, builders, used)


@dataclass
class _ColumnsFixed(_FixedPart):
    """Fixed part of a formula-free design: columns as given, categoricals coded."""

    columns: list[Any] = field(default_factory=list)
    cats: dict[Any, Any] = field(default_factory=dict)

    def transform(self, cols: _Columns) -> NDArray[Any]:
        n = cols.frame.shape[0]
        xs = [np.ones((n, 1))]
        for col in self.columns:
            if col in self.cats:
                xs.append(self.cats[col].matrix(cols.series(col)))
            else:
                xs.append(_as_float(cols[col])[:, None])
        return np.hstack(xs)
