"""Inference on the user's scale whatever the units of the data.

The core fits centred and scaled columns internally (``_core/_scaling``); every
consumer of the fitted core (bootstrap refits, profiles, ddf tables, prediction
standard errors, the scorers, offsets) must give on ``reaction + 1e9``,
``reaction * 1e6`` and ``days * 1e-6`` the result on the original sleepstudy
mapped back. Each variant engages the internal transformation (asserted), so a
consumer that read the core's internal theta, beta or sigma as the user's, or
the user's as the core's, fails here.

Tolerances: the variants are different internal problems, so the optimizer
stops at slightly different points (``tests/estimators/test_units.py`` allows
theta 1e-5 absolute). Measured here, on the worst variant (``days * 1e-6``):
coefficients and predictions agree to better than 1e-6 relative, standard
errors to 1.4e-6 (Satterthwaite's table) and 3.1e-6 (predict's std), the
bootstrap replicates' objectives to 2e-8; profile limits and Satterthwaite's
df (found iteratively themselves) pass at 1e-5. The bounds below are 1e-6 for
point estimates, 3e-5 for standard errors, 2e-7 for objectives, 1e-5 for the
iterative quantities and 1e-3 for bootstrap replicates (see there); ignoring the
scaling errs by factors of 2^k, 1e6 or by 1e9 (Satterthwaite's df on the user's
theta of days * 1e-6 came out 162 instead of 18).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.scorers import marginal_loglik

FORMULA = "reaction ~ 1 + days + (1 + days|subj)"

# (name, response multiplier a, response shift c, days multiplier k)
VARIANTS = [
    ("reaction + 1e9", 1.0, 1e9, 1.0),
    ("reaction * 1e6", 1e6, 0.0, 1.0),
    ("days * 1e-6", 1.0, 0.0, 1e-6),
]
IDS = [v[0] for v in VARIANTS]


def _data(a=1.0, c=0.0, k=1.0):
    df = load_dataset("sleepstudy").copy()
    df["reaction"] = df["reaction"] * a + c
    df["days"] = df["days"] * k
    return df


def _fit(df, **kw):
    return MixedLMRegressor(formula=FORMULA, **kw).fit(df)


@pytest.fixture(scope="module")
def base():
    return _fit(_data())


@pytest.fixture(scope="module", params=VARIANTS, ids=IDS)
def variant(request):
    _, a, c, k = request.param
    m = _fit(_data(a, c, k))
    # the variant is fitted on transformed internal columns (else the test is void)
    assert not m.problem_.scaling.identity
    return m, a, c, k


def _coef(values, a, c, k):
    """Original fixed effects -> the variant's: (a b0 + c, a b1 / k)."""
    v = np.asarray(values, dtype=float)
    return np.array([a * v[0] + c, a * v[1] / k])


def _se(values, a, k):
    v = np.asarray(values, dtype=float)
    return np.array([a * v[0], a * v[1] / k])


def _param_map(a, c, k):
    """Parameter name -> (multiplier, shift) from the original to the variant."""
    return {
        "(Intercept)": (a, c),
        "days": (a / k, 0.0),
        "sd(subj: (Intercept))": (a, 0.0),
        "sd(subj: days)": (a / k, 0.0),
        "corr(subj: (Intercept), days)": (1.0, 0.0),
        "sigma": (a, 0.0),
    }


