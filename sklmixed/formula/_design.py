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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from numpy.typing import NDArray

from sklmixed._core._reterm import ReTerm
from sklmixed.exceptions import DataError, FormulaError, MissingColumnError
from sklmixed.formula._parse import ParsedFormula, RandomTermSpec, ReItem, parse_formula

CODINGS = ("dummy", "effects", "helmert")
_FORMULAIC_CONTRAST = {
    "dummy": "contr.treatment",
    "effects": "contr.sum",
    "helmert": "contr.helmert",
}


# ----------------------------------------------------------------- columns


def _is_categorical(series: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    ) or isinstance(series.dtype, pd.CategoricalDtype)


def _levels(series: pd.Series) -> list[Any]:
    """Levels in MixedModels.jl order: a Categorical's categories (those present),
    otherwise the sorted distinct values."""
    return _levels_and_codes(series)[0]


def _levels_and_codes(series: pd.Series) -> tuple[list[Any], NDArray[Any]]:
    """(levels, code of each value); codes are -1 for missing values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        present = np.unique(codes[codes >= 0])
        remap = np.full(len(series.cat.categories) + 1, -1)
        remap[present] = np.arange(present.shape[0])
        return [series.cat.categories[i] for i in present], remap[codes]
    values = series.to_numpy()
    try:
        # hashing, then sorting only the distinct values (np.unique sorts all n)
        codes, levels = pd.factorize(values, sort=True)
        return list(levels), np.asarray(codes, dtype=np.int64)
    except TypeError:  # mixed types: sort by their text
        levels = sorted(pd.unique(values).tolist(), key=str)
        return levels, pd.Index(levels).get_indexer(values)


def level_label(level: Any) -> str:
    """How a level prints in a name: integers without '.0'."""
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _coding_matrix(nlevels: int, coding: str, full: bool) -> NDArray[Any]:
    """Contrast matrix (levels x columns); ``full`` gives indicators of all levels.

    Reduced codings follow StatsModels.jl: dummy drops the first (base) level;
    effects codes the base level -1 in every column; helmert column j contrasts
    level j + 1 with the mean of the levels before it.
    """
    if full:
        return np.eye(nlevels)
    if coding == "dummy":
        return np.eye(nlevels)[:, 1:]
    if coding == "effects":
        m = np.eye(nlevels)[:, 1:]
        m[0, :] = -1.0
        return m
    m = np.zeros((nlevels, nlevels - 1))
    for j in range(1, nlevels):
        m[:j, j - 1] = -1.0
        m[j, j - 1] = j
    return m


@dataclass
class _CatColumn:
    """A categorical variable coded into columns with fixed training levels."""

    name: str
    levels: list[Any]
    coding: str
    full: bool

    def names(self) -> list[str]:
        labels = [level_label(v) for v in self.levels]
        if self.full:
            return [f"{self.name}: {lab}" for lab in labels]
        return [f"{self.name}: {lab}" for lab in labels[1:]]

    def codes(self, series: pd.Series) -> NDArray[Any]:
        idx = pd.Index(self.levels).get_indexer(series)
        if np.any(idx < 0):
            unseen = sorted(map(str, pd.unique(series[idx < 0])))
            raise DataError(f"column {self.name!r} has levels not seen in fit: {unseen[:10]}")
        return np.asarray(idx)

    def matrix(self, series: pd.Series) -> NDArray[Any]:
        return np.asarray(
            _coding_matrix(len(self.levels), self.coding, self.full)[self.codes(series)]
        )


# ------------------------------------------------------------ fixed part


@dataclass
class _FixedPart:
    """Builds X: formulaic's model spec, or plain columns on the fast path."""

    names: list[Any]
    display: str
    spec: Any = None  # formulaic ModelSpec
    plain: list[Any] | None = None  # fast path: [None for intercept | column name]
    categoricals: dict[Any, Any] = field(default_factory=dict)  # column -> training levels
    contrast_columns: dict[Any, Any] = field(default_factory=dict)

    def transform(self, df: pd.DataFrame) -> NDArray[Any]:
        if self.plain is not None:
            n = df.shape[0]
            cols = [np.ones(n) if c is None else df[c].to_numpy(dtype=float) for c in self.plain]
            return np.column_stack(cols) if cols else np.zeros((n, 0))
        for col, levels in self.categoricals.items():
            unseen = ~df[col].isin(levels)
            if unseen.any():
                raise DataError(
                    f"column {col!r} has levels not seen in fit: "
                    f"{sorted(map(str, pd.unique(df[col][unseen])))[:10]}"
                )
        data = _with_categories(df, self.contrast_columns)
        mm = self.spec.get_model_matrix(data)
        return np.asarray(mm, dtype=float)


