"""Every fit printed on the MixedModels.jl reference page, end to end.

``tests/reference/seed_cases.json`` holds, for each model on the page, the data set,
the formula in sklmixed's spelling, the options and the summary text exactly as the
page prints it. The fitted model's ``str(summary())`` must equal it. Where the
optimizer stops at a marginally different point than MixedModels.jl's, a printed
estimate may differ by one unit in its last printed digit, and then our objective
must be equal or lower (issue #2's rule); every other character must be equal.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "seed_cases.json"
SEED = json.loads(REFERENCE.read_text())
CASES = {c["name"]: c for c in SEED["cases"]}
FIGURES = SEED["other_figures"]
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _data(name: str):
    if name == "pastes+sample":
        df = load_dataset("pastes")
        df["sample"] = df["cask"].astype(str) + "&" + df["batch"].astype(str)
        return df
    return load_dataset(name)


_FITS: dict = {}


def fit_case(name: str):
    """Fit a seed case once per test session."""
    if name not in _FITS:
        case = CASES[name]
        df = _data(case["dataset"])
        if case.get("family"):
            model = MixedGLMClassifier(formula=case["formula"], family=case["family"])
        else:
            model = MixedLMRegressor(
                formula=case["formula"], reml=case["reml"], contrasts=case.get("contrasts")
            )
        _FITS[name] = model.fit(df)
    return _FITS[name]


def _ulp(token: str) -> float:
    """One unit in the last printed digit of a number as printed."""
    mantissa = token.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (-decimals)


def _printed_objective(text: str) -> float:
    """-2 logLik, the REML criterion, or the GLMM deviance, as the page prints it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "REML criterion at convergence:" in line:
            return float(line.split(":")[1])
        if "-2 logLik" in line or "deviance" in line.split():
            return float(lines[i + 1].split()[1])
    raise AssertionError("no objective in the summary")


def _same_layout(a: str, e: str) -> bool:
    """Whether two lines are equal apart from the digits of differing numbers.

    A line whose numbers are all printed alike must be equal character for
    character. Where a number differs (a last-digit unit can also drop a trailing
    zero: 0.111369 vs 0.11137) the padding beside it may differ, but the line keeps
    its length (columns stay aligned) and every other character."""
    if NUMBER.findall(a) == NUMBER.findall(e):
        return a == e
    return len(a) == len(e) and re.sub(r" +", " ", NUMBER.sub("#", a)) == re.sub(
        r" +", " ", NUMBER.sub("#", e)
    )


def compare_summary(actual: str, expected: str, objective: float, tolerance=None) -> None:
    """Equal text, character for character (spacing included); numbers may differ
    by one unit in their last printed digit when our objective is no higher than the printed one
    (``tolerance(line_index, token)`` may widen the allowed difference for named
    reasons). A p-value bound such as ``<1e-05`` must be equal exactly."""
    if actual == expected:
        return
    a_lines, e_lines = actual.splitlines(), expected.splitlines()
    assert len(a_lines) == len(e_lines), f"line counts differ:\n{actual}\n---\n{expected}"
    differs = False
    for i, (a, e) in enumerate(zip(a_lines, e_lines)):
        assert _same_layout(a, e), f"line {i} differs in more than digits:\n{a!r}\n{e!r}"
        if "REML criterion at convergence:" in e:
            # the criterion is printed in full (17 digits); issue #2: equal to 1e-6
            assert abs(float(a.split(":")[1]) - float(e.split(":")[1])) <= 1e-6, (a, e)
            continue
        for ta, te in zip(a.split(), e.split()):
            if ta == te:
                continue
            assert not (ta.startswith("<") or te.startswith("<")), f"line {i}: {ta} != {te}"
            na, ne = NUMBER.fullmatch(ta), NUMBER.fullmatch(te)
            assert na and ne, f"line {i}: {ta!r} != {te!r}"
            # exact decimal arithmetic: one unit in the last digit is exactly allowed
            allowed = Decimal(str(min(_ulp(ta), _ulp(te))))
            if tolerance is not None:
                allowed = max(allowed, Decimal(repr(tolerance(i, te))))
            diff = abs(Decimal(ta) - Decimal(te))
            assert diff <= allowed, f"line {i}: {ta} vs {te} (allowed {allowed:g})\n{actual}"
            differs = True
    if differs:
        printed = _printed_objective(expected)
        # The printed objective has 4 decimals: "no higher" within half a unit.
        assert objective <= printed + 5e-5, (objective, printed)


