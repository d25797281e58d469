"""The split Gram update against a dense computation, for every split."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core import _blocks
from sklmixed._core._blocks import GramUpdate, choose_split


def _sparse(rng, m, c, nnz):
    """Distinct random (row, col) entries in random order, with a few heavy rows and
    columns (every entry of row 0 and column 0 present), and their values."""
    cells = rng.choice(m * c, size=nnz, replace=False)
    cells = np.union1d(cells, np.concatenate((np.arange(c), np.arange(m) * c)))
    cells = rng.permutation(cells)
    rows, cols = cells // c, cells % c
    return rows, cols, rng.normal(size=rows.shape[0])


SPLITS = [(0, 0), (1, 0), (0, 1), (3, 5), (8, 2), (40, 0), (0, 30), (40, 30), (1000, 1000)]


@pytest.mark.parametrize("split", SPLITS + [None])
@pytest.mark.parametrize("weighted", [False, True])
def test_gram_update_matches_dense(split, weighted):
    rng = np.random.default_rng(11)
    m, c = 30, 40
    rows, cols, data = _sparse(rng, m, c, 200)
    S = np.zeros((m, c))
    S[rows, cols] = data
    w = rng.uniform(0.1, 2.0, c) if weighted else None
    gram = GramUpdate(rows, cols, (m, c), split)
    start = np.asfortranarray(rng.normal(size=(m, m)))
    expected = start - 0.7 * (S * (1.0 if w is None else w)) @ S.T
    for cache_key in (None, gram, gram):  # built, cached, cached again
        dense = np.array(start, order="F")
        gram.subtract_from_dense(dense, data, w, 0.7, cache_key=cache_key)
        np.testing.assert_allclose(np.tril(dense), np.tril(expected), rtol=1e-13, atol=1e-13)
        # the strict upper triangle is not touched
        np.testing.assert_array_equal(np.triu(dense, 1), np.triu(start, 1))


def test_gram_update_new_cache_key_rebuilds():
    rng = np.random.default_rng(12)
    m, c = 12, 15
    rows, cols, data = _sparse(rng, m, c, 40)
    gram = GramUpdate(rows, cols, (m, c), (2, 3))
    w = rng.uniform(0.1, 2.0, c)
    key1, key2 = object(), object()
    dense = np.zeros((m, m), order="F")
    gram.subtract_from_dense(dense, data, w, cache_key=key1)
    data2 = 2.0 * data
    dense2 = np.zeros((m, m), order="F")
    gram.subtract_from_dense(dense2, data2, w, cache_key=key2)
    np.testing.assert_allclose(np.tril(dense2), 4.0 * np.tril(dense), rtol=1e-13)


def test_gram_update_rejects_a_target_it_cannot_update_in_place():
    rows, cols = np.array([0, 1]), np.array([0, 0])
    gram = GramUpdate(rows, cols, (2, 1), (0, 0))
    for bad in (np.zeros((2, 2))[:, ::-1], np.zeros((3, 3), order="F")):
        with pytest.raises(ValueError, match="Fortran-ordered"):
            gram.subtract_from_dense(bad, np.ones(2))


def test_choose_split_bounds_pairs_and_prefers_pairs_when_light():
    rng = np.random.default_rng(13)
    # light everywhere: no dense part pays
    cells = rng.choice(200 * 300, size=400, replace=False)
    assert choose_split(cells // 300, cells % 300, 200, 300) == (0, 0)
    # one column holding every row: its m^2 / 2 pairs exceed the budget when the
    # budget is small, so that column goes dense
    m, c = 400, 50
    rows = np.concatenate((np.arange(m), rng.integers(0, m, 20)))
    cols = np.concatenate((np.zeros(m, dtype=np.int64), rng.integers(1, c, 20)))
    keys = np.unique(rows * c + cols)
    rows, cols = keys // c, keys % c
    old = _blocks._PAIRS_PER_ENTRY, _blocks._PAIRS_FLOOR
    try:
        _blocks._PAIRS_PER_ENTRY, _blocks._PAIRS_FLOOR = 4, 0
        k, h = choose_split(rows, cols, m, c)
        gram = GramUpdate(rows, cols, (m, c))
        assert gram.npairs <= 4 * rows.shape[0]
        assert k > 0 or h > 0
    finally:
        _blocks._PAIRS_PER_ENTRY, _blocks._PAIRS_FLOOR = old


def test_choose_split_without_an_admissible_split_takes_least_memory(monkeypatch):
    # 20 rows, 3000 columns holding every row: the pairs (210 a column) exceed a
    # budget of one pair per entry, and dense columns (20 x 3000) outgrow the 20 x 20
    # block; the least memory is then still a valid split
    monkeypatch.setattr(_blocks, "_PAIRS_PER_ENTRY", 1)
    monkeypatch.setattr(_blocks, "_PAIRS_FLOOR", 0)
    m, c = 20, 3000
    rows = np.tile(np.arange(m), c)
    cols = np.repeat(np.arange(c), m)
    k, h = choose_split(rows, cols, m, c)
    assert k == c or h == m  # no pairs left: dense columns or dense rows
    rng = np.random.default_rng(14)
    data = rng.normal(size=rows.shape[0])
    S = np.zeros((m, c))
    S[rows, cols] = data
    dense = np.zeros((m, m), order="F")
    GramUpdate(rows, cols, (m, c)).subtract_from_dense(dense, data)
    np.testing.assert_allclose(np.tril(dense), np.tril(-S @ S.T), rtol=1e-12, atol=1e-12)


def test_blas_limits_of_threads_restore_the_setting():
    # threads share the BLAS setting: limits that overlap in time (joblib's
    # threading backend) must not leave the process on one thread afterwards
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_info

    from sklmixed._core._blocks import blas_threads

    def counts():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    def limited(k):
        with blas_threads(1):
            return float(np.linalg.norm(np.ones((200, 200)) @ np.ones(200))) + k

    before = counts()
    for _ in range(20):
        Parallel(n_jobs=4, backend="threading")(delayed(limited)(k) for k in range(16))
        assert counts() == before
    with blas_threads(1):
        assert all(c == 1 for c in counts())
    assert counts() == before