def _with_categories(df: pd.DataFrame, categories: dict[Any, Any]) -> pd.DataFrame:
    """A shallow copy in which the named columns are Categorical with the given levels
    (the caller's frame is never modified)."""
    if not categories:
        return df
    out = df.copy(deep=False)
    for col, levels in categories.items():
        out[col] = pd.Categorical(out[col], categories=levels)
    return out


_FACTOR = re.compile(
    r"^(?:C\((?P<cname>[^,()]+)(?:,[^)]*)?\)|(?P<name>.+?))\[(?:[A-Z]+\.)?(?P<level>.*)\]$"
)


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
    ``service: Y & dept: D02``; ``Intercept`` -> ``(Intercept)``."""
    if name == "Intercept":
        return "(Intercept)"
    out = []
    for part in _split_interaction(name):
        m = _FACTOR.match(part)
        if m:
            var = (m.group("cname") or m.group("name")).strip()
            level = m.group("level")
            level = level_labels.get(var, {}).get(level, level)
            out.append(f"{var}: {level}")
        else:
            out.append(part)
    return " & ".join(out)


def _fixed_display(fixed_text: str) -> str:
    """The fixed part as StatsModels prints it: expanded, '&' for interactions."""
    formula = Formula(fixed_text)
    terms = [str(t) for t in formula]
    has_intercept = "1" in terms
    terms = [t.replace(":", " & ") for t in terms if t != "1"]
    head = ["1"] if has_intercept else ["0"]
    return " + ".join(head + terms)


def _build_fixed(
    parsed: ParsedFormula, df: pd.DataFrame, contrasts: dict[Any, Any]
) -> tuple[Any, ...]:
    pieces = [p.strip() for p in parsed.fixed.split("+")]
    simple = all(
        p in ("1", "0", "-1")
        or (p in df.columns and p not in contrasts and not _is_categorical(df[p]))
        for p in pieces
    ) and "-" not in parsed.fixed.replace("-1", "")
    if simple:
        intercept = "0" not in pieces and "-1" not in pieces
        cols: list[str | None] = [None] if intercept else []
        cols += [p for p in pieces if p not in ("1", "0", "-1") and p not in cols]
        names = ["(Intercept)" if c is None else c for c in cols]
        display = " + ".join((["1"] if intercept else ["0"]) + [c for c in cols if c])
        part = _FixedPart(names=names, display=display, plain=cols)
        return part, part.transform(df)

    text = parsed.fixed
    for col, coding in contrasts.items():
        if col in df.columns and re.search(rf"(?<![\w.]){re.escape(col)}(?![\w.(])", text):
            text = re.sub(
                rf"(?<![\w.`]){re.escape(col)}(?![\w.`(])",
                f"C({col}, {_FORMULAIC_CONTRAST[coding]})",
                text,
            )
    try:
        required = Formula(text).required_variables
    except Exception as exc:  # formulaic's parser errors are many classes
        raise FormulaError(f"cannot parse the fixed-effects part {parsed.fixed!r}: {exc}") from exc
    # Categorical columns get explicit categories (sorted levels) so that new data
    # is coded the same way; numeric columns named in contrasts become categorical.
    categoricals = {}
    labels: dict[Any, Any] = {}
    for col in sorted(map(str, required)):
        if col not in df.columns:
            continue
        if col in contrasts or _is_categorical(df[col]):
            levels = _levels(df[col])
            categoricals[col] = levels
            labels[col] = {str(v): level_label(v) for v in levels}
    data = _with_categories(df, categoricals)
    try:
        mm = model_matrix(text, data, na_action="raise")
    except Exception as exc:
        raise FormulaError(f"cannot build the fixed effects {parsed.fixed!r}: {exc}") from exc
    names = [mixedmodels_name(str(c), labels) for c in mm.columns]
    part = _FixedPart(
        names=names,
        display=_fixed_display(parsed.fixed),
        spec=mm.model_spec,
        categoricals=categoricals,
        contrast_columns=categoricals,
    )
    return part, np.asarray(mm, dtype=float)


# ---------------------------------------------------------- random terms


@dataclass
class _ReColumns:
    """The model-matrix columns of one random-effects term (before the group)."""

    spec: RandomTermSpec
    contrasts: dict[Any, Any]
    # (column, all levels?) -> its coding with the training levels
    cats: dict[tuple[str, bool], _CatColumn] = field(default_factory=dict)
    exprs: dict[Any, Any] = field(default_factory=dict)  # expr text -> formulaic spec
    names: list[Any] = field(default_factory=list)

    def fit(self, df: pd.DataFrame) -> NDArray[Any]:
        return self._build(df, fitting=True)

    def transform(self, df: pd.DataFrame) -> NDArray[Any]:
        return self._build(df, fitting=False)

    def _cat(self, col: str, df: pd.DataFrame, full: bool, fitting: bool) -> _CatColumn:
        key = (col, full)
        if fitting:
            coding = self.contrasts.get(col, "dummy")
            self.cats[key] = _CatColumn(col, _levels(df[col]), coding, full)
        return self.cats[key]

    def _factor(
        self, col: str, df: pd.DataFrame, full: bool, fitting: bool
    ) -> tuple[NDArray[Any], list[str]]:
        """(matrix, names) of one variable inside the term."""
        if col in self.contrasts or _is_categorical(df[col]):
            cat = self._cat(col, df, full, fitting)
            return cat.matrix(df[col]), cat.names()
        return df[col].to_numpy(dtype=float)[:, None], [col]

    def _build(self, df: pd.DataFrame, fitting: bool) -> NDArray[Any]:
        n = df.shape[0]
        mats, names = [], []
        spec = self.spec
        if spec.intercept:
            mats.append(np.ones((n, 1)))
            names.append("(Intercept)")
        for item in spec.items:
            if item.kind == "column":
                m, nm = self._factor(item.parts[0], df, spec.explicit_zero, fitting)
            elif item.kind == "fulldummy":
                m, nm = self._factor(item.parts[0], df, True, fitting)
            elif item.kind == "interaction":
                m, nm = np.ones((n, 1)), [""]
                for part in item.parts:
                    pm, pn = self._factor(part, df, False, fitting)
                    # row-wise Kronecker product, earlier factors varying fastest
                    m = (pm[:, :, None] * m[:, None, :]).reshape(n, -1)
                    nm = [f"{b} & {a}" if a else b for b in pn for a in nm]
            else:
                m, nm = self._expr(item, df, fitting)
            mats.append(m)
            names.extend(nm)
        if fitting:
            self.names = names
        return np.hstack(mats).astype(float) if mats else np.zeros((n, 0))

    def _expr(
        self, item: ReItem, df: pd.DataFrame, fitting: bool
    ) -> tuple[NDArray[Any], list[str]]:
        if fitting:
            try:
                mm = model_matrix("0 + " + item.text, df, na_action="raise")
            except Exception as exc:
                raise FormulaError(
                    f"cannot evaluate {item.text!r} in a random-effects term: {exc}"
                ) from exc
            self.exprs[item.text] = mm.model_spec
            return np.asarray(mm, dtype=float), [str(c) for c in mm.columns]
        mm = self.exprs[item.text].get_model_matrix(df)
        return np.asarray(mm, dtype=float), [str(c) for c in mm.columns]


@dataclass
class _Grouping:
    """Codes of a grouping factor (a column or an interaction of columns)."""

    columns: tuple[Any, ...]
    levels: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " & ".join(self.columns)

    def _keys(self, df: pd.DataFrame) -> pd.Series:
        if len(self.columns) == 1:
            return df[self.columns[0]]
        return pd.Series(list(zip(*(df[c] for c in self.columns))), index=df.index)

    def fit(self, df: pd.DataFrame) -> NDArray[Any]:
        if len(self.columns) == 1:
            self.levels, refs = _levels_and_codes(df[self.columns[0]])
        else:
            keys = self._keys(df)
            self.levels = sorted(set(keys.tolist()), key=lambda t: tuple(map(_sort_key, t)))
            refs = pd.Index(self.levels, tupleize_cols=False).get_indexer(keys)
        return refs.astype(np.int64)

    def transform(self, df: pd.DataFrame, new_level_codes: bool = False) -> NDArray[Any]:
        index = pd.Index(self.levels, tupleize_cols=False)
        keys = self._keys(df)
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

    def inds(self) -> NDArray[Any]:
        pos: list[tuple[int, int]] = []
        off = 0
        for piece, zc in zip(self.pieces, self.zerocorr):
            k = len(piece.names)
            if zc:
                r = c = np.arange(k)
            else:
                r, c = np.tril_indices(k)
            pos.extend(zip((r + off).tolist(), (c + off).tolist()))
            off += k
        pos.sort(key=lambda rc: (rc[1], rc[0]))  # column-major
        return np.asarray(pos, dtype=np.int64).reshape(-1, 2)


@dataclass
class Design:
    """Model matrices of a mixed model and what is needed to rebuild them.

    Attributes
    ----------
    response_name : str or None
    y : ndarray or None
        The response column exactly as in the data (not converted).
    X : ndarray of shape (n, p)
    coef_names : list[Any] of str
    reterms : list[Any] of ReTerm
        One per grouping factor, in formula order.
    formula_text : str
        The formula as MixedModels.jl prints it.
    used_columns : list[Any] of str
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

    @property
    def has_intercept(self) -> bool:
        return "(Intercept)" in self.coef_names

    def transform(
        self, data: pd.DataFrame, new_level_codes: bool = False
    ) -> tuple[NDArray[Any], list[tuple[NDArray[Any], NDArray[Any]]]]:
        """X and, per random-effects term, (refs, z) for new data; refs index the
        training levels, -1 for a level not seen in fit (with ``new_level_codes``,
        ``nlevels + j`` for the j-th distinct unseen level instead, so that rows
        sharing an unseen level can be told apart from rows of another)."""
        needed = [c for c in self.used_columns if c != self.response_name]
        _check_columns(data, needed)
        _check_finite(data, needed)
        X = self._fixed.transform(data)
        parts = []
        for builder in self._builders:
            refs = builder.grouping.transform(data, new_level_codes)
            z = np.hstack([piece.transform(data) for piece in builder.pieces])
            parts.append((refs, z))
        return X, parts