# Cases whose optimum is so flat that MixedModels.jl's stopping point and ours are
# different, equally valid points (each measured here):
# - fm2dummy / fm2fulldummy parameterize the same covariance family (intercept + 9
#   dummies span the 10 day indicators) and must reach the same maximum, yet the
#   page reports -2 logLik 1611.9897 for one and 1610.8004 for the other: its
#   fm2dummy fit stopped 1.19 short of the optimum (we reach 1610.7999).
# - fm2dummysplit (46 parameters): page 1631.7993, here 1631.79936.
# - the dummy zerocorr fits have four variances on the boundary; page 1765.8276
#   and 1757.9686, here 1765.82765 and 1757.96864, with the intercept variance
#   958.53 there and 957.59 here.
# - fm1reml (one parameter): the exact REML optimum (Brent's method, tol 1e-14)
#   has variance 1764.0513; the page's point prints 1764.0537, ours 1764.0510.
# These are held to: the same text apart from numbers, an objective no higher
# than the page's printed one within 1e-4 (its precision plus the flatness seen
# across optimizers), and fixed-effects estimates equal to the printed digits.
UNCONVERGED_ON_PAGE = (
    "fm1reml",
    "fm2dummy",
    "fm2dummysplit",
    "fm2fulldummy",
    "fm2dummyzerocorr",
    "fm2dummyzerocorrsplit",
    "fm2fulldummyzerocorr",
)
LMM_CASES = [n for n, c in CASES.items() if not c.get("family") and n not in UNCONVERGED_ON_PAGE]


@pytest.mark.parametrize("name", LMM_CASES)
def test_lmm_summary_matches_reference_page(name):
    model = fit_case(name)
    compare_summary(str(model.summary()), CASES[name]["summary"], model.objective_)


@pytest.mark.parametrize("name", UNCONVERGED_ON_PAGE)
def test_overparameterized_cases_at_least_as_good_as_page(name):
    model = fit_case(name)
    expected = CASES[name]["summary"]
    actual = str(model.summary())
    a_lines, e_lines = actual.splitlines(), expected.splitlines()
    assert len(a_lines) == len(e_lines)
    for a, e in zip(a_lines, e_lines):
        assert [NUMBER.sub("#", t) for t in a.split()] == [NUMBER.sub("#", t) for t in e.split()]
    assert model.objective_ <= _printed_objective(expected) + 1e-4
    if "REML" in expected:
        return  # fm1reml: its one coefficient is checked by the intercept test below
    start = next(i for i, line in enumerate(e_lines) if line.startswith("(Intercept)"))
    for a, e in zip(a_lines[start:-1], e_lines[start:-1]):
        ca, ce = Decimal(a.split()[-4]), Decimal(e.split()[-4])
        assert abs(ca - ce) <= Decimal(str(min(_ulp(a.split()[-4]), _ulp(e.split()[-4])))), (a, e)


def test_gm1_summary_at_the_reference_point():
    """gm1 (verbagg): the deviance surface is flat along the intercept/anger
    direction, and MixedModels.jl stopped 6e-6 deviance units above the optimum
    reached here, 0.0018 standard errors away in the intercept, so the fitted
    estimates cannot agree to six digits (test_gm1_figures holds the fit to the
    page). Here the whole pipeline after the optimizer (PIRLS, Laplace deviance,
    vcov, report) is evaluated at the page's own estimates: beta in full, theta
    from the printed variances; the summary must then match to the last digit."""
    from sklmixed._optim import OptSummary
    from sklmixed._results import glmm_result

    model = fit_case("gm1")
    expected = CASES["gm1"]["summary"]
    beta = np.asarray(FIGURES["gm1"]["beta"])
    variances = [float(line.split()[2]) for line in expected.splitlines()[10:12]]
    theta = np.sqrt(variances)
    problem = model.problem_
    problem.reset()
    deviance = problem.deviance(theta, beta)
    assert deviance == pytest.approx(FIGURES["gm1"]["deviance"], abs=1e-4)
    opt = OptSummary(theta, theta, deviance, deviance, 1, "fixed", "SUCCESS", 0, 0, 0, -1)
    result = glmm_result(
        problem, beta, theta, opt, model.design_.formula_text, model.coef_names_, False
    )
    from sklmixed.report import render_text

    compare_summary(render_text(result), expected, deviance)


