"""Fits out of core (a pyarrow Dataset read in record batches) against fits in memory.

The same model from the same rows must give the same fit, whatever the batch
size: the objective to 1e-9 relative, the estimates to 1e-6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from sklmixed import MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.estimators._sources import DatasetSource, FrameSource
from sklmixed.exceptions import (
    DataError,
    MissingColumnError,
    ParameterError,
    RowsNotAvailableError,
)


def _dataset(df: pd.DataFrame):
    return pads.dataset(pa.Table.from_pandas(df, preserve_index=False))


def _assert_same_fit(ooc, mem):
    assert ooc.objective_ == pytest.approx(mem.objective_, rel=1e-9)
    np.testing.assert_allclose(ooc.coef_, mem.coef_, rtol=1e-6, atol=1e-6 * np.abs(mem.coef_).max())
    np.testing.assert_allclose(ooc.theta_, mem.theta_, rtol=1e-6, atol=1e-6)
    assert ooc.sigma_ == pytest.approx(mem.sigma_, rel=1e-6)
    np.testing.assert_allclose(ooc.stderror_, mem.stderror_, rtol=1e-6)
    assert ooc.nobs_ == mem.nobs_
    for name, table in mem.ranef_.items():
        other = ooc.ranef_[name]
        assert list(other.index) == list(table.index)
        scale = np.abs(table.to_numpy()).max()
        np.testing.assert_allclose(other.to_numpy(), table.to_numpy(), atol=1e-6 * scale)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 100_000])
def test_sleepstudy_in_batches_of_any_size(batch_size):
    df = load_dataset("sleepstudy")
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), batch_size))
    _assert_same_fit(ooc, mem)
    assert str(ooc.summary()) == str(mem.summary())
    np.testing.assert_allclose(ooc.predict(_dataset(df)), mem.predict(df), rtol=1e-8)


def test_one_chunk_is_the_in_memory_fit_exactly():
    df = load_dataset("sleepstudy")
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(FrameSource(df))
    assert ooc.objective_ == mem.objective_
    np.testing.assert_array_equal(ooc.theta_, mem.theta_)


@pytest.mark.parametrize("batch_size", [5, 50])
def test_penicillin_crossed_and_reml(batch_size):
    df = load_dataset("penicillin")
    formula = "diameter ~ 1 + (1|plate) + (1|sample)"
    for reml in (False, True):
        mem = MixedLMRegressor(formula=formula, reml=reml).fit(df)
        ooc = MixedLMRegressor(formula=formula, reml=reml).fit(
            DatasetSource(_dataset(df), batch_size)
        )
        _assert_same_fit(ooc, mem)
        assert str(ooc.summary()) == str(mem.summary())


def test_categorical_fixed_effects_and_nested_terms():
    # levels of a categorical column met only in later batches are coded as in
    # memory (pastes: the batch & cask interaction as a grouping factor)
    df = load_dataset("pastes")
    formula = "strength ~ 1 + (1|batch/cask)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 4))
    _assert_same_fit(ooc, mem)
    df2 = load_dataset("sleepstudy").assign(period=lambda d: np.where(d.days < 5, "a", "b"))
    df2 = df2.sort_values("days", kind="stable").reset_index(drop=True)  # "b" only later
    formula = "reaction ~ 1 + period + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df2)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df2), 30))
    assert ooc.coef_names_ == mem.coef_names_
    _assert_same_fit(ooc, mem)


def _synth(n_rows, n=1_000_000, n_users=6040, n_items=3706, seed=20261124):
    """The first ``n_rows`` rows of the benchmarks' crossed synthetic (same draws)."""
    rng = np.random.default_rng(seed)
    pu = rng.pareto(1.2, n_users) + 1
    pu /= pu.sum()
    pi = rng.pareto(0.9, n_items) + 1
    pi /= pi.sum()
    users = rng.choice(n_users, size=n, p=pu)[:n_rows]
    items = rng.choice(n_items, size=n, p=pi)[:n_rows]
    u = rng.normal(0, 0.45, n_users)
    v = rng.normal(0, 0.6, n_items)
    x = rng.normal(0, 1, n)[:n_rows]
    e = rng.normal(0, 0.9, n)[:n_rows]
    y = 3.5 + 0.2 * x + u[users] + v[items] + e
    return pd.DataFrame(
        {
            "user": [f"U{i:05d}" for i in users],
            "item": [f"M{i:05d}" for i in items],
            "x": x,
            "y": y,
        }
    )


