"""Dask DataFrames: fits reduced on the workers of a cluster, predictions as Dask
collections, the same estimates, predictions and errors as in memory.

One LocalCluster of 2 workers for the module. Its workers are threads of this
process (``processes=False``): starting two worker processes costs seconds, and
the numbers do not depend on where the workers run. What crossing a process
boundary adds, pickling the estimator and the reduction's functions, is tested
explicitly (and by one fit on worker processes, marked slow).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor, load_dataset
from sklmixed.estimators._dask import DaskSource
from sklmixed.exceptions import (
    DataError,
    DataTypeError,
    MissingColumnError,
    ParameterError,
    RowsNotAvailableError,
)

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

SLEEP = "reaction ~ 1 + days + (1 + days|subj)"
PENICILLIN = "diameter ~ 1 + (1|plate) + (1|sample)"
VERBAGG = "r2 ~ 1 + anger + gender + btype + situ + mode + (1|subj) + (1|item)"


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def partitioned(df: pd.DataFrame, n: int) -> dd.DataFrame:
    """``df`` in ``n`` partitions of uneven sizes (known divisions on its RangeIndex)."""
    if n == 1:
        return dd.from_pandas(df, npartitions=1)
    # cut points at squares: the first partitions small, the last one large
    cuts = sorted({round(len(df) * (i / n) ** 2) for i in range(1, n)} - {0})
    divisions = [0, *cuts, len(df) - 1]
    out = dd.from_pandas(df, npartitions=1).repartition(divisions=divisions)
    assert out.npartitions == n
    return out


@pytest.fixture(scope="module")
def sleepstudy():
    return load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def sleep_model(sleepstudy):
    return MixedLMRegressor(formula=SLEEP).fit(sleepstudy)


@pytest.fixture(scope="module")
def verbagg():
    return load_dataset("verbagg")


@pytest.fixture(scope="module")
def verbagg_model(verbagg):
    return MixedGLMClassifier(formula=VERBAGG, fast=True).fit(verbagg)


# ------------------------------------------------------------------ the source


def _count_and_levels(part: pd.DataFrame) -> tuple[int, frozenset]:
    return len(part), frozenset(part["subj"])


def _add(a: tuple[int, frozenset], b: tuple[int, frozenset]) -> tuple[int, frozenset]:
    return a[0] + b[0], a[1] | b[1]


@pytest.mark.parametrize("n", [1, 3, 7])
def test_source_reduces_the_partitions_on_the_cluster(client, sleepstudy, n):
    source = DaskSource(partitioned(sleepstudy, n))
    assert source.npartitions == n and source.columns == list(sleepstudy.columns)
    assert source.meta.empty and list(source.meta.columns) == list(sleepstudy.columns)
    rows, levels = source.map_reduce(_count_and_levels, _add)
    assert rows == len(sleepstudy) and levels == frozenset(sleepstudy["subj"])


def test_source_combines_neighbours_in_order(client, sleepstudy):
    # a combination that is not commutative shows the order of the tree
    got = DaskSource(partitioned(sleepstudy, 7)).map_reduce(
        lambda part: [int(part.index[0])], lambda a, b: a + b
    )
    assert got == sorted(got) and len(got) == 7


def test_source_needs_a_dask_dataframe(sleepstudy):
    with pytest.raises(DataTypeError, match="needs a Dask DataFrame"):
        DaskSource(sleepstudy)


# ------------------------------------------------------------------------ fit


def _weighted_sleepstudy(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(w=1.0 + (df["days"] % 3) / 2.0)


LMM_CASES = {
    "sleepstudy": (lambda: load_dataset("sleepstudy"), SLEEP, None),
    "penicillin": (lambda: load_dataset("penicillin"), PENICILLIN, None),
    "weighted": (lambda: _weighted_sleepstudy(load_dataset("sleepstudy")), SLEEP, "w"),
}


@pytest.fixture(scope="module")
def in_memory_fits():
    out = {}
    for name, (data, formula, weight) in LMM_CASES.items():
        df = data()
        sw = None if weight is None else df[weight].to_numpy()
        out[name] = (df, MixedLMRegressor(formula=formula).fit(df, sample_weight=sw))
    return out


def assert_same_values(got, want):
    """Equal to the last bit or two: a partition's X beta is a product over fewer
    rows, which BLAS may sum in another order than over all rows."""
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def assert_same_fit(got, want):
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    for attr in ("coef_", "theta_", "stderror_"):
        np.testing.assert_allclose(getattr(got, attr), getattr(want, attr), rtol=1e-6, atol=1e-6)
    if want.sigma_ is None:  # a GLMM has no residual SD
        assert got.sigma_ is None
    else:
        assert got.sigma_ == pytest.approx(want.sigma_, rel=1e-6)
    assert got.nobs_ == want.nobs_ and got.coef_names_ == want.coef_names_
    for name, table in want.ranef_.items():
        np.testing.assert_allclose(got.ranef_[name].to_numpy(), table.to_numpy(), atol=1e-6)
        assert got.ranef_[name].index.equals(table.index)


@pytest.mark.parametrize("n", [1, 3, 7])
@pytest.mark.parametrize("case", list(LMM_CASES))
def test_fit_on_partitions_is_the_in_memory_fit(client, in_memory_fits, case, n):
    df, want = in_memory_fits[case]
    _, formula, weight = LMM_CASES[case]
    ddf = partitioned(df, n)
    got = MixedLMRegressor(formula=formula).fit(ddf, sample_weight=weight)
    assert_same_fit(got, want)
    assert str(got.summary()).splitlines()[:2] == str(want.summary()).splitlines()[:2]
    # predictions of the model fitted on the cluster, on the cluster
    pred = got.predict(ddf)
    assert isinstance(pred, dd.Series)
    values = pred.compute().to_numpy()
    assert_same_values(values, got.predict(df))
    # and those of the in-memory fit, whose estimates agree to 1e-6
    np.testing.assert_allclose(values, want.predict(df), rtol=1e-7)


def test_fit_skips_empty_partitions(client, in_memory_fits):
    df, _ = in_memory_fits["sleepstudy"]
    ddf = partitioned(df, 7)
    kept = ddf[ddf["subj"] != "S308"]  # the first partitions (S308's rows) now empty
    assert len(kept.partitions[0]) == 0
    got = MixedLMRegressor(formula=SLEEP).fit(kept)
    want = MixedLMRegressor(formula=SLEEP).fit(df[df["subj"] != "S308"])
    assert_same_fit(got, want)


def test_fit_errors_are_those_of_a_dataframe(client, sleepstudy):
    def error(data, **kw):
        with pytest.raises((DataError, MissingColumnError)) as info:
            MixedLMRegressor(formula=SLEEP).fit(data, **kw)
        return type(info.value), str(info.value)

    bad = sleepstudy.assign(days=sleepstudy["days"].astype(float))
    bad.loc[[3, 100, 170], "days"] = np.nan  # in three partitions: counted over all
    for frame in (bad, sleepstudy.drop(columns="days")):
        assert error(partitioned(frame, 3)) == error(frame)
    with pytest.raises(DataError, match="constant"):
        MixedLMRegressor(formula=SLEEP).fit(partitioned(sleepstudy.assign(reaction=1.0), 3))


def test_missing_column_is_found_before_computing(client, sleepstudy):
    # a partition that cannot be computed shows that nothing was
    def fail(part):
        raise AssertionError("a partition was computed")

    ddf = partitioned(sleepstudy.drop(columns="days"), 3)
    poisoned = ddf.map_partitions(fail, meta=ddf._meta)
    with pytest.raises(MissingColumnError, match="column 'days' not found"):
        MixedLMRegressor(formula=SLEEP).fit(poisoned)


# ---------------------------------------------------------------------- GLMMs


def test_verbagg_laplace_on_partitions_is_the_in_memory_fit(client, verbagg):
    # the Laplace fit: the joint (beta, theta) stage ends with a Newton step
    # (``_optim._polish_joint``); BOBYQA alone stopped 2e-4 apart in beta
    want = MixedGLMClassifier(formula=VERBAGG).fit(verbagg)
    got = MixedGLMClassifier(formula=VERBAGG).fit(partitioned(verbagg, 3))
    assert_same_fit(got, want)


def test_verbagg_on_partitions_is_the_in_memory_fit(client, verbagg, verbagg_model):
    # each PIRLS iteration one map-reduce over the partitions (fast=True: theta
    # optimized, beta from PIRLS)
    ddf = partitioned(verbagg, 3)
    got = MixedGLMClassifier(formula=VERBAGG, fast=True).fit(ddf)
    assert_same_fit(got, verbagg_model)
    assert list(got.classes_) == list(verbagg_model.classes_)
    assert_same_values(got.predict_proba(ddf).compute().to_numpy(), got.predict_proba(verbagg))
    with pytest.raises(RowsNotAvailableError, match="fitted out of core"):
        got.fitted_values()


def _bernoulli_frame(n=200, groups=15, seed=2):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.8 * x + rng.normal(scale=1.0, size=groups)[g]
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-eta)), "yes", "no")
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


@pytest.mark.parametrize("nagq", [1, 5])
def test_laplace_and_quadrature_fits_on_partitions(client, nagq):
    df = _bernoulli_frame()
    want = MixedGLMClassifier(formula="y ~ 1 + x + (1|g)", nagq=nagq).fit(df)
    got = MixedGLMClassifier(formula="y ~ 1 + x + (1|g)", nagq=nagq).fit(partitioned(df, 3))
    # the joint (beta, theta) stage ends with a Newton step that lands on the
    # optimum whatever order the sums were taken in (``_optim._polish_joint``)
    assert got.objective_ == pytest.approx(want.objective_, rel=1e-9)
    np.testing.assert_allclose(got.coef_, want.coef_, atol=1e-6)
    np.testing.assert_allclose(got.theta_, want.theta_, atol=1e-6)


def test_poisson_regressor_with_weight_and_offset_columns(client, sleepstudy):
    rng = np.random.default_rng(4)
    df = sleepstudy.assign(
        count=np.round(sleepstudy["reaction"] / 10.0),
        w=rng.uniform(0.5, 2.0, len(sleepstudy)),
        off=rng.normal(scale=0.1, size=len(sleepstudy)),
    )
    f = "count ~ 1 + days + (1|subj)"
    want = MixedGLMRegressor(formula=f, family="poisson", fast=True).fit(
        df, sample_weight=df["w"].to_numpy(), offset=df["off"].to_numpy()
    )
    ddf = partitioned(df, 3)
    got = MixedGLMRegressor(formula=f, family="poisson", fast=True).fit(
        ddf, sample_weight="w", offset="off"
    )
    assert_same_fit(got, want)


def test_glmm_bad_input(client, verbagg, sleepstudy):
    ddf = partitioned(verbagg, 3)
    with pytest.raises(ParameterError, match="gamma family cannot be fitted from data read"):
        MixedGLMRegressor(formula="reaction ~ 1 + days + (1|subj)", family="gamma").fit(
            partitioned(sleepstudy, 3)
        )
    with pytest.raises(ParameterError, match="y must be None"):
        MixedGLMClassifier(formula=VERBAGG).fit(ddf, y=verbagg["r2"])
    three = verbagg.assign(r2=verbagg["resp"])  # no, perhaps, yes
    with pytest.raises(DataError) as mem:
        MixedGLMClassifier(formula=VERBAGG).fit(three)
    with pytest.raises(DataError) as chunked:
        MixedGLMClassifier(formula=VERBAGG).fit(partitioned(three, 3))
    assert str(chunked.value) == str(mem.value)
    with pytest.raises(MissingColumnError, match="'anger' not found"):
        MixedGLMClassifier(formula=VERBAGG).fit(partitioned(verbagg.drop(columns="anger"), 3))


# ----------------------------------------------------------------- prediction


@pytest.mark.parametrize("n", [1, 3, 7])
def test_predict_is_a_dask_series_equal_to_in_memory(client, sleepstudy, sleep_model, n):
    ddf = partitioned(sleepstudy, n)
    pred = sleep_model.predict(ddf)
    assert isinstance(pred, dd.Series)
    assert pred.npartitions == n and pred.divisions == ddf.divisions
    got = pred.compute()
    assert got.index.equals(sleepstudy.index)
    assert_same_values(got.to_numpy(), sleep_model.predict(sleepstudy))


def test_predict_keeps_an_index_of_unknown_divisions(client, sleepstudy, sleep_model):
    shuffled = sleepstudy.sample(frac=1.0, random_state=0).set_index(
        pd.Index([f"r{i}" for i in range(len(sleepstudy))])
    )
    ddf = dd.from_pandas(shuffled, npartitions=4, sort=False)
    assert not ddf.known_divisions
    got = sleep_model.predict(ddf).compute()
    assert got.index.equals(shuffled.index)
    assert_same_values(got.to_numpy(), sleep_model.predict(shuffled))


def test_predict_with_an_offset_column(client, sleepstudy):
    df = sleepstudy.assign(off=np.linspace(-3.0, 3.0, len(sleepstudy)))
    m = MixedLMRegressor(formula=SLEEP).fit(df, offset=df["off"].to_numpy())
    ddf = partitioned(df, 3)
    got = m.predict(ddf, offset=ddf["off"]).compute()
    assert_same_values(got.to_numpy(), m.predict(df, offset=df["off"].to_numpy()))


def test_classifier_predictions_are_dask_collections(client, verbagg, verbagg_model):
    ddf = partitioned(verbagg, 3)
    m = verbagg_model
    labels = m.predict(ddf)
    scores = m.decision_function(ddf)
    proba = m.predict_proba(ddf)
    assert isinstance(labels, dd.Series) and isinstance(scores, dd.Series)
    assert isinstance(proba, dd.DataFrame) and list(proba.columns) == list(m.classes_)
    assert proba.divisions == ddf.divisions
    np.testing.assert_array_equal(labels.compute().to_numpy(), m.predict(verbagg))
    assert_same_values(scores.compute().to_numpy(), m.decision_function(verbagg))
    assert_same_values(proba.compute().to_numpy(), m.predict_proba(verbagg))


def test_regressor_glmm_predict(client, sleepstudy):
    df = sleepstudy.assign(count=np.round(sleepstudy["reaction"] / 10.0))
    m = MixedGLMRegressor(formula="count ~ 1 + days + (1|subj)", family="poisson").fit(df)
    got = m.predict(partitioned(df, 7)).compute()
    assert_same_values(got.to_numpy(), m.predict(df))


# ------------------------------------------------------------ bad prediction input


def test_predict_missing_column_raises_before_computing(client, sleepstudy, sleep_model):
    ddf = partitioned(sleepstudy.drop(columns="days"), 3)
    with pytest.raises(MissingColumnError, match="column 'days' not found"):
        sleep_model.predict(ddf)  # the graph is not even built


def test_predict_text_in_a_numeric_column(client, sleepstudy, sleep_model):
    ddf = partitioned(sleepstudy.assign(days=sleepstudy["days"].astype(str) + "d"), 3)
    with pytest.raises(DataError, match=r"'days' was numeric in fit .* partition \d of the Dask"):
        sleep_model.predict(ddf).compute()


def test_predict_nan_names_the_column_and_the_partition(client, sleepstudy, sleep_model):
    bad = sleepstudy.assign(days=sleepstudy["days"].astype(float))
    bad.loc[150, "days"] = np.nan
    pred = sleep_model.predict(partitioned(bad, 3))
    with pytest.raises(DataError, match=r"column 'days' has 1 missing .* partition 2 "):
        pred.compute()


def test_predict_unseen_level_error(client, sleepstudy):
    m = MixedLMRegressor(formula=SLEEP, new_levels="error").fit(sleepstudy)
    new = sleepstudy.assign(subj=np.where(sleepstudy.index == 10, "S999", sleepstudy["subj"]))
    with pytest.raises(DataError, match=r"'subj': levels \['S999'\] not seen in fit"):
        m.predict(partitioned(new, 3)).compute()


def test_predict_rejects_what_it_cannot_map(client, sleepstudy, sleep_model):
    ddf = partitioned(sleepstudy, 3)
    with pytest.raises(ParameterError, match="return_std"):
        sleep_model.predict(ddf, return_std=True)
    with pytest.raises(DataTypeError, match="offset must be a Dask Series"):
        sleep_model.predict(ddf, offset=np.zeros(len(sleepstudy)))
    with pytest.raises(DataTypeError, match="not a Dask array"):
        sleep_model.predict(ddf[["days"]].to_dask_array(lengths=True))
    with pytest.raises(ParameterError, match=r"compute the frame first \(\.compute\(\)\)"):
        sleep_model.predict_interval(ddf)
    # the linear model's score streams the partitions (as a Dataset's batches)
    assert sleep_model.score(ddf) == pytest.approx(sleep_model.score(sleepstudy), rel=1e-12)


def test_glmm_methods_that_need_memory_say_so(client, verbagg, verbagg_model):
    with pytest.raises(DataTypeError, match=r"bring the data into memory first \(\.compute"):
        verbagg_model.score(partitioned(verbagg, 3))


# ------------------------------------------------------------ shipping the model


def test_fitted_estimator_pickles_for_the_workers(sleepstudy, sleep_model):
    # what distributed does to a task's arguments on its way to a worker process
    from distributed.protocol import deserialize, serialize

    copy = deserialize(*serialize(sleep_model))
    assert_same_values(copy.predict(sleepstudy), sleep_model.predict(sleepstudy))
    copy = pickle.loads(pickle.dumps(sleep_model))
    assert_same_values(copy.predict(sleepstudy), sleep_model.predict(sleepstudy))


@pytest.mark.slow
def test_fits_and_predictions_on_worker_processes(sleepstudy, sleep_model):
    # everything a fit ships to the workers, and the fitted estimator for
    # predict, pickled across processes
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as procs,
        procs.as_current(),
    ):
        assert os.getpid() not in procs.run(os.getpid).values()
        ddf = partitioned(sleepstudy, 3)
        got = MixedLMRegressor(formula=SLEEP).fit(ddf)
        assert_same_fit(got, sleep_model)
        assert_same_values(got.predict(ddf).compute().to_numpy(), got.predict(sleepstudy))
        # empty partitions, whose marker crosses processes too
        seven = partitioned(sleepstudy, 7)
        kept = MixedLMRegressor(formula=SLEEP).fit(seven[seven["subj"] != "S308"])
        want = MixedLMRegressor(formula=SLEEP).fit(sleepstudy[sleepstudy["subj"] != "S308"])
        assert kept.objective_ == pytest.approx(want.objective_, rel=1e-9)
        df = _bernoulli_frame()
        want = MixedGLMClassifier(formula="y ~ 1 + x + (1|g)", fast=True).fit(df)
        glmm = MixedGLMClassifier(formula="y ~ 1 + x + (1|g)", fast=True).fit(partitioned(df, 3))
        assert glmm.objective_ == pytest.approx(want.objective_, rel=1e-9)
        proba = glmm.predict_proba(partitioned(df, 3)).compute().to_numpy()
        assert_same_values(proba, glmm.predict_proba(df))


# ------------------------------------------------------------ dask stays optional


def test_sklmixed_works_without_dask_and_dask_without_a_client():
    # one interpreter (each costs seconds): first without dask at all, then with
    # dask but no distributed client (dask's default scheduler)
    code = (
        "import sys\n"
        "for name in ('dask', 'distributed'):\n"
        "    sys.modules[name] = None  # any import of them fails\n"
        "from sklmixed import MixedLMRegressor, load_dataset\n"
        "df = load_dataset('sleepstudy')\n"
        f"m = MixedLMRegressor(formula={SLEEP!r}).fit(df)\n"
        "pred = m.predict(df)\n"
        "assert 'dask' not in [k.split('.')[0] for k, v in sys.modules.items() if v]\n"
        "del sys.modules['dask'], sys.modules['distributed']\n"
        "import dask.dataframe as dd\n"
        "from sklmixed.estimators._dask import DaskSource, _client\n"
        "assert _client() is None\n"
        "ddf = dd.from_pandas(df, npartitions=3)\n"
        "assert DaskSource(ddf).map_reduce(len, lambda a, b: a + b) == 180\n"
        f"d = MixedLMRegressor(formula={SLEEP!r}).fit(ddf)\n"
        "assert abs(d.objective_ - m.objective_) <= 1e-9 * m.objective_\n"
        "assert abs(d.predict(ddf).compute().to_numpy() - pred).max() < 1e-6\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
