"""Cross-products summed over chunks of rows, and problems built from them."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core._blocks import BlockSparse
from sklmixed._core._crossprod import CrossProducts, RowProducts
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


def _three_terms(n=400, seed=8):
    """Terms whose blocks between them are dense (g1 x g2, all pairs met), sparse
    from the table of all pairs (g3 x g1: a band of them) and sparse from the
    sorted keys (g4, more pairs than the rows could cover densely)."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 40, n)
    g2 = rng.integers(0, 5, n)
    g3 = (g1 + rng.integers(0, 3, n)) % 40
    g4 = rng.integers(0, 300, n)
    z1 = np.column_stack([np.ones(n), rng.normal(size=n)])
    terms = [
        ReTerm("g4", g4, tuple(range(300)), np.ones((n, 1)), ("(Intercept)",)),
        ReTerm("g1", g1, tuple(range(40)), z1, ("(Intercept)", "x")),
        ReTerm("g3", g3, tuple(range(40)), np.ones((n, 1)), ("(Intercept)",)),
        ReTerm("g2", g2, tuple(range(5)), np.ones((n, 1)), ("(Intercept)",)),
    ]
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return X, rng.normal(size=n), terms, rng.uniform(0.5, 2.0, n)


def _dense_z(t):
    Z = np.zeros((t.refs.shape[0], t.nranef))
    for a in range(t.k):
        Z[np.arange(t.refs.shape[0]), t.refs * t.k + a] = t.z[:, a]
    return Z


def test_first_and_later_products_are_the_same_bits():
    # The first product Z_j' W [X y] of a term is taken by bincounts, later ones
    # (PIRLS) by the sparse Z_j'; both sum each level's rows in order from zero.
    X, y, terms, w = _three_terms()
    rows = RowProducts(X, terms, [t.z for t in terms])
    first, later = rows.compute(w, y), rows.compute(w, y)
    for a, b in zip(first.zxy, later.zxy):
        assert a.tobytes() == b.tobytes() and a.flags.f_contiguous == b.flags.f_contiguous
    rows2 = RowProducts(X, terms, [t.z for t in terms])
    zy_first, _ = rows2.response_row(w * y)
    zy_later, _ = rows2.response_row(w * y)
    for a, b in zip(zy_first, zy_later):
        assert a.tobytes() == b.tobytes()


def test_level_pairs_dense_or_by_their_pattern():
    X, y, terms, w = _three_terms()
    rows = RowProducts(X, terms, [t.z for t in terms])
    # g2 x g1 and g2 x g3 meet in all (or most) of their pairs: dense
    assert set(rows.dense_pairs) == {(3, 1), (3, 2)}
    assert set(rows.patterns) == {(1, 0), (2, 0), (2, 1), (3, 0)}
    for (i, j), pattern in rows.patterns.items():
        ti, tj = terms[i], terms[j]
        keys = np.unique(ti.refs * tj.nlevels + tj.refs)
        np.testing.assert_array_equal(pattern.brow, keys // tj.nlevels)
        np.testing.assert_array_equal(pattern.bcol, keys % tj.nlevels)
    cp = rows.compute(w, y)
    for (i, j), blk in cp.pairs.items():
        want = _dense_z(terms[i]).T @ (w[:, None] * _dense_z(terms[j]))
        got = blk if (i, j) in rows.dense_pairs else blk.to_dense()
        assert isinstance(got, np.ndarray) and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