@pytest.mark.slow
def test_crossed_synthetic_20k_rows_in_batches():
    df = _synth(20_000)
    formula = "y ~ 1 + x + (1|user) + (1|item)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    data = _dataset(df)
    for batch_size in (20_000, 4096, 777):
        ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(data, batch_size))
        _assert_same_fit(ooc, mem)


def test_vector_valued_crossed_model():
    df = _synth(3000)
    # a random slope of x per item, so that the vector term is not singular
    codes, _ = pd.factorize(df["item"])
    slopes = np.random.default_rng(5).normal(0, 0.3, codes.max() + 1)
    df["y"] = df["y"] + slopes[codes] * df["x"]
    formula = "y ~ 1 + x + (1 + x|item) + (1|user)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 256))
    _assert_same_fit(ooc, mem)


def test_weights_and_offset_from_columns():
    df = load_dataset("sleepstudy")
    rng = np.random.default_rng(0)
    df = df.assign(w=rng.uniform(0.5, 2.0, len(df)), off=rng.normal(0, 5, len(df)))
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df, sample_weight=df.w, offset=df.off)
    ooc = MixedLMRegressor(formula=formula).fit(
        DatasetSource(_dataset(df), 16), sample_weight="w", offset="off"
    )
    _assert_same_fit(ooc, mem)
    np.testing.assert_allclose(
        ooc.predict(_dataset(df), offset="off"), mem.predict(df, offset=df.off), rtol=1e-8
    )


def test_shifted_response_and_covariate_are_centred_as_in_memory():
    df = load_dataset("sleepstudy").assign(
        reaction=lambda d: d.reaction + 1e7, days=lambda d: d.days + 1e4
    )
    formula = "reaction ~ 1 + days + (1|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 13))
    _assert_same_fit(ooc, mem)


def test_rank_deficient_columns_are_dropped_as_in_memory():
    df = load_dataset("sleepstudy").assign(days2=lambda d: 2.0 * d.days)
    formula = "reaction ~ 1 + days + days2 + (1|subj)"
    with pytest.warns(Warning, match="rank deficient"):
        mem = MixedLMRegressor(formula=formula).fit(df)
    with pytest.warns(Warning, match="rank deficient"):
        ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 7))
    np.testing.assert_array_equal(np.isnan(ooc.stderror_), np.isnan(mem.stderror_))
    assert ooc.objective_ == pytest.approx(mem.objective_, rel=1e-9)


def test_per_row_results_need_the_data_in_memory():
    df = load_dataset("sleepstudy")
    ooc = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(_dataset(df))
    for method in (ooc.fitted_values, ooc.residuals, ooc.leverage, ooc.simulate):
        with pytest.raises(RowsNotAvailableError, match="in memory"):
            method()
    assert set(ooc.varcorr().__dict__) or ooc.varcorr() is not None
    assert ooc.condvar()["subj"].shape[0] == 18


# ----------------------------------------------------------------- bad input


def test_missing_column_is_the_same_error():
    df = load_dataset("sleepstudy")
    formula = "reaction ~ 1 + dayz + (1|subj)"
    with pytest.raises(MissingColumnError) as mem:
        MixedLMRegressor(formula=formula).fit(df)
    with pytest.raises(MissingColumnError) as ooc:
        MixedLMRegressor(formula=formula).fit(_dataset(df))
    assert str(ooc.value) == str(mem.value)


def test_missing_values_are_the_same_error_with_the_count_over_all_batches():
    df = load_dataset("sleepstudy")
    df.loc[[3, 100, 170], "days"] = np.nan
    formula = "reaction ~ 1 + days + (1|subj)"
    with pytest.raises(DataError) as mem:
        MixedLMRegressor(formula=formula).fit(df)
    with pytest.raises(DataError) as ooc:
        MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 10))
    assert str(ooc.value) == str(mem.value)
    assert "3 missing" in str(ooc.value)


