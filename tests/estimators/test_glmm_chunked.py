"""GLMMs fitted from data read in chunks: a pyarrow Dataset in record batches, its
model matrices rebuilt on every PIRLS pass (the Dask tests cover the partitions
kept on a cluster's workers)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from sklmixed import MixedGLMClassifier, MixedGLMRegressor
from sklmixed.estimators._sources import DatasetSource
from sklmixed.exceptions import DataError, ParameterError, RowsNotAvailableError


def _frame(n=200, groups=15, seed=2):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.8 * x + rng.normal(size=groups)[g]
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-eta)), "yes", "no")
    counts = rng.poisson(np.exp(0.5 + 0.3 * x + 0.4 * rng.normal(size=groups)[g]))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g], "count": counts})


def _batches(df, size=37):
    return DatasetSource(pads.dataset(pa.Table.from_pandas(df)), batch_size=size)


def test_classifier_from_record_batches_is_the_in_memory_fit():
    df = _frame()
    f = "y ~ 1 + x + (1|g)"
    want = MixedGLMClassifier(formula=f, fast=True).fit(df)
    got = MixedGLMClassifier(formula=f, fast=True).fit(_batches(df))
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    np.testing.assert_allclose(got.coef_, want.coef_, atol=1e-6)
    np.testing.assert_allclose(got.theta_, want.theta_, atol=1e-6)
    np.testing.assert_allclose(got.stderror_, want.stderror_, atol=1e-6)
    assert list(got.classes_) == ["no", "yes"]
    np.testing.assert_allclose(got.predict_proba(df), want.predict_proba(df), atol=1e-6)
    with pytest.raises(RowsNotAvailableError):
        got.residuals()
    # what the model keeps (the factor at the fit, not the data) survives pickling
    back = pickle.loads(pickle.dumps(got))
    np.testing.assert_allclose(back.condvar()["g"], want.condvar()["g"], rtol=1e-5)
    np.testing.assert_allclose(back.predict_proba(df), want.predict_proba(df), atol=1e-6)


def test_poisson_regressor_from_record_batches():
    df = _frame()
    f = "count ~ 1 + x + (1|g)"
    want = MixedGLMRegressor(formula=f, family="poisson", fast=True).fit(df)
    got = MixedGLMRegressor(formula=f, family="poisson", fast=True).fit(_batches(df, 50))
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    np.testing.assert_allclose(got.coef_, want.coef_, atol=1e-6)


def test_bad_responses_get_the_in_memory_errors():
    df = _frame()

    def message(fit, data):
        with pytest.raises(DataError) as info:
            fit(data)
        return str(info.value)

    one_class = df.assign(y="yes")
    fit = MixedGLMClassifier(formula="y ~ 1 + x + (1|g)").fit
    assert message(fit, _batches(one_class)) == message(fit, one_class)
    negative = df.assign(count=df["count"] - 5)
    fit = MixedGLMRegressor(formula="count ~ 1 + x + (1|g)", family="poisson").fit
    assert "poisson" in message(fit, _batches(negative))
    constant = df.assign(count=3)
    assert "constant" in message(fit, _batches(constant))


def test_families_and_options_that_need_the_rows_are_refused():
    df = _frame().assign(amount=lambda d: d["count"] + 1.0)
    with pytest.raises(ParameterError, match="gamma family cannot be fitted from data read"):
        MixedGLMRegressor(formula="amount ~ 1 + x + (1|g)", family="gamma").fit(_batches(df))
    with pytest.raises(ParameterError, match="nagq=3 .* needs a single scalar"):
        MixedGLMClassifier(formula="y ~ 1 + x + (1 + x|g)", nagq=3).fit(_batches(df))


def test_zero_weights_remove_rows_as_in_memory():
    df = _frame()
    df["w"] = np.where(df["g"] == "g03", 0.0, 1.0 + (df["x"] > 0))
    f = "y ~ 1 + x + (1|g)"
    want = MixedGLMClassifier(formula=f, fast=True).fit(df, sample_weight=df["w"].to_numpy())
    got = MixedGLMClassifier(formula=f, fast=True).fit(_batches(df), sample_weight="w")
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    assert got.nobs_ == want.nobs_ < len(df)
    # the summary counts the levels met in rows of positive weight
    assert "levels of grouping factors: 14" in str(got.summary())
    assert str(got.summary()).splitlines()[-12:] == str(want.summary()).splitlines()[-12:]


def test_verbagg_laplace_from_record_batches_is_the_in_memory_fit():
    """The joint (beta, theta) stage ends with a Newton step (``_optim._polish_joint``):
    BOBYQA alone stopped where the rounding of the sums decided, 8e-4 apart in beta
    between the in-memory fit of verbagg's model and batches of 1000 rows. (A model
    with fewer coefficients here: every PIRLS pass rebuilds the batches' model
    matrices, and the page's model takes a minute; the Dask tests fit that one.)"""
    from sklmixed import load_dataset

    df = load_dataset("verbagg")
    f = "r2 ~ 1 + anger + btype + (1|subj) + (1|item)"
    want = MixedGLMClassifier(formula=f).fit(df)
    got = MixedGLMClassifier(formula=f).fit(_batches(df, 4000))
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    np.testing.assert_allclose(got.coef_, want.coef_, atol=1e-6)
    np.testing.assert_allclose(got.theta_, want.theta_, atol=1e-6)
    backwards = MixedGLMClassifier(formula=f).fit(df.iloc[::-1].reset_index(drop=True))
    np.testing.assert_allclose(backwards.coef_, want.coef_, atol=1e-6)
    np.testing.assert_allclose(backwards.theta_, want.theta_, atol=1e-6)
