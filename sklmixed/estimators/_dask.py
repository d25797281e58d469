"""Dask DataFrames: fits reduced on the workers, predictions as Dask collections.

dask is an optional dependency (``pip install "sklmixed[dask]"``) and is never
imported here unless the user's data is a Dask collection: a Dask DataFrame can
only exist once ``dask.dataframe`` has been imported, so looking it up in
``sys.modules`` tells Dask data apart without importing anything.

The scheduler is the user's: the running ``distributed`` client when there is
one (``distributed.get_client()``), else dask's default scheduler.

Fits: :class:`DaskSource` is a chunk source whose chunks are the partitions; its
``map_reduce`` runs the map function on the workers (one task per partition),
sums the results there pairwise in a tree and brings only the final result to
the client. Predictions: ``map_partitions`` with the fitted estimator, shipped
to the workers once (a single task of the graph that every partition reads).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from sklmixed.estimators._sources import ChunkSource
from sklmixed.exceptions import DataError, DataTypeError, FitError, ParameterError

__all__ = ["DaskSource", "dask_predict", "is_dask_collection", "reject_dask"]

# Dask's collections as they were reorganised into dask.dataframe in 2025.1 (the
# dask-expr merge); the floor of the extra in pyproject.toml.
_MIN_DASK = (2025, 1)

_INSTALL = 'pip install "sklmixed[dask]"'


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask DataFrame or Series (without importing dask)."""
    module = sys.modules.get("dask.dataframe")
    if module is None:  # nothing imported dask.dataframe: X cannot be one of its frames
        return False
    return isinstance(X, (module.DataFrame, module.Series))


def _is_dask_array(X) -> bool:
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def reject_dask(X) -> None:
    """A clear error for Dask data where only in-memory data is accepted."""
    if is_dask_collection(X) or _is_dask_array(X):
        raise DataTypeError(
            "a Dask collection is accepted by fit and by predict, predict_proba and "
            "decision_function (which return Dask collections); for this method bring "
            "the data into memory first (.compute())"
        )


def _dask():
    """The dask modules this file uses, or an ImportError saying how to install them."""
    try:
        import dask
        import dask.dataframe
    except ImportError as exc:  # a Dask frame without dask.dataframe cannot exist
        raise ImportError(f"Dask data needs dask[dataframe]: {_INSTALL}") from exc
    version = tuple(int(v) for v in dask.__version__.split(".")[:2] if v.isdigit())
    if version < _MIN_DASK:
        raise ImportError(
            f"sklmixed needs dask >= {'.'.join(map(str, _MIN_DASK))} for Dask data; "
            f"dask {dask.__version__} is installed: {_INSTALL}"
        )
    return dask


def _client():
    """The user's running ``distributed`` client, or None for dask's default scheduler."""
    if "distributed" not in sys.modules:  # no client can be running without it
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):  # ValueError: no client running
        return None


def _compute(obj):
    """Compute a Dask object on the user's scheduler and return the result."""
    client = _client()
    if client is not None:
        return client.compute(obj).result()
    return obj.compute()


# ------------------------------------------------------------------ the source


class _Empty:
    """What an empty partition maps to: nothing, skipped when combining (told
    apart by type, not identity: it crosses process boundaries pickled)."""


_EMPTY = _Empty()


def _apply(fn: Callable[[Any], Any], chunk: Any) -> Any:
    # partitions may be empty (a filtered frame); chunks of a source never are
    return _EMPTY if len(chunk) == 0 else fn(chunk)