def test_unseen_level_in_predict_is_the_same_error_or_population():
    df = load_dataset("sleepstudy")
    new = df.head(4).assign(subj="S999")
    formula = "reaction ~ 1 + days + (1|subj)"
    mem = MixedLMRegressor(formula=formula, new_levels="error").fit(df)
    ooc = MixedLMRegressor(formula=formula, new_levels="error").fit(_dataset(df))
    with pytest.raises(DataError) as e_mem:
        mem.predict(new)
    with pytest.raises(DataError) as e_ooc:
        ooc.predict(_dataset(new))
    assert str(e_ooc.value) == str(e_mem.value)
    ooc.set_params(new_levels="population")
    mem.set_params(new_levels="population")
    with pytest.warns(Warning) as w_ooc:
        got = ooc.predict(_dataset(new))
    with pytest.warns(Warning) as w_mem:
        want = mem.predict(new)
    assert [str(w.message) for w in w_ooc] == [str(w.message) for w in w_mem]
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_unsupported_requests_say_so():
    df = load_dataset("sleepstudy")
    data = _dataset(df)
    with pytest.raises(ParameterError, match="formula"):
        MixedLMRegressor(groups="subj").fit(data)
    with pytest.raises(ParameterError, match="y must be None"):
        MixedLMRegressor(formula="reaction ~ 1 + (1|subj)").fit(data, y=df.reaction)
    with pytest.raises(ParameterError, match="name of a column"):
        MixedLMRegressor(formula="reaction ~ 1 + (1|subj)").fit(data, sample_weight=np.ones(180))
    with pytest.raises(Exception, match="scale"):
        MixedLMRegressor(formula="reaction ~ 1 + scale(days) + (1|subj)").fit(data)
    # GLMMs fit from chunks for the families without a dispersion (test_glmm_chunked)
    with pytest.raises(ParameterError, match="in chunks"):
        MixedGLMRegressor(formula="reaction ~ 1 + (1|subj)", family="gamma").fit(data)


def test_score_and_pickle_out_of_core():
    import pickle

    df = load_dataset("sleepstudy")
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 50))
    assert ooc.score(_dataset(df)) == pytest.approx(mem.score(df), rel=1e-9)
    back = pickle.loads(pickle.dumps(ooc))
    np.testing.assert_allclose(back.condvar()["subj"], ooc.condvar()["subj"])
    np.testing.assert_allclose(back.predict(df.head()), mem.predict(df.head()), rtol=1e-8)


def test_zero_weights_remove_rows_and_levels_as_in_memory():
    df = load_dataset("sleepstudy")
    w = np.ones(len(df))
    w[:10] = 0.0  # every row of the first subject
    w[50:55] = 0.0
    df = df.assign(w=w)
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    mem = MixedLMRegressor(formula=formula).fit(df, sample_weight=df.w)
    ooc = MixedLMRegressor(formula=formula).fit(DatasetSource(_dataset(df), 9), sample_weight="w")
    _assert_same_fit(ooc, mem)
    assert ooc.nobs_ == 165
    assert [vc.nlevels for vc in ooc.result_.varcomps] == [17]


def test_unseen_levels_warn_only_when_no_batch_has_a_seen_level():
    import warnings

    from sklmixed.exceptions import UnseenLevelsWarning

    df = load_dataset("sleepstudy")
    ooc = MixedLMRegressor(formula="reaction ~ 1 + days + (1|subj)").fit(_dataset(df))
    new = pd.concat([df.head(3), df.head(3).assign(subj="S999")], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenLevelsWarning)
        ooc.predict(DatasetSource(_dataset(new), 3))  # the second batch only: no warning
    with pytest.warns(UnseenLevelsWarning):
        ooc.predict(DatasetSource(_dataset(new.tail(3)), 1))


@pytest.mark.parametrize(
    "messy",
    [
        lambda df: df.assign(days=df["days"].astype("int8")),
        lambda df: df.assign(reaction=df["reaction"] + 1e9),
        lambda df: df.assign(days=df["days"].astype(str)),  # read as text: a factor
    ],
    ids=["int8", "y+1e9", "text-numbers"],
)
def test_messy_columns_fit_from_a_dataset_as_from_the_frame(messy):
    import warnings

    frame = messy(load_dataset("sleepstudy"))
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    with warnings.catch_warnings(record=True) as seen_mem:
        warnings.simplefilter("always")
        mem = MixedLMRegressor(formula=formula).fit(frame)
    with warnings.catch_warnings(record=True) as seen_ooc:
        warnings.simplefilter("always")
        ooc = MixedLMRegressor(formula=formula).fit(_dataset(frame))
    _assert_same_fit(ooc, mem)
    assert [type(w.message) for w in seen_ooc] == [type(w.message) for w in seen_mem]
