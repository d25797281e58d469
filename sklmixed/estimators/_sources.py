"""Chunk sources: data read one pandas chunk at a time, reduced by map/combine.

A fit out of core touches its data only through :meth:`ChunkSource.map_reduce`
(a few passes: levels, moments, cross-products) and a prediction through
:meth:`ChunkSource.map_chunks`. A source is therefore small to implement:

``columns``
    The names of the columns the data has (checked before any pass, so that a
    missing column is reported as for a DataFrame).
``select(columns)``
    The same source restricted to these columns (those a formula reads): a
    columnar store then reads only them.
``map_reduce(map_fn, combine_fn)``
    ``map_fn(chunk)`` for every chunk (a pandas DataFrame of at least one row;
    ``chunk.index`` need not be meaningful) and the results reduced with
    ``combine_fn(left, right)``, where ``left`` covers chunks before ``right``'s.
    ``combine_fn`` is associative, so a source may reduce as a tree (a cluster's
    partitions) as long as it keeps that order; the sums inside it do not
    depend on the grouping beyond rounding. Returns None for no chunks. Both
    functions are plain picklable callables of their arguments.
``map_chunks(fn)``
    ``fn(chunk)`` for every chunk, in order, as an iterator (predictions).

:class:`FrameSource` wraps an in-memory DataFrame (one chunk) and
:class:`DatasetSource` a ``pyarrow.dataset.Dataset`` read in record batches;
``_dask.DaskSource`` a Dask DataFrame, reduced on the workers of a cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from sklmixed.exceptions import ParameterError

# Rows per record batch by default: 2^16 keeps a chunk's model matrices at a few
# MB for formulas of a few columns, so that peak memory is the cross-products'.
DEFAULT_BATCH_SIZE = 65536


class ChunkSource(ABC):
    """Data that a fit reads one chunk (a pandas DataFrame) at a time."""

    @property
    @abstractmethod
    def columns(self) -> list[Any]:
        """Names of the data's columns."""

    @abstractmethod
    def select(self, columns: list[Any]) -> ChunkSource:
        """This source restricted to ``columns`` (all present)."""

    @abstractmethod
    def map_chunks(self, fn: Callable[[pd.DataFrame], Any]) -> Iterator[Any]:
        """``fn(chunk)`` for each chunk in order."""

    def map_reduce(
        self, map_fn: Callable[[pd.DataFrame], Any], combine_fn: Callable[[Any, Any], Any]
    ) -> Any:
        """``map_fn`` over the chunks, reduced by ``combine_fn`` in chunk order
        (a left fold here; a distributed source may reduce as a tree)."""
        out = None
        for part in self.map_chunks(map_fn):
            out = part if out is None else combine_fn(out, part)
        return out


class FrameSource(ChunkSource):
    """An in-memory DataFrame as one chunk."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @property
    def columns(self) -> list[Any]:
        return list(self.frame.columns)

    def select(self, columns: list[Any]) -> FrameSource:
        return FrameSource(self.frame[list(columns)])

    def map_chunks(self, fn: Callable[[pd.DataFrame], Any]) -> Iterator[Any]:
        if self.frame.shape[0]:
            yield fn(self.frame)


class DatasetSource(ChunkSource):
    """A ``pyarrow.dataset.Dataset`` scanned in record batches of a chosen size.

    ``fit``, ``predict`` and ``score`` accept a Dataset directly (read in batches
    of :data:`DEFAULT_BATCH_SIZE` rows); wrap it in a DatasetSource to choose the
    batch size, which changes the peak memory and nothing else. Only the columns a
    formula reads are read. Dictionary-encoded (categorical) columns are read as
    their values, so that levels are sorted by value whatever dictionary each file
    or batch has.

    Parameters
    ----------
    dataset : pyarrow.dataset.Dataset
        The data, e.g. ``pyarrow.dataset.dataset(folder, format="parquet")``.
    batch_size : int, default=65536
        Largest number of rows per batch (files may give smaller batches).
    columns : list of str, optional
        Read only these columns (the estimators select the formula's).

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.dataset as ds
    >>> from sklmixed import DatasetSource, MixedLMRegressor, load_dataset
    >>> data = ds.dataset(pa.Table.from_pandas(load_dataset("dyestuff")))
    >>> m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)")
    >>> round(m.fit(DatasetSource(data, batch_size=7)).objective_, 4)
    327.3271
    """

    def __init__(
        self, dataset: Any, batch_size: int = DEFAULT_BATCH_SIZE, columns: list[Any] | None = None
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer; got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self._selected = columns

    @property
    def columns(self) -> list[Any]:
        return list(self.dataset.schema.names)

    def select(self, columns: list[Any]) -> DatasetSource:
        return DatasetSource(self.dataset, self.batch_size, list(columns))

    def map_chunks(self, fn: Callable[[pd.DataFrame], Any]) -> Iterator[Any]:
        import pyarrow as pa

        cols = self._selected if self._selected is not None else self.columns
        for batch in self.dataset.to_batches(columns=list(cols), batch_size=self.batch_size):
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            for i, f in enumerate(table.schema):
                if pa.types.is_dictionary(f.type):
                    table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
            yield fn(table.to_pandas())


def is_dataset(X: Any) -> bool:
    """Whether ``X`` is a ``pyarrow.dataset.Dataset`` (without importing pyarrow's
    dataset module for the in-memory types that are most fits)."""
    module = type(X).__module__ or ""
    if not module.startswith("pyarrow"):
        return False
    import pyarrow.dataset as pads

    return isinstance(X, pads.Dataset)


def as_source(X: Any, batch_size: int | None = None) -> ChunkSource | None:
    """The chunk source of ``X`` when it is data read in chunks; None for
    in-memory data (DataFrames, tables, arrays), which fit as they are."""
    if isinstance(X, ChunkSource):
        return X
    from sklmixed.estimators._dask import DaskSource, is_dask_collection  # dask lazily

    if is_dask_collection(X):  # partitions reduced on the workers of the user's cluster
        return DaskSource(X)
    if is_dataset(X):
        return DatasetSource(X, batch_size or DEFAULT_BATCH_SIZE)
    return None