def test_fm1reml_intercept_and_standard_error():
    m = fit_case("fm1reml")
    assert round(m.coef_[0], 1) == 1527.5
    assert f"{m.stderror_[0]:.4f}" == "19.3834"


def test_page_objectives_to_1e6():
    assert fit_case("fm1").objective_ == pytest.approx(327.327059881143, abs=1e-6)
    assert fit_case("fm1reml").objective_ == pytest.approx(319.65427684225943, abs=1e-6)
    assert fit_case("fm4r").objective_ == pytest.approx(330.86058899096145, abs=1e-6)


def test_fm1_extractors():
    m, ref = fit_case("fm1"), FIGURES["fm1"]
    assert m.loglik_ == pytest.approx(ref["loglik"], abs=1e-6)
    assert m.aic_ == pytest.approx(ref["aic"], abs=1e-6)
    assert m.bic_ == pytest.approx(ref["bic"], abs=1e-6)
    assert m.dof_ == ref["dof"] and m.nobs_ == ref["nobs"]
    np.testing.assert_allclose(m.coef_, ref["beta"], rtol=1e-10)
    ranef = m.ranef_["batch"]["(Intercept)"].to_numpy()
    # three are printed in full, three to 6 significant digits: compare each to one
    # unit of its last printed digit, and the full ones to 1e-6 relative (the flat
    # optimum, see fm1 in test_lmm_summary_matches_reference_page)
    for ours, theirs in zip(ranef, ref["ranef_batch"]):
        ulp = _ulp(repr(theirs)) if len(repr(theirs)) < 10 else 0.0
        assert abs(ours - theirs) <= max(ulp, 1e-6 * abs(theirs)), (ours, theirs)


def test_fm2_extractors():
    m, ref = fit_case("fm2"), FIGURES["fm2"]
    # vcov is printed to 6 significant digits; the optimum is flat enough that
    # sigma differs in the 6th digit (see the summary test), hence rtol 2e-5.
    np.testing.assert_allclose(m.vcov_, ref["vcov"], rtol=2e-5)
    np.testing.assert_allclose(m.stderror_, ref["stderror"], rtol=2e-5)
    assert m.sigma_**2 == pytest.approx(ref["varest"], rel=2e-6)
    assert m.sigma_ == pytest.approx(ref["sdest"], rel=1e-6)


def test_singular_fit_reports_exact_zero_variance():
    m = fit_case("fm3singular")
    assert m.theta_.tolist() == [0.0]
    assert m.ranef_["batch"].to_numpy().tolist() == [[0.0]] * 6


def test_gm1_figures():
    m, ref = fit_case("gm1"), FIGURES["gm1"]
    assert m.deviance_ == pytest.approx(ref["deviance"], abs=1e-3)
    assert m.deviance_ <= ref["deviance"] + 1e-6
    assert m.loglik_ == pytest.approx(ref["loglik"], abs=1e-3)
    se = np.asarray(ref["stderror"])
    # beta within 1% of a standard error (see test_gm1_summary_matches_reference_page)
    assert np.all(np.abs(m.coef_ - ref["beta"]) <= 0.01 * se)
    np.testing.assert_allclose(m.stderror_, se, rtol=1e-3)