def _check_columns(df: pd.DataFrame, columns: list[Any]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        available = ", ".join(map(str, df.columns[:30]))
        raise MissingColumnError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"not found in the data; available columns: {available}"
        )


def _check_finite(df: pd.DataFrame, columns: list[Any]) -> None:
    for col in columns:
        s = df[col]
        values = s.to_numpy()
        if values.dtype.kind == "f":
            bad = int(values.shape[0] - np.count_nonzero(np.isfinite(values)))
        elif values.dtype.kind in "iub":
            bad = 0
        else:
            bad = int(pd.isna(values).sum())
        if bad:
            raise DataError(
                f"column {col!r} has {bad} missing (NaN/None) or infinite value"
                f"{'s' if bad > 1 else ''}; remove or impute those rows before fitting"
            )


@lru_cache(maxsize=256)
def _required_variables(text: str) -> tuple[Any, ...]:
    """Data columns a formulaic expression reads (parsing is cached: it is slow)."""
    pieces = [p.strip() for p in text.split("+")]
    if all(_PLAIN.match(p) for p in pieces):  # plain names and 0/1: no parser needed
        return tuple(sorted({p for p in pieces if p not in ("0", "1", "-1")}))
    try:
        required = Formula(text).required_variables
    except Exception as exc:  # formulaic's parser errors are many classes
        raise FormulaError(f"cannot parse the fixed-effects part {text!r}: {exc}") from exc
    return tuple(sorted(map(str, required)))