def _apply2(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if isinstance(a, _Empty):
        return b
    if isinstance(b, _Empty):
        return a
    return fn(a, b)


class DaskSource(ChunkSource):
    """A Dask DataFrame as a chunk source: one chunk per (non-empty) partition.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        The user's data; never modified and never brought to the client.

    Notes
    -----
    ``map_reduce(map_fn, combine_fn)`` applies ``map_fn`` to each partition (a
    pandas DataFrame) on the workers and combines the results pairwise, in a
    tree of depth log2(npartitions), also on the workers; only the final result
    travels to the client. The tree combines neighbours, so ``combine_fn`` sees
    its left argument's chunks before its right's, as the contract of
    :class:`ChunkSource` asks. ``map_fn`` is one task of the graph that every
    partition's task reads: whatever it carries (a design's levels, the
    scaling) is shipped to each worker once, not once per partition.
    """

    def __init__(self, frame) -> None:
        self._dask = _dask()
        if not isinstance(frame, self._dask.dataframe.DataFrame):
            raise DataTypeError(f"a Dask source needs a Dask DataFrame; got {type(frame).__name__}")
        self.frame = frame

    @property
    def columns(self) -> list:
        """The frame's column names (known without computing anything)."""
        return list(self.frame.columns)

    @property
    def meta(self) -> pd.DataFrame:
        """An empty pandas frame with the partitions' columns and dtypes."""
        return self.frame._meta

    @property
    def npartitions(self) -> int:
        return int(self.frame.npartitions)

    def select(self, columns: list) -> DaskSource:
        return DaskSource(self.frame[list(columns)])

    def _mapped(self, map_fn: Callable[[pd.DataFrame], Any]) -> list:
        delayed = self._dask.delayed
        fn = delayed(map_fn, pure=False, traverse=False)
        return [delayed(_apply, pure=False)(fn, p) for p in self.frame.to_delayed()]

    def persist(self, fn: Callable[[pd.DataFrame], Any]) -> _Persisted:
        """``fn`` of each partition, computed and kept on the workers (a GLMM's
        model matrices, which every PIRLS pass reads)."""
        parts = self._mapped(fn)
        client = _client()
        if client is not None:  # futures: each pass is then tasks on them, no graph
            return _Persisted(self._dask, client.compute(parts), client)
        return _Persisted(self._dask, list(self._dask.persist(*parts)))

    def map_chunks(self, fn: Callable[[pd.DataFrame], Any]) -> Iterator[Any]:
        """``fn`` of each non-empty partition in order, computed one at a time on
        the workers (the first result costs one partition)."""
        for part in self._mapped(fn):
            out = _compute(part)
            if not isinstance(out, _Empty):
                yield out

    def map_reduce(
        self, map_fn: Callable[[pd.DataFrame], Any], combine_fn: Callable[[Any, Any], Any]
    ) -> Any:
        """``combine_fn`` over ``map_fn`` of every partition, computed on the workers.

        Parameters
        ----------
        map_fn : callable
            pandas DataFrame -> partial result (picklable: it runs on the workers).
        combine_fn : callable
            (partial, partial) -> partial, associative.

        Returns
        -------
        The combined result, on the client; None when every partition is empty.
        """
        return _tree_reduce(self._dask, self._mapped(map_fn), combine_fn)


def _tree_reduce(dask, parts: list, combine_fn: Callable[[Any, Any], Any]) -> Any:
    """Neighbours combined pairwise on the workers, the final result computed."""
    delayed = dask.delayed
    combine = delayed(combine_fn, pure=False, traverse=False)
    while len(parts) > 1:
        pairs = [
            delayed(_apply2, pure=False)(combine, parts[i], parts[i + 1])
            for i in range(0, len(parts) - 1, 2)
        ]
        if len(parts) % 2:
            pairs.append(parts[-1])
        parts = pairs
    out = _compute(parts[0])
    return None if isinstance(out, _Empty) else out


def _apply_kept(fn: Callable[[Any], Any], kept: Any) -> Any:
    return kept if isinstance(kept, _Empty) else fn(kept)


class _Persisted:
    """Results of a map over the partitions, kept on the workers, reduced again
    and again (a GLMM's PIRLS passes) without recomputing the partitions."""

    def __init__(self, dask, parts: list, client=None) -> None:
        self._dask, self.parts, self._client = dask, parts, client

    def map_reduce(self, map_fn: Callable[[Any], Any], combine_fn: Callable[[Any, Any], Any]):
        if not self.parts:
            raise FitError("the partitions kept on the workers for this fit were released")
        client = self._client
        if client is not None:
            # tasks submitted on the kept futures: a third less latency per pass
            # than a graph of delayed calls (measured on a LocalCluster)
            parts = client.map(_apply_kept, [map_fn] * len(self.parts), self.parts, pure=False)
            while len(parts) > 1:
                pairs = [
                    client.submit(_apply2, combine_fn, parts[i], parts[i + 1], pure=False)
                    for i in range(0, len(parts) - 1, 2)
                ]
                if len(parts) % 2:
                    pairs.append(parts[-1])
                parts = pairs
            out = parts[0].result()
            return None if isinstance(out, _Empty) else out
        delayed = self._dask.delayed
        fn = delayed(map_fn, pure=False, traverse=False)
        mapped = [delayed(_apply_kept, pure=False)(fn, p) for p in self.parts]
        return _tree_reduce(self._dask, mapped, combine_fn)

    def release(self) -> None:
        """Let the workers forget the kept results."""
        self.parts = []
        self._client = None


# ------------------------------------------------------------------ prediction


_OFFSET_COLUMN = "__sklmixed_offset__"


def _predict_partition(part, estimator, method, kwargs, with_offset, columns, partition_info=None):
    """One partition's predictions as a pandas Series (or DataFrame) on its index."""
    offset = None
    if with_offset:
        offset = part[_OFFSET_COLUMN].to_numpy()
        part = part.drop(columns=_OFFSET_COLUMN)
    if offset is not None or "offset" in kwargs:
        kwargs = {**kwargs, "offset": offset}
    try:
        out = getattr(estimator, method)(part, **kwargs)
    except DataError as exc:
        # counts in a message are this partition's: say which partition it is
        where = None if partition_info is None else partition_info.get("number")
        if where is None or type(exc) not in (DataError, DataTypeError):
            raise
        raise type(exc)(f"{exc} (in partition {where} of the Dask DataFrame)") from exc
    out = np.asarray(out)
    if columns is not None:
        return pd.DataFrame(out, index=part.index, columns=columns)
    return pd.Series(out, index=part.index, name=None)


def _dask_method(estimator, method: str, X, kwargs: dict):
    """``estimator.method`` over the partitions of the Dask frame ``X``, lazily."""
    dask = _dask()
    if not isinstance(X, dask.dataframe.DataFrame):
        raise DataTypeError(
            f"{method} needs a Dask DataFrame whose columns the model names; got a Dask "
            f"{type(X).__name__}"
        )
    if kwargs.get("return_std"):
        raise ParameterError(
            "return_std=True is not available for a Dask DataFrame: compute the frame "
            "first (.compute()), or use predict for the means"
        )
    kwargs = {k: v for k, v in kwargs.items() if k != "return_std"}
    offset = kwargs.pop("offset", None)
    frame, with_offset = X, False
    if offset is not None:
        if not is_dask_collection(offset):
            raise DataTypeError(
                "with a Dask DataFrame, offset must be a Dask Series partitioned as X "
                f"(a column of it, say); got {type(offset).__name__}"
            )
        if _OFFSET_COLUMN in X.columns:
            raise DataError(f"X has a column named {_OFFSET_COLUMN!r}, which sklmixed reserves")
        frame, with_offset = X.assign(**{_OFFSET_COLUMN: offset}), True
    columns = None
    if method == "predict_proba":
        columns = list(estimator.classes_)
    # Run on the empty partition that Dask keeps as metadata: a missing column or a
    # column of a type the model cannot use raises here, before any computing, the
    # same error as for a pandas DataFrame; the result is the output's metadata.
    meta = _predict_partition(frame._meta, estimator, method, kwargs, with_offset, columns)
    shipped = dask.delayed(estimator, pure=False, traverse=False)
    return frame.map_partitions(
        _predict_partition,
        shipped,
        method,
        kwargs,
        with_offset,
        columns,
        meta=meta,
        align_dataframes=False,
    )


def dask_predict(method: Callable) -> Callable:
    """Decorate a prediction method so that a Dask DataFrame gives a Dask result.

    ``predict``, ``decision_function``: a Dask Series; ``predict_proba``: a Dask
    DataFrame with one column per class. Index and divisions are X's.
    """

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_dask_collection(X) or _is_dask_array(X):
            if args:
                raise ParameterError(
                    f"{method.__name__} on a Dask DataFrame takes its options as keywords"
                )
            if _is_dask_array(X):
                raise DataTypeError(
                    f"{method.__name__} accepts a Dask DataFrame, not a Dask array: the "
                    "model names columns"
                )
            return _dask_method(self, method.__name__, X, kwargs)
        return method(self, X, *args, **kwargs)

    return wrapper
