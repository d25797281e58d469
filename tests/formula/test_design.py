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


# ------------------------------------------- formulas as lme4 users write them


def _sleep_half():
    df = load_dataset("sleepstudy")
    df["half"] = np.where(df["days"] < 5, "a", "b")
    return df


def test_caret_is_a_power_inside_function_calls():
    df = load_dataset("sleepstudy")
    days = df["days"].to_numpy(dtype=float)
    for formula in ["reaction ~ 1 + I(days^2) + (1|subj)", "reaction ~ 1 + I(days**2) + (1|subj)"]:
        np.testing.assert_array_equal(build_design(formula, df).X[:, 1], days**2)
    design = build_design("reaction ~ 1 + log(days^2 + 1) + (1 + I(days^2)|subj)", df)
    np.testing.assert_allclose(design.X[:, 1], np.log(days**2 + 1))
    np.testing.assert_array_equal(design.reterms[0].z[:, 1], days**2)


def test_integer_columns_do_not_wrap_around():
    df = load_dataset("sleepstudy")
    df["days"] = df["days"].astype(np.int8)  # as load_dataset may give it
    before = df.copy()
    design = build_design("reaction ~ 1 + I(days*20) + (1 + I(days*20)|subj)", df)
    expected = df["days"].to_numpy(dtype=float) * 20  # up to 180 > int8's 127
    np.testing.assert_array_equal(design.X[:, 1], expected)
    np.testing.assert_array_equal(design.reterms[0].z[:, 1], expected)
    X, [(_, z)] = design.transform(df.head(20))
    np.testing.assert_array_equal(X[:, 1], expected[:20])
    pd.testing.assert_frame_equal(df, before)  # the user's dtypes are kept
    for dtype in (np.uint8, np.int16, "Int32"):
        d2 = df.assign(days=df["days"].astype(dtype))
        X2 = build_design("reaction ~ 1 + I(days**4) + (1|subj)", d2).X
        np.testing.assert_array_equal(X2[:, 1], df["days"].to_numpy(dtype=float) ** 4)
    # an integer column made categorical keeps integer level names
    design = build_design("reaction ~ 1 + C(days) + (1|subj)", df)
    assert design.coef_names[1:3] == ["days: 1", "days: 2"]


@pytest.mark.parametrize(
    "term, cnames",
    [
        ("(1 + days*half|subj)", ["(Intercept)", "days", "half: b", "days & half: b"]),
        ("(1 + C(half)|subj)", ["(Intercept)", "half: b"]),
        ("(1 + half|subj)", ["(Intercept)", "half: b"]),
        ("(0 + C(half)|subj)", ["half: a", "half: b"]),
        ("(0 + half|subj)", ["half: a", "half: b"]),
        ("(1 + fulldummy(half)|subj)", ["(Intercept)", "half: a", "half: b"]),
        ("(0 + days + half|subj)", ["days", "half: a", "half: b"]),
        ("(1 + days & half|subj)", ["(Intercept)", "days & half: a", "days & half: b"]),
    ],
)
def test_random_terms_code_categoricals_as_the_fixed_part(term, cnames):
    df = _sleep_half()
    design = build_design(f"reaction ~ 1 + days*half + {term}", df)
    (reterm,) = design.reterms
    assert list(reterm.cnames) == cnames
    if "fulldummy" in term:
        return
    # the same coding as formulaic's fixed part with the same intercept
    fixed_formula = term[1 : term.index("|")].replace("&", ":")
    same = build_design(f"reaction ~ {fixed_formula} + (1|subj)", df)
    assert same.coef_names == cnames
    np.testing.assert_array_equal(reterm.z, same.X)


def test_random_term_without_intercept_or_zero_is_coded_as_with_intercept():
    # (days | subj) beside (1 | subj): MixedModels.jl codes days as if the
    # intercept were in the term, then leaves the intercept out
    df = _sleep_half()
    (term,) = build_design("reaction ~ 1 + (1|subj) + (half|subj)", df).reterms
    assert list(term.cnames) == ["(Intercept)", "half: b"]


def _first_rows(df, column, levels):
    return [int(np.flatnonzero(df[column].to_numpy() == level)[0]) for level in levels]


