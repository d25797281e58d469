"""Cross-products summed over chunks of rows, and problems built from them."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core._blocks import BlockSparse
from sklmixed._core._crossprod import CrossProducts
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._reterm import ReTerm
from sklmixed.exceptions import RowsNotAvailableError


def _data(n=400, seed=3):
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 30, n)
    g2 = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    z1 = np.column_stack([np.ones(n), x])
    y = 1.0 + 0.5 * x + rng.normal(size=30)[g1] + rng.normal(size=12)[g2] + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    terms = [
        ReTerm("g1", g1, tuple(range(30)), z1, ("(Intercept)", "x")),
        ReTerm("g2", g2, tuple(range(12)), np.ones((n, 1)), ("(Intercept)",)),
    ]
    return X, y, terms, w


def _chunk_terms(terms, rows):
    return [ReTerm(t.name, t.refs[rows], t.levels, t.z[rows], t.cnames, t.inds) for t in terms]


def _as_dense(blk):
    return blk.to_dense() if isinstance(blk, BlockSparse) else blk


@pytest.mark.parametrize("size", [1, 7, 150, 400])
def test_chunks_sum_to_the_whole(size):
    X, y, terms, w = _data()
    whole = CrossProducts.from_rows(X, y, terms, [t.z for t in terms], w)
    total = None
    for start in range(0, X.shape[0], size):
        rows = np.arange(start, min(start + size, X.shape[0]))
        ct = _chunk_terms(terms, rows)
        cp = CrossProducts.from_rows(X[rows], y[rows], ct, [t.z for t in ct], w[rows])
        total = cp if total is None else total.combine(cp)
    assert total.n == whole.n and total.nobs == whole.nobs
    assert total.logw_sum == pytest.approx(whole.logw_sum, rel=1e-12)
    np.testing.assert_allclose(total.xy, whole.xy, rtol=1e-12)
    for a, b in zip(total.diag + total.zxy, whole.diag + whole.zxy):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for key, blk in whole.pairs.items():
        np.testing.assert_allclose(
            _as_dense(total.pairs[key]), _as_dense(blk), rtol=1e-12, atol=1e-12
        )


def test_problem_from_crossproducts_has_the_same_objective_and_estimates():
    X, y, terms, w = _data()
    mem = LMMProblem(X, y, terms, weights=w)
    cp = CrossProducts.from_rows(mem.X, mem.y, mem.terms, mem.zs, w)
    ooc = LMMProblem.from_crossproducts(cp, mem.terms, mem.scaling, mem.keep, mem.p_full)
    theta = np.array([0.8, 0.1, 0.5, 0.7])
    assert ooc.objective(theta) == pytest.approx(mem.objective(theta), rel=1e-12)
    mem.update(theta)
    ooc.update(theta)
    np.testing.assert_allclose(ooc.beta(), mem.beta(), rtol=1e-10)
    assert not ooc.has_rows
    with pytest.raises(RowsNotAvailableError, match="out of core"):
        ooc.set_response(y)
    with pytest.raises(RowsNotAvailableError):
        ooc.dense_z()


def test_em_start_from_crossproducts_is_the_start_from_rows():
    from sklmixed._core._start import em_theta, em_theta_crossprod

    rng = np.random.default_rng(7)
    n = 3000
    g1, g2 = rng.integers(0, 200, n), rng.integers(0, 90, n)
    x = rng.normal(size=n)
    y = 2.0 + x + rng.normal(0, 0.5, 200)[g1] + rng.normal(0, 0.8, 90)[g2] + rng.normal(size=n)
    terms = [
        ReTerm("g1", g1, tuple(range(200)), np.ones((n, 1)), ("(Intercept)",)),
        ReTerm("g2", g2, tuple(range(90)), np.ones((n, 1)), ("(Intercept)",)),
    ]
    w = rng.uniform(0.5, 2.0, n)
    mem = LMMProblem(np.column_stack([np.ones(n), x]), y, terms, weights=w)
    cp = CrossProducts.from_rows(mem.X, mem.y, mem.terms, mem.zs, w)
    ooc = LMMProblem.from_crossproducts(cp, mem.terms, mem.scaling, mem.keep, mem.p_full)
    want = em_theta(mem.X, mem.y, mem.terms, w, 20)
    got = em_theta_crossprod(ooc.A, ooc.m, ooc.p, ooc.nobs, 20)
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_sparse_level_pairs_merge_over_chunks():
    rng = np.random.default_rng(11)
    n = 2000
    g1, g2 = rng.integers(0, 500, n), rng.integers(0, 400, n)
    g1[1000:] = g1[:1000]  # repeated pairs, met in other chunks
    g2[1000:] = g2[:1000]
    z = rng.normal(size=(n, 2))
    terms = [
        ReTerm("g1", g1, tuple(range(500)), z, ("a", "b")),
        ReTerm("g2", g2, tuple(range(400)), np.ones((n, 1)), ("(Intercept)",)),
    ]
    X, y = np.ones((n, 1)), rng.normal(size=n)
    whole = CrossProducts.from_rows(X, y, terms, [t.z for t in terms])
    total = None
    for start in range(0, n, 100):
        rows = np.arange(start, start + 100)
        ct = _chunk_terms(terms, rows)
        cp = CrossProducts.from_rows(X[rows], y[rows], ct, [t.z for t in ct])
        total = cp if total is None else total.combine(cp)
    got, want = total.pairs[(1, 0)], whole.pairs[(1, 0)]
    assert isinstance(got, BlockSparse) and got.nblocks == want.nblocks
    np.testing.assert_array_equal(got.brow, want.brow)
    np.testing.assert_array_equal(got.bcol, want.bcol)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-12, atol=1e-12)
