"""Chunk sources: what the out-of-core passes read the data through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.estimators._sources import DatasetSource, FrameSource, as_source


def test_dataset_batches_cover_the_rows_in_order_with_only_the_selected_columns():
    df = pd.DataFrame({"a": np.arange(10.0), "b": list("abcdefghij"), "c": 1})
    source = DatasetSource(pads.dataset(pa.Table.from_pandas(df)), batch_size=3)
    assert source.columns == ["a", "b", "c"]
    chunks = list(source.select(["b", "a"]).map_chunks(lambda c: c))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert all(list(c.columns) == ["b", "a"] for c in chunks)
    assert source.map_reduce(lambda c: c["a"].sum(), lambda x, y: x + y) == 45.0


def test_frame_source_is_one_chunk_and_empty_data_none():
    df = pd.DataFrame({"a": [1.0, 2.0]})
    assert FrameSource(df).map_reduce(len, lambda x, y: x + y) == 2
    assert FrameSource(df.iloc[:0]).map_reduce(len, lambda x, y: x + y) is None


def test_in_memory_data_is_no_source():
    df = pd.DataFrame({"a": [1.0]})
    assert as_source(df) is None
    assert as_source(pa.Table.from_pandas(df)) is None
    assert as_source(np.ones((2, 2))) is None
    assert isinstance(as_source(pads.dataset(pa.Table.from_pandas(df))), DatasetSource)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        DatasetSource(pads.dataset(pa.table({"a": [1]})), batch_size=0)


def test_dictionary_columns_are_read_as_their_values():
    # each batch may carry its own dictionary; the levels are the values, sorted
    df = load_dataset("sleepstudy")
    table = pa.Table.from_pandas(df, preserve_index=False)
    i = table.schema.get_field_index("subj")
    table = table.set_column(i, "subj", table.column("subj").dictionary_encode())
    formula = "reaction ~ 1 + days + (1|subj)"
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(pads.dataset(table), 25))
    mem = MixedLMRegressor(formula=formula).fit(df)
    assert list(ooc.ranef_["subj"].index) == list(mem.ranef_["subj"].index)
    assert ooc.objective_ == pytest.approx(mem.objective_, rel=1e-9)