def _assert_close_shifted(got, want, shift, rtol):
    """got == want + shift with a relative error on want (the shift, 1e9, is
    exact in the data but rounds the sum to about 1e-7)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    err = np.abs((got - shift) - want)
    bound = rtol * np.abs(want) + 8 * np.finfo(float).eps * abs(shift)
    assert np.all(err <= bound), (got - shift, want)


def test_fit_itself(base, variant):
    m, a, c, k = variant
    _assert_close_shifted(m.coef_, _coef(base.coef_, a, 0.0, k), np.array([c, 0.0]), 1e-6)
    np.testing.assert_allclose(m.sigma_, a * base.sigma_, rtol=1e-6)
    n = base.nobs_
    np.testing.assert_allclose(m.objective_, base.objective_ + 2 * n * math.log(a), rtol=1e-9)


def test_bootstrap(base, variant):
    m, a, c, k = variant
    r0 = base.bootstrap(n_boot=4, random_state=7).replicates
    r1 = m.bootstrap(n_boot=4, random_state=7).replicates
    assert list(r1.columns) == list(r0.columns)
    n = base.nobs_
    np.testing.assert_allclose(r1["objective"], r0["objective"] + 2 * n * math.log(a), rtol=2e-7)
    # Each replicate is a refit that stops at the optimizer's tolerance, from a
    # different internal problem: their objectives agree to 2e-8 relative (3e-5
    # absolute), and in the likelihood's flat directions the estimates then differ
    # by up to 4e-5 relative (measured); 1e-3 still tells 2^k or 1e6 apart.
    for name, (mult, shift) in _param_map(a, c, k).items():
        _assert_close_shifted(r1[name], mult * r0[name], shift, 1e-3)


def test_profile_confint(base, variant):
    m, a, c, k = variant
    ci0 = base.confint(method="profile")
    ci1 = m.confint(method="profile")
    for name, (mult, shift) in _param_map(a, c, k).items():
        for col in ("lower", "upper"):
            _assert_close_shifted(ci1.loc[name, col], mult * ci0.loc[name, col], shift, 1e-5)


def test_satterthwaite_table(base, variant):
    m, a, c, k = variant
    t0 = base.coeftable(ddf="satterthwaite")
    t1 = m.coeftable(ddf="satterthwaite")
    _assert_close_shifted(t1["Coef."], _coef(t0["Coef."], a, 0.0, k), np.array([c, 0.0]), 1e-6)
    np.testing.assert_allclose(t1["Std. Error"], _se(t0["Std. Error"], a, k), rtol=3e-5)
    dfcol = [col for col in t0.columns if col.lower().startswith("df")][0]
    np.testing.assert_allclose(t1[dfcol], t0[dfcol], rtol=1e-5)


def test_predict_return_std(base, variant):
    m, a, c, k = variant
    new0 = _data().iloc[::7].copy()
    new0.loc[new0.index[:3], "subj"] = "S999"  # unseen: adds the prior variance
    new1 = new0.copy()
    new1["days"] = new1["days"] * k
    mean0, std0 = base.predict(new0, return_std=True)
    mean1, std1 = m.predict(new1, return_std=True)
    _assert_close_shifted(mean1, a * mean0, c, 1e-6)
    np.testing.assert_allclose(std1, a * std0, rtol=3e-5)
    iv0 = base.predict_interval(new0, kind="prediction")
    iv1 = m.predict_interval(new1, kind="prediction")
    for col in ("lower", "upper"):
        _assert_close_shifted(iv1[col], a * iv0[col], c, 3e-5)


def test_marginal_loglik(base, variant):
    m, a, c, k = variant
    d0 = _data()
    d1 = _data(a, c, k)
    # the mean log density per row: a change of units a subtracts log a
    s0 = marginal_loglik(base, d0)
    s1 = marginal_loglik(m, d1)
    np.testing.assert_allclose(s1, s0 - math.log(a), rtol=1e-6, atol=1e-6)


def test_offset_fit(variant):
    _, a, c, k = variant
    d0 = _data()
    d1 = _data(a, c, k)
    # an offset on the response's scale: a times the original one in the variant
    off0 = 3.0 * d0["days"].to_numpy() + 10.0
    m0 = MixedLMRegressor(formula=FORMULA).fit(d0, offset=off0)
    m1 = MixedLMRegressor(formula=FORMULA).fit(d1, offset=a * off0)
    assert not m1.problem_.scaling.identity
    _assert_close_shifted(m1.coef_, _coef(m0.coef_, a, 0.0, k), np.array([c, 0.0]), 1e-6)
    np.testing.assert_allclose(m1.sigma_, a * m0.sigma_, rtol=1e-6)
    new0 = d0.iloc[::9]
    new1 = d1.iloc[::9]
    p0 = m0.predict(new0, offset=off0[::9])
    p1 = m1.predict(new1, offset=a * off0[::9])
    _assert_close_shifted(p1, a * p0, c, 1e-6)


def test_units_tests_see_the_consumers_columns():
    # The response shift alone leaves X and Z as they are: the days variant is the
    # one that moves theta and X into internal coordinates.
    m = _fit(_data(k=1e-6))
    assert m.problem_.scaling.T is not None
    assert not all(ts.identity for ts in m.problem_.scaling.terms)
    assert isinstance(m.coeftable(ddf="satterthwaite"), pd.DataFrame)
