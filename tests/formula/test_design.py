"""Model matrices from formulas and data: columns, names, terms, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklmixed import load_dataset
from sklmixed.exceptions import DataError, FormulaError, MissingColumnError
from sklmixed.formula import build_design, build_design_from_columns

SEED = json.loads(
    (Path(__file__).resolve().parents[1] / "reference" / "seed_cases.json").read_text()
)


def _data(name):
    if name == "pastes+sample":
        df = load_dataset("pastes")
        df["sample"] = df["cask"] + "&" + df["batch"]
        return df
    return load_dataset(name)


@pytest.mark.parametrize("case", SEED["cases"], ids=[c["name"] for c in SEED["cases"]])
def test_formula_text_as_mixedmodels_prints_it(case):
    design = build_design(case["formula"], _data(case["dataset"]), case.get("contrasts"))
    assert design.formula_text == case["summary"].splitlines()[1].strip()


def _coef_names_from_summary(name):
    lines = next(c for c in SEED["cases"] if c["name"] == name)["summary"].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("(Intercept)"))
    return [line[: line.index("  ")].strip() for line in lines[start:-1]]


@pytest.mark.parametrize("name", ["fm5", "gm1", "fm2dummy"])
def test_coefficient_names_and_order(name):
    case = next(c for c in SEED["cases"] if c["name"] == name)
    design = build_design(case["formula"], _data(case["dataset"]), case.get("contrasts"))
    assert design.coef_names == _coef_names_from_summary(name)


def _term(formula, contrasts=None, data="sleepstudy"):
    return build_design(formula, _data(data), contrasts).reterms


DAYS = {"days": "dummy"}
FULL_TRI_9 = [(r, c) for c in range(1, 10) for r in range(c, 10)]


@pytest.mark.parametrize(
    "formula, contrasts, cnames, inds",
    [
        (
            "reaction ~ 1 + days + (1 + days|subj)",
            None,
            ["(Intercept)", "days"],
            [(0, 0), (1, 0), (1, 1)],
        ),
        (
            "reaction ~ 1 + days + zerocorr(1 + days|subj)",
            None,
            ["(Intercept)", "days"],
            [(0, 0), (1, 1)],
        ),
        (
            "reaction ~ 1 + days + (1|subj) + (days|subj)",
            None,
            ["(Intercept)", "days"],
            [(0, 0), (1, 1)],
        ),
        (
            "reaction ~ 1 + days + (1 + days|subj)",
            DAYS,
            ["(Intercept)"] + [f"days: {d}" for d in range(1, 10)],
            [(r, c) for c in range(10) for r in range(c, 10)],
        ),
        (
            "reaction ~ 1 + days + (1 + fulldummy(days)|subj)",
            DAYS,
            ["(Intercept)"] + [f"days: {d}" for d in range(10)],
            [(r, c) for c in range(11) for r in range(c, 11)],
        ),
        (
            "reaction ~ 1 + days + (1|subj) + (days|subj)",
            DAYS,
            ["(Intercept)"] + [f"days: {d}" for d in range(1, 10)],
            [(0, 0)] + FULL_TRI_9,
        ),
        (
            "reaction ~ 1 + days + zerocorr(1 + fulldummy(days)|subj)",
            DAYS,
            ["(Intercept)"] + [f"days: {d}" for d in range(10)],
            [(i, i) for i in range(11)],
        ),
        (
            "reaction ~ 1 + (0 + days|subj)",
            DAYS,
            [f"days: {d}" for d in range(10)],
            [(r, c) for c in range(10) for r in range(c, 10)],
        ),
    ],
)
def test_random_term_columns_and_free_parameters(formula, contrasts, cnames, inds):
    (term,) = _term(formula, contrasts)
    assert list(term.cnames) == cnames
    assert [tuple(p) for p in term.inds.tolist()] == inds
    assert term.nlevels == 18 and term.name == "subj"


def test_dummy_columns_are_indicators():
    (term,) = _term("reaction ~ 1 + (1 + days|subj)", DAYS)
    df = load_dataset("sleepstudy")
    np.testing.assert_array_equal(term.z[:, 1], (df["days"] == 1).astype(float))


def test_nested_and_crossed_grouping():
    terms = _term("strength ~ 1 + (1|batch/cask)", data="pastes")
    assert [(t.name, t.nlevels) for t in terms] == [("batch", 10), ("batch & cask", 30)]
    assert terms[1].levels[0] == ("A", "a")
    terms = _term("diameter ~ 1 + (1|plate) + (1|sample)", data="penicillin")
    assert [(t.name, t.nlevels) for t in terms] == [("plate", 24), ("sample", 6)]


def test_levels_sorted_and_refs_consistent():
    (term,) = _term("yield ~ 1 + (1|batch)", data="dyestuff")
    df = load_dataset("dyestuff")
    assert term.levels == tuple("ABCDEF")
    assert [term.levels[r] for r in term.refs] == df["batch"].tolist()


def test_contrasts_codings():
    df = load_dataset("sleepstudy")
    for coding, first_row in [("dummy", 0.0), ("effects", -1.0), ("helmert", -1.0)]:
        (term,) = build_design("reaction ~ 1 + (days|subj)", df, {"days": coding}).reterms
        assert term.z[df["days"].to_numpy() == 0][0, 0] == first_row


def test_transform_new_data_unseen_levels():
    df = load_dataset("sleepstudy")
    design = build_design("reaction ~ 1 + days + (1 + days|subj)", df)
    new = pd.DataFrame({"subj": ["S308", "NEW"], "days": [1, 2]})
    X, [(refs, z)] = design.transform(new)
    np.testing.assert_array_equal(X, [[1, 1], [1, 2]])
    assert refs.tolist() == [0, -1]
    np.testing.assert_array_equal(z, [[1, 1], [1, 2]])


def test_transform_codes_each_unseen_level_apart():
    df = load_dataset("penicillin")
    design = build_design("diameter ~ 1 + (1|plate) + (1|plate & sample)", df)
    new = pd.DataFrame({"plate": ["P1", "a", "P2", "P1"], "sample": ["A", "Z", "A", "A"]})
    _, [(plate, _), (pair, _)] = design.transform(new, new_level_codes=True)
    assert plate.tolist() == [24, 0, 25, 24]  # 24 plates in fit (a to x); P1, P2 new
    assert pair.tolist() == [144, 145, 146, 144]  # 144 pairs in fit; these are new
    _, [(plate, _), _] = design.transform(new)
    assert plate.tolist() == [-1, 0, -1, -1]


def test_transform_unseen_fixed_level_is_an_error():
    df = load_dataset("verbagg")
    design = build_design("r2 ~ 1 + btype + (1|subj)", df)
    new = df.head(2).assign(btype=["curse", "whisper"])
    with pytest.raises(DataError, match="btype.*whisper"):
        design.transform(new)


def test_missing_column_is_named():
    with pytest.raises(MissingColumnError, match="'dayz'.*available columns: subj, days"):
        build_design("reaction ~ 1 + dayz + (1|subj)", load_dataset("sleepstudy"))
    with pytest.raises(KeyError):
        build_design("reaction ~ 1 + (1|subject)", load_dataset("sleepstudy"))


def test_nan_is_named():
    df = load_dataset("sleepstudy")
    df.loc[3, "days"] = np.nan
    with pytest.raises(DataError, match="'days' has 1 missing"):
        build_design("reaction ~ 1 + days + (1|subj)", df)
    df = load_dataset("sleepstudy")
    df.loc[[1, 2], "subj"] = None
    with pytest.raises(DataError, match="'subj' has 2 missing"):
        build_design("reaction ~ 1 + days + (1|subj)", df)


def test_single_level_grouping_factor():
    df = load_dataset("sleepstudy").assign(one="x")
    with pytest.raises(DataError, match="'one' has a single level"):
        build_design("reaction ~ 1 + (1|one)", df)


def test_duplicate_random_columns():
    with pytest.raises(FormulaError, match="appear twice"):
        build_design("reaction ~ 1 + (1|subj) + (1 + days|subj)", load_dataset("sleepstudy"))


def test_data_not_modified():
    df = load_dataset("sleepstudy")
    before = df.copy()
    build_design("reaction ~ 1 + days + (1 + days|subj)", df, {"days": "dummy"})
    pd.testing.assert_frame_equal(df, before)


def test_design_from_columns():
    df = pd.DataFrame({"x": [1.0, 2, 3, 4], "c": list("abab"), "g": list("ppqq")})
    design = build_design_from_columns(df, fixed=["x", "c"], groups=["g"], response=[1, 2, 3, 4])
    assert design.coef_names == ["(Intercept)", "x", "c: b"]
    assert design.formula_text == "y ~ 1 + x + c + (1 | g)"
    X, [(refs, z)] = design.transform(df)
    np.testing.assert_array_equal(X[:, 2], [0, 1, 0, 1])
    assert refs.tolist() == [0, 0, 1, 1]
