"""The bundled data sets."""

from __future__ import annotations

import pytest

from sklmixed import list_datasets, load_dataset

SHAPES = {
    "contra": (1934, 5),
    "dyestuff": (30, 2),
    "dyestuff2": (30, 2),
    "insteval": (73421, 7),
    "pastes": (60, 3),
    "penicillin": (144, 3),
    "sleepstudy": (180, 3),
    "verbagg": (7584, 9),
}


def test_list_datasets():
    assert list_datasets() == sorted(SHAPES)


@pytest.mark.parametrize("name, shape", SHAPES.items())
def test_shapes(name, shape):
    assert load_dataset(name).shape == shape


def test_columns_and_types():
    df = load_dataset("sleepstudy")
    assert df.columns.tolist() == ["subj", "days", "reaction"]
    assert df["days"].dtype.kind == "i" and df["reaction"].dtype.kind == "f"


def test_fresh_copy_each_call():
    a = load_dataset("dyestuff")
    a.loc[0, "yield"] = -1
    assert load_dataset("dyestuff").loc[0, "yield"] != -1


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown dataset 'nope'; available: contra"):
        load_dataset("nope")