_PLAIN = re.compile(r"^(?:-?[01]|[A-Za-z_][A-Za-z0-9_]*)$")


def _formula_columns(
    parsed: ParsedFormula, df: pd.DataFrame, contrasts: dict[Any, Any]
) -> list[Any]:
    """Data columns a formula uses, in a stable order."""
    cols: list[Any] = []

    def add(name: str) -> None:
        if name not in cols:
            cols.append(name)

    if parsed.response is not None:
        add(parsed.response)
    for name in _required_variables(parsed.fixed):
        add(name)
    for term in parsed.random:
        for item in term.items:
            if item.kind == "expr":
                for name in _required_variables("0 + " + item.text):
                    add(name)
            else:
                for name in item.parts:
                    add(name)
        for name in term.group:
            add(name)
    return cols


def build_design(
    formula: str, data: pd.DataFrame, contrasts: dict[Any, Any] | None = None
) -> Design:
    """Parse ``formula`` and build the model matrices from ``data``.

    Parameters
    ----------
    formula : str
        ``"y ~ 1 + x + (1 + x | g)"`` in lme4/MixedModels.jl syntax.
    data : DataFrame
        Never modified.
    contrasts : dict[Any, Any], optional
        Column -> ``"dummy"``, ``"effects"`` or ``"helmert"``; marks the column
        categorical with that coding.

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
    used = _formula_columns(parsed, data, contrasts)
    _check_columns(data, used)
    _check_finite(data, used)
    fixed, X = _build_fixed(parsed, data, contrasts)
    builders: list[_TermBuilder] = []
    by_group: dict[Any, Any] = {}
    for spec in parsed.random:
        piece = _ReColumns(spec, contrasts)
        if spec.group not in by_group:
            by_group[spec.group] = _TermBuilder(_Grouping(spec.group), [], [])
            builders.append(by_group[spec.group])
        by_group[spec.group].pieces.append(piece)
        by_group[spec.group].zerocorr.append(spec.zerocorr)
    reterms = []
    for builder in builders:
        refs = builder.grouping.fit(data)
        z = np.hstack([piece.fit(data) for piece in builder.pieces])
        cnames = [nm for piece in builder.pieces for nm in piece.names]
        dup = sorted({c for c in cnames if cnames.count(c) > 1})
        if dup:
            raise FormulaError(
                f"random-effects columns {dup} appear twice for grouping factor "
                f"{builder.grouping.name!r}"
            )
        if len(builder.grouping.levels) < 2:
            raise DataError(
                f"grouping factor {builder.grouping.name!r} has a single level "
                f"({builder.grouping.levels[0]!r}); a random effect needs at least two levels"
            )
        reterms.append(
            ReTerm(
                builder.grouping.name,
                refs,
                tuple(builder.grouping.levels),
                z,
                tuple(cnames),
                builder.inds(),
            )
        )
    random_display = " + ".join(spec.display() for spec in parsed.random)
    rhs = fixed.display + (" + " + random_display if random_display else "")
    text = f"{parsed.response} ~ {rhs}" if parsed.response else f"~ {rhs}"
    y = None
    if parsed.response is not None:
        y = data[parsed.response].to_numpy()
    return Design(parsed.response, y, X, list(fixed.names), reterms, text, used, fixed, builders)


def build_design_from_columns(
    data: pd.DataFrame, *, fixed: list[Any], groups: list[Any], response: Any = None
) -> Design:
    """Design for ``formula=None``: intercept, the ``fixed`` columns (numeric as
    they are, others dummy-coded) and a random intercept for each ``groups`` column.
    """
    _check_columns(data, list(fixed) + list(groups))
    _check_finite(data, list(fixed) + list(groups))
    n = data.shape[0]
    cols, names, cats = [np.ones((n, 1))], ["(Intercept)"], []
    for col in fixed:
        if _is_categorical(data[col]):
            cat = _CatColumn(str(col), _levels(data[col]), "dummy", False)
            cats.append((col, cat))
            cols.append(cat.matrix(data[col]))
            names.extend(cat.names())
        else:
            cols.append(data[col].to_numpy(dtype=float)[:, None])
            names.append(str(col))
    X = np.hstack(cols)
    part = _ColumnsFixed(names=names, display="", columns=list(fixed), cats=dict(cats))
    builders, reterms = [], []
    for g in groups:
        spec = RandomTermSpec((), True, False, (g,), False)
        piece = _ReColumns(spec, {})
        builder = _TermBuilder(_Grouping((g,)), [piece], [False])
        refs = builder.grouping.fit(data)
        z = piece.fit(data)
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
    return Design(
        "y", y, X, names, reterms, f"y ~ {rhs}", list(fixed) + list(groups), part, builders
    )


@dataclass
class _ColumnsFixed(_FixedPart):
    """Fixed part of a formula-free design: columns as given, categoricals coded."""

    columns: list[Any] = field(default_factory=list)
    cats: dict[Any, Any] = field(default_factory=dict)

    def transform(self, df: pd.DataFrame) -> NDArray[Any]:
        n = df.shape[0]
        cols = [np.ones((n, 1))]
        for col in self.columns:
            if col in self.cats:
                cols.append(self.cats[col].matrix(df[col]))
            else:
                cols.append(df[col].to_numpy(dtype=float)[:, None])
        return np.hstack(cols)
