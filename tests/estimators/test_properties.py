"""Property-based tests: random formulas over random data, and parameter recovery."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklmixed import MixedLMRegressor

FIXED = ["x1", "x2", "c", "x1*c", "x1:x2", "I(x1**2)", "0"]
RANDOM = [
    "(1|g)",
    "(1 + x1|g)",
    "(0 + x1|g)",
    "zerocorr(1 + x1|g)",
    "(1|h)",
    "(1|g/h)",
    "(1|g & h)",
    "(x2||h)",
    "(1 + c|g)",
    "(1 + fulldummy(c)|h)",
    "(1|nope)",
    "(1|",
]


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=8, max_value=60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ng, nh = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    df = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(scale=draw(st.sampled_from([1e-3, 1.0, 1e4])), size=n),
            "c": rng.choice(list("abcd")[: draw(st.integers(1, 4))], size=n),
            "g": rng.integers(0, ng, n).astype(str),
            "h": rng.integers(0, nh, n).astype(str),
        }
    )
    df["y"] = df["x1"] + rng.normal(size=n) + df["g"].map(hash).mod(7) / 3
    if draw(st.booleans()):
        df.loc[df.index[: draw(st.integers(0, 2))], "x1"] = np.nan
    return df


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    df=frames(),
    fixed=st.lists(st.sampled_from(FIXED), min_size=0, max_size=3, unique=True),
    random=st.lists(st.sampled_from(RANDOM), min_size=0, max_size=2, unique=True),
    reml=st.booleans(),
)
def test_random_formulas_fit_or_raise_a_clear_error(df, fixed, random, reml):
    formula = "y ~ " + " + ".join(["1"] + fixed + random)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = MixedLMRegressor(formula=formula, reml=reml).fit(df)
        except (ValueError, TypeError, KeyError) as exc:
            assert str(exc)  # a message that says something
            return
    assert np.isfinite(m.objective_) or m.objective_ == -np.inf
    assert m.predict(df.dropna()).shape == (df.dropna().shape[0],)
    str(m.summary())


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sd_int=st.floats(0.0, 3.0),
    sd_slope=st.floats(0.0, 1.5),
    rho=st.floats(-0.9, 0.9),
    reml=st.booleans(),
)
def test_objective_at_the_estimate_is_no_higher_than_at_the_truth(
    seed, sd_int, sd_slope, rho, reml
):
    rng = np.random.default_rng(seed)
    ng, per = 15, 8
    g = np.repeat(np.arange(ng), per)
    x = rng.normal(size=ng * per)
    cov = np.array([[sd_int**2, rho * sd_int * sd_slope], [rho * sd_int * sd_slope, sd_slope**2]])
    lam = np.linalg.cholesky(cov + 1e-12 * np.eye(2))
    b = rng.normal(size=(ng, 2)) @ lam.T
    y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=ng * per)
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = MixedLMRegressor(formula="y ~ 1 + x + (1 + x|g)", reml=reml).fit(df)
    # true theta: the lower Cholesky factor of cov / sigma^2 (sigma = 1), lower triangle
    # column by column
    true_theta = np.array([lam[0, 0], lam[1, 0], lam[1, 1]])
    assert m.objective_ <= m.problem_.objective(true_theta) + 1e-6