def test_gm1_fast_deviance_is_higher_by_the_page_amount():
    df = load_dataset("verbagg")
    fast = MixedGLMClassifier(formula=CASES["gm1"]["formula"], fast=True).fit(df)
    increase = fast.deviance_ - fit_case("gm1").deviance_
    # page: 0.33800914130279125, from MixedModels.jl's own stopping points (the
    # slow fit 6e-6 above the optimum found here)
    assert increase == pytest.approx(FIGURES["gm1"]["fast_deviance_increase"], abs=1e-4)


@pytest.mark.parametrize(
    "key, options",
    [
        ("default", {}),
        ("fast", {"fast": True}),
        ("nagq9", {"nagq": 9}),
        ("nagq9_fast", {"nagq": 9, "fast": True}),
    ],
)
def test_contra_deviances(key, options):
    ref = FIGURES["contra"]
    df = load_dataset("contra")
    m = MixedGLMClassifier(formula=ref["formula"], family=ref["family"], **options).fit(df)
    # the page prints two decimals
    assert round(m.deviance_, 2) == ref["deviance"][key]


@pytest.mark.parametrize("name", ["fm1", "fm2", "fm3singular", "fm4", "fm4r"])
def test_leverage_sums(name):
    # printed by the page in full; our optimum differs from MixedModels.jl's in
    # the 7th digit on these flat surfaces, hence 1e-6 relative (fm3singular: the
    # exact lower bound p = 1)
    assert fit_case(name).leverage().sum() == pytest.approx(FIGURES[name]["leverage_sum"], rel=1e-6)


def test_fm1_condvar():
    blocks = fit_case("fm1").condvar()["batch"]
    assert blocks.shape == (6, 1, 1)
    np.testing.assert_allclose(blocks[:, 0, 0], FIGURES["fm1"]["condvar_batch"], rtol=1e-6)


def test_singular_fit_is_flagged_and_warns():
    from sklmixed.exceptions import SingularFitWarning

    with pytest.warns(SingularFitWarning, match="batch: \\(Intercept\\) has zero variance"):
        m = MixedLMRegressor(formula="yield ~ 1 + (1|batch)").fit(load_dataset("dyestuff2"))
    assert m.is_singular_ and not fit_case("fm1").is_singular_


def test_extractors_agree_with_each_other():
    m = fit_case("fm2")
    np.testing.assert_allclose(
        m.residuals(), load_dataset("sleepstudy")["reaction"] - m.fitted_values()
    )
    np.testing.assert_allclose(m.fitted_values(), m.predict(load_dataset("sleepstudy")))
    assert m.fixef_names_ == m.coef_names_ and np.array_equal(m.fixef_, m.coef_)
    u = m.ranef(uscale=True)["subj"].to_numpy()
    lam = np.array([[m.theta_[0], 0], [m.theta_[1], m.theta_[2]]])
    np.testing.assert_allclose(u @ lam.T, m.ranef_["subj"].to_numpy())
    table = m.raneftables()["subj"]
    assert table.columns.tolist() == ["subj", "(Intercept)", "days"]
    vc = m.varcorr()
    assert str(vc) == "\n".join(CASES["fm2"]["summary"].splitlines()[5:10])
    assert vc.table["variance"].iloc[-1] == pytest.approx(m.sigma_**2)
    assert vc.correlations["subj"].loc["days", "(Intercept)"] == pytest.approx(0.08, abs=0.005)


@pytest.mark.parametrize(
    "actual",
    [
        "a   1.5   <1e-11",  # a different p-value bound
        "a  1.5    <1e-05",  # spacing
        "a   1.7   <1e-05",  # more than one last-digit unit
        "b   1.5   <1e-05",  # text
    ],
)
def test_compare_summary_rejects_what_is_not_a_last_digit_difference(actual):
    with pytest.raises(AssertionError):
        compare_summary(actual, "a   1.5   <1e-05", objective=0.0)


def test_compare_summary_accepts_a_last_digit_unit_at_a_lower_objective():
    expected = "logLik  -2 logLik\n  -50.0   100.0000\nc   0.111369    2.33"
    actual = expected.replace("0.111369   ", "0.11137    ")
    compare_summary(actual, expected, 99.0)
    with pytest.raises(AssertionError):  # the same difference at a higher objective
        compare_summary(actual, expected, 100.1)