@pytest.mark.parametrize(
    "coding, matrix",
    [
        # StatsModels.jl's ContrastsMatrix(EffectsCoding(), ["a", "b", "c", "d"]).matrix
        ("effects", [[-1, -1, -1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        # StatsModels.jl's ContrastsMatrix(HelmertCoding(), ["a", "b", "c", "d"]).matrix
        ("helmert", [[-1, -1, -1], [1, -1, -1], [0, 2, -1], [0, 0, 3]]),
        ("dummy", [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]),
    ],
)
def test_one_coding_in_fixed_and_random_parts(coding, matrix):
    df = load_dataset("sleepstudy")
    df["q"] = np.array(list("abcd"))[df["days"].to_numpy() % 4]
    design = build_design("reaction ~ 1 + q + (1 + q|subj)", df, {"q": coding})
    names = ["q: b", "q: c", "q: d"]
    assert design.coef_names == ["(Intercept)", *names]
    assert list(design.reterms[0].cnames) == ["(Intercept)", *names]
    rows = _first_rows(df, "q", "abcd")
    np.testing.assert_array_equal(design.X[rows, 1:], matrix)
    np.testing.assert_array_equal(design.reterms[0].z[rows, 1:], matrix)


def test_transformed_response():
    df = load_dataset("sleepstudy")
    design = build_design("log(reaction) ~ 1 + days + (1 + days|subj)", df)
    np.testing.assert_allclose(design.y, np.log(df["reaction"]))
    assert design.formula_text == "log(reaction) ~ 1 + days + (1 + days | subj)"
    X, _ = design.transform(df.drop(columns="reaction"))  # predictors only
    np.testing.assert_array_equal(X, design.X)
    np.testing.assert_allclose(design.response(df.head(3)), np.log(df["reaction"][:3]))
    with pytest.raises(FormulaError, match="one numeric column"):
        build_design("C(subj) ~ 1 + days + (1|subj)", df)


def test_backticked_and_dotted_names():
    df = load_dataset("sleepstudy").rename(columns={"days": "days.n", "reaction": "re action"})
    for formula in [
        "`re action` ~ 1 + `days.n` + (1 + `days.n`|subj)",
        "`re action` ~ 1 + days.n + (1 + days.n|subj)",
    ]:
        design = build_design(formula, df)
        assert design.coef_names == ["(Intercept)", "days.n"]
        assert list(design.reterms[0].cnames) == ["(Intercept)", "days.n"]
        np.testing.assert_array_equal(design.X[:, 1], df["days.n"])
        np.testing.assert_array_equal(design.y, df["re action"])
    design = build_design("`re action` ~ 1 + I(`days.n`^2) + (1|subj)", df)
    np.testing.assert_array_equal(design.X[:, 1], df["days.n"].to_numpy(dtype=float) ** 2)


def test_r_functions():
    df = load_dataset("sleepstudy")
    days = df["days"].to_numpy(dtype=float)
    design = build_design("reaction ~ 1 + sqrt(days) + exp10(days/10) + ceiling(days/2)", df)
    np.testing.assert_allclose(
        design.X[:, 1:], np.column_stack([np.sqrt(days), 10 ** (days / 10), np.ceil(days / 2)])
    )


def test_values_computed_by_the_formula_must_be_finite():
    df = load_dataset("sleepstudy")
    with pytest.raises(DataError, match=r"'log\(days\)' has 18 NaN or infinite"):
        build_design("reaction ~ 1 + log(days) + (1|subj)", df)


def test_without_the_response():
    df = load_dataset("sleepstudy")
    design = build_design(
        "reaction ~ 1 + days + (1 + days|subj)", df.drop(columns="reaction"), with_response=False
    )
    assert design.y is None and design.has_response
    assert design.coef_names == ["(Intercept)", "days"]
    np.testing.assert_array_equal(design.response(df), df["reaction"])
    with pytest.raises(MissingColumnError, match="'reaction'"):
        build_design("reaction ~ 1 + days + (1|subj)", df.drop(columns="reaction"))


def test_numbers_written_as_text_warn_that_they_are_categorical():
    """A CSV read back as text: ``days`` is coded as a factor (as R would), which is
    a different model from the numeric covariate; the user is told so, unless the
    formula says categorical on purpose."""
    import io
    import warnings

    import pandas as pd

    from sklmixed import MixedLMRegressor, load_dataset
    from sklmixed.exceptions import NumericTextWarning

    df = load_dataset("sleepstudy")
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    buf.seek(0)
    text = pd.read_csv(buf, dtype=str)
    with pytest.warns(NumericTextWarning, match="'days' holds numbers written as text") as rec:
        m = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(text)
    assert rec[0].filename == __file__  # the user's line, not the formula layer
    assert len(m.coef_names_) == 10  # one coefficient per level besides the intercept
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericTextWarning)
        MixedLMRegressor(formula="reaction ~ 1 + C(days) + (1|subj)").fit(text)
        two_levels = text.assign(half=(df["days"] >= 5).astype(int).astype(str))
        MixedLMRegressor(formula="reaction ~ 1 + half + (1|subj)").fit(two_levels)


@pytest.mark.xfail(
    strict=True,
    raises=FormulaError,
    reason="known: a column named in C(x) is handed to formulaic as a Categorical for "
    "every use in the formula, so a numeric use of the same column fails (lme4 "
    "accepts factor(days) + log(days + 1))",
)
def test_a_column_used_both_in_c_and_as_a_number():
    design = build_design(
        "reaction ~ 1 + C(days) + log(days + 1) + (1|subj)", load_dataset("sleepstudy")
    )
    assert "log(days + 1)" in design.coef_names
