"""The blocked factorization against a naive dense computation of the same objective.

For random data of several random-effects structures (one scalar term, one vector
term, crossed, nested, three crossed, crossed vector terms, zerocorr) the
objective, beta, u and sigma from the blocked Cholesky must equal those of a
direct dense penalized least-squares solve. Both the blocked path and the small
dense evaluator are checked.
"""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core import _blocks, _lmm
from sklmixed._core._lmm import LMMProblem, estimable_columns
from sklmixed._core._reterm import ReTerm


def _term(rng, n, nlevels, k, name, refs=None, zerocorr=False):
    if refs is None:
        refs = rng.integers(0, nlevels, n)
        refs[:nlevels] = np.arange(nlevels)  # every level present
    z = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(k - 1)])
    inds = None
    if zerocorr:
        inds = np.column_stack((np.arange(k), np.arange(k)))
    return ReTerm(
        name,
        refs.astype(np.int64),
        tuple(range(nlevels)),
        z,
        tuple(f"c{i}" for i in range(k)),
        inds,
    )


def _naive(X, y, terms, theta, reml, weights=None):
    """Objective, beta and u by a dense augmented least-squares solve."""
    n, p = X.shape
    w = np.ones(n) if weights is None else weights
    sw = np.sqrt(w)
    Zs, Ls = [], []
    off = 0
    for t in terms:
        Z = np.zeros((n, t.nranef))
        for a in range(t.k):
            Z[np.arange(n), t.refs * t.k + a] = t.z[:, a]
        Zs.append(Z)
        lam = t.lambda_from_theta(theta[off : off + t.ntheta])
        off += t.ntheta
        Ls.append(np.kron(np.eye(t.nlevels), lam))
    Z = np.hstack(Zs)
    from scipy.linalg import block_diag

    Lam = block_diag(*Ls)
    ZL = (Z @ Lam) * sw[:, None]
    Xw, yw = X * sw[:, None], y * sw
    q = ZL.shape[1]
    M = np.block([[ZL.T @ ZL + np.eye(q), ZL.T @ Xw], [Xw.T @ ZL, Xw.T @ Xw]])
    rhs = np.concatenate((ZL.T @ yw, Xw.T @ yw))
    sol = np.linalg.solve(M, rhs)
    u, beta = sol[:q], sol[q:]
    r2 = np.sum((yw - ZL @ u - Xw @ beta) ** 2) + np.sum(u**2)
    logdet = np.linalg.slogdet(ZL.T @ ZL + np.eye(q))[1]
    d = n - p if reml else n
    obj = logdet + d * (1 + np.log(2 * np.pi * r2 / d)) - np.sum(np.log(w))
    if reml:
        S = M[q:, q:] - M[q:, :q] @ np.linalg.solve(M[:q, :q], M[:q, q:])
        obj += np.linalg.slogdet(S)[1]
    return obj, beta, u, r2 / d


def _structures(rng, n=240):
    a = rng.integers(0, 12, n)
    a[:12] = np.arange(12)
    nested_b = a * 3 + rng.integers(0, 3, n)  # b nested in a: 36 levels
    nested_b[:36] = np.arange(36)
    a_of_b = nested_b // 3
    out = {
        "scalar": [_term(rng, n, 9, 1, "g")],
        "vector": [_term(rng, n, 15, 2, "g")],
        "vector3_zerocorr": [_term(rng, n, 10, 3, "g", zerocorr=True)],
        "crossed": [_term(rng, n, 30, 1, "g"), _term(rng, n, 8, 1, "h")],
        "nested": [
            _term(rng, n, 36, 1, "b", refs=nested_b),
            _term(rng, n, 12, 1, "a", refs=a_of_b),
        ],
        "three_crossed": [
            _term(rng, n, 40, 1, "g"),
            _term(rng, n, 20, 1, "h"),
            _term(rng, n, 6, 1, "k"),
        ],
        "crossed_vectors": [_term(rng, n, 25, 2, "g"), _term(rng, n, 7, 2, "h")],
        "vector_and_scalar": [_term(rng, n, 20, 2, "g"), _term(rng, n, 9, 1, "h")],
        # Sparse off-diagonal blocks between vector-valued terms that stay sparse
        # in L (nesting): the path of a transposed-factor bug no other case runs.
        "nested_vectors": [
            _term(rng, n, 36, 2, "b", refs=nested_b),
            _term(rng, n, 12, 2, "a", refs=a_of_b),
        ],
        "nested_vector_scalar": [
            _term(rng, n, 36, 2, "b", refs=nested_b),
            _term(rng, n, 12, 1, "a", refs=a_of_b),
        ],
        "nested_and_crossed": [
            _term(rng, n, 36, 1, "b", refs=nested_b),
            _term(rng, n, 12, 2, "a", refs=a_of_b),
            _term(rng, n, 5, 1, "h"),
        ],
        "three_crossed_vectors": [
            _term(rng, n, 30, 2, "g"),
            _term(rng, n, 10, 3, "h"),
            _term(rng, n, 4, 2, "k"),
        ],
        # b mostly nested in a, with a few rows that break the nesting
        "partially_nested": [
            _term(rng, n, 36, 1, "b", refs=nested_b),
            _term(rng, n, 12, 1, "a", refs=np.where(np.arange(n) % 40 == 7, 0, a_of_b)),
        ],
    }
    # (drawn after the structures above, which keep their data)
    c = rng.integers(0, 72, n)  # c in b in a: 72, 36 and 12 levels
    c[:72] = np.arange(72)
    b_of_c, a_of_c = c // 2, c // 6
    out.update(
        {
            # c in b in a, (1|a) + (1|a:b) + (1|a:b:c): the block of L between a and b
            # stays sparse while the product of the blocks below c is subtracted from
            # it in place (its pattern holds the product's)
            "three_nested": [
                _term(rng, n, 72, 1, "c", refs=c),
                _term(rng, n, 36, 1, "b", refs=b_of_c),
                _term(rng, n, 12, 1, "a", refs=a_of_c),
            ],
            "three_nested_vectors": [
                _term(rng, n, 72, 1, "c", refs=c),
                _term(rng, n, 36, 2, "b", refs=b_of_c),
                _term(rng, n, 12, 2, "a", refs=a_of_c),
            ],
            # a term nested in the last one and crossed with a vector term between
            # them: a sparse block of L times a dense one into a dense block
            "nested_under_crossed": [
                _term(rng, n, 72, 1, "c", refs=c),
                _term(rng, n, 8, 2, "h"),
                _term(rng, n, 12, 1, "a", refs=a_of_c),
            ],
            # three crossed factors with many levels: the blocks between them stay
            # sparse, and the product of two of them is subtracted from a dense block
            # entry by entry (scalar terms) or block by block (vector terms)
            "sparse_three_crossed": [
                _term(rng, n, 120, 1, "g"),
                _term(rng, n, 80, 1, "h"),
                _term(rng, n, 50, 1, "k"),
            ],
            # (vector terms of two sizes: the dense update's blocks are 3 x 2)
            "sparse_three_crossed_vectors": [
                _term(rng, n, 120, 1, "g"),
                _term(rng, n, 50, 2, "h"),
                _term(rng, n, 40, 3, "k"),
            ],
        }
    )
    return out


@pytest.mark.parametrize("dense_max", [0, 10_000], ids=["blocked", "dense"])
@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("structure", list(_structures(np.random.default_rng(0))))
def test_blocked_factor_matches_naive(structure, reml, dense_max, monkeypatch):
    monkeypatch.setattr(_lmm, "DENSE_MAX", dense_max)
    rng = np.random.default_rng(1)
    terms = _structures(np.random.default_rng(0))[structure]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n), rng.normal(size=n)))
    y = X @ [1.0, 2.0, -1.0] + rng.normal(size=n)
    weighted = ("crossed", "nested_vectors", "three_crossed_vectors", "partially_nested")
    weights = rng.uniform(0.5, 2.0, n) if structure in weighted else None
    prob = LMMProblem(X, y, terms, weights=weights, reml=reml)
    theta = rng.uniform(0.3, 1.5, prob.ntheta)
    prob.objective(theta)
    assert (prob._dense is not None) == (dense_max > 0)
    ordered = prob.terms
    expected, beta, u, s2 = _naive(X, y, ordered, theta, reml, weights)
    assert prob.objective(theta) == pytest.approx(expected, rel=1e-10, abs=1e-8)
    assert prob.update(theta)
    assert prob._objective_from_L() == pytest.approx(expected, rel=1e-10, abs=1e-8)
    np.testing.assert_allclose(prob.beta(), beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        np.concatenate([x.reshape(-1) for x in prob.u()]), u, rtol=1e-7, atol=1e-9
    )
    assert prob.sigma2() == pytest.approx(s2, rel=1e-9)


def _sparse_crossed(rng, n=600):
    """Crossed terms with many levels and skewed activity (a few heavy levels), so
    that the blocks between them stay sparse and the rank updates into the filled
    blocks go through the split Gram update."""

    def skewed(nlevels):
        p = 1.0 / np.arange(1, nlevels + 1)
        refs = rng.choice(nlevels, size=n, p=p / p.sum())
        refs[:nlevels] = np.arange(nlevels)
        return refs

    return {
        "crossed": [
            _term(rng, n, 150, 1, "g", refs=skewed(150)),
            _term(rng, n, 60, 1, "h", refs=skewed(60)),
        ],
        "three_crossed": [
            _term(rng, n, 150, 1, "g", refs=skewed(150)),
            _term(rng, n, 70, 1, "h", refs=skewed(70)),
            _term(rng, n, 50, 1, "k", refs=skewed(50)),
        ],
        "crossed_vectors": [
            _term(rng, n, 150, 2, "g", refs=skewed(150)),
            _term(rng, n, 60, 2, "h", refs=skewed(60)),
        ],
        "vector_and_scalar": [
            _term(rng, n, 150, 2, "g", refs=skewed(150)),
            _term(rng, n, 60, 1, "h", refs=skewed(60)),
        ],
        "scalar_and_vector": [
            _term(rng, n, 150, 1, "g", refs=skewed(150)),
            _term(rng, n, 50, 2, "h", refs=skewed(50)),
        ],
    }


@pytest.mark.parametrize("split", [None, (0, 0), (1, 1), (2, 5), (0, 4), (6, 0), (10**4, 10**4)])
@pytest.mark.parametrize("structure", list(_sparse_crossed(np.random.default_rng(0))))
def test_gram_splits_match_naive(structure, split, monkeypatch):
    """Every heavy/light split of the rank updates into dense blocks (dense columns
    by SYRK, dense rows by a sparse-dense product, pairs for the rest) gives the
    same factor, with and without weights, at two thetas (the cached column-weighted
    operands of a crossed pair of scalar terms are reused at the second)."""
    monkeypatch.setattr(_lmm, "DENSE_MAX", 0)
    monkeypatch.setattr(_blocks, "FORCE_SPLIT", split)
    rng = np.random.default_rng(4)
    terms = _sparse_crossed(np.random.default_rng(0))[structure]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n)))
    y = X @ [1.0, -1.0] + rng.normal(size=n)
    for weights in (None, rng.uniform(0.5, 2.0, n)):
        prob = LMMProblem(X, y, terms, weights=weights)
        assert prob._gram, "no rank update went through GramUpdate"
        for theta in (rng.uniform(0.3, 1.5, prob.ntheta), rng.uniform(0.3, 1.5, prob.ntheta)):
            expected, beta, u, _ = _naive(X, y, prob.terms, theta, False, weights)
            assert prob.objective(theta) == pytest.approx(expected, rel=1e-10, abs=1e-8)
            np.testing.assert_allclose(prob.beta(), beta, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(
                np.concatenate([x.reshape(-1) for x in prob.u()]), u, rtol=1e-7, atol=1e-9
            )


def test_terms_ordered_by_number_of_random_effects_stably():
    rng = np.random.default_rng(2)
    t1, t2, t3 = _term(rng, 50, 5, 1, "a"), _term(rng, 50, 10, 1, "b"), _term(rng, 50, 5, 1, "c")
    prob = LMMProblem(np.ones((50, 1)), rng.normal(size=50), [t1, t2, t3])
    assert [t.name for t in prob.terms] == ["b", "a", "c"]


def test_nested_terms_stay_sparse_and_crossed_fill_in():
    rng = np.random.default_rng(3)
    terms = _structures(rng)
    nested = LMMProblem(np.ones((240, 1)), rng.normal(size=240), terms["nested"])
    assert nested.Lkind[(1, 1)] == "diag"
    crossed = LMMProblem(np.ones((240, 1)), rng.normal(size=240), terms["three_crossed"])
    assert crossed.Lkind[(1, 1)] == "dense" and crossed.Lkind[(2, 2)] == "dense"


def test_estimable_columns_drops_later_dependent_columns():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 2))
    X = np.column_stack((np.ones(30), x[:, 0], 2 * x[:, 0] + 1, x[:, 1], x[:, 1]))
    assert estimable_columns(X).tolist() == [0, 1, 3]
    assert estimable_columns(np.column_stack((np.ones(30), x))).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "structure",
    [
        "scalar",
        "vector",
        "crossed",
        "nested",
        "three_crossed",
        "crossed_vectors",
        "nested_vectors",
        "nested_and_crossed",
        "three_crossed_vectors",
        "three_nested_vectors",
        "nested_under_crossed",
        "sparse_three_crossed_vectors",
    ],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_condvar_and_leverage_match_dense_formulas(structure, weighted):
    from sklmixed._core._lmm import conditional_variances, leverage

    rng = np.random.default_rng(7)
    terms = _structures(np.random.default_rng(0))[structure]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n)))
    y = X @ [1.0, 2.0] + rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, n) if weighted else np.ones(n)
    prob = LMMProblem(X, y, terms, weights=w if weighted else None)
    theta = rng.uniform(0.3, 1.5, prob.ntheta)
    assert prob.update(theta)
    # the weighted system: rows of Z and X scaled by sqrt(w)
    sw = np.sqrt(w)[:, None]
    Z = prob.dense_z() * sw
    X = X * sw
    Lam = prob.dense_lambda(theta)
    ZL = Z @ Lam
    q = ZL.shape[1]
    full = Lam @ np.linalg.inv(ZL.T @ ZL + np.eye(q)) @ Lam.T
    cv = conditional_variances(prob, theta)
    off = 0
    for t, blocks in zip(prob.terms, cv):
        for b in range(t.nlevels):
            sl = slice(off + b * t.k, off + (b + 1) * t.k)
            np.testing.assert_allclose(blocks[b], full[sl, sl], rtol=1e-9, atol=1e-12)
        off += t.nranef
    # hat matrix of the penalized system [Z Lambda, X]
    W = np.hstack((ZL, X))
    P = np.zeros((q + 2, q + 2))
    P[:q, :q] = np.eye(q)
    H = W @ np.linalg.solve(W.T @ W + P, W.T)
    np.testing.assert_allclose(leverage(prob, theta, chunk=37), np.diag(H), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dense_max", [0, 10_000], ids=["blocked", "dense"])
@pytest.mark.parametrize("structure", ["vector", "crossed", "vector_and_scalar"])
def test_set_response_equals_a_problem_built_for_that_response(structure, dense_max, monkeypatch):
    monkeypatch.setattr(_lmm, "DENSE_MAX", dense_max)
    rng = np.random.default_rng(5)
    terms = _structures(np.random.default_rng(0))[structure]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n)))
    weights = rng.uniform(0.5, 2.0, n)
    y1, y2 = rng.normal(size=(2, n)) + 3.0
    prob = LMMProblem(X, y1, terms, weights=weights)
    theta = rng.uniform(0.3, 1.5, prob.ntheta)
    prob.objective(theta)  # builds the dense evaluator (when used) from y1
    prob.set_response(y2)
    fresh = LMMProblem(X, y2, terms, weights=weights)
    for key, blk in fresh.A.items():
        got = prob.A[key]
        dense = getattr(blk, "to_dense", None)
        np.testing.assert_allclose(
            got.to_dense() if dense else got, dense() if dense else blk, rtol=1e-13, atol=1e-12
        )
    assert prob.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    assert prob.update(theta) and fresh.update(theta)
    np.testing.assert_allclose(prob.beta(), fresh.beta(), rtol=1e-10)
    with pytest.raises(ValueError, match="3 values for"):
        prob.set_response(np.ones(3))


@pytest.mark.parametrize("structure", ["vector", "crossed", "vector_and_scalar"])
def test_small_layout_factor_follows_theta_and_response(structure, monkeypatch):
    # a small ML problem's results come from its dense factor: it must be the one
    # at the installed theta and the current response, and agree with the blocked
    # factor; REML keeps the blocked factor (its criterion is printed in full)
    monkeypatch.setattr(_lmm, "DENSE_MAX", 10_000)
    rng = np.random.default_rng(6)
    terms = _structures(np.random.default_rng(0))[structure]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n)))
    y1, y2 = rng.normal(size=(2, n)) + 3.0
    prob = LMMProblem(X, y1, terms)
    t1, t2 = rng.uniform(0.3, 1.5, (2, prob.ntheta))

    def blocked(y, theta):
        monkeypatch.setattr(_lmm, "DENSE_MAX", 0)
        ref = LMMProblem(X, y, terms)
        assert ref.update(theta)
        out = (ref.beta(), ref.u(), ref.logdet_re(), ref.pwrss(), ref.rxx_inverse())
        monkeypatch.setattr(_lmm, "DENSE_MAX", 10_000)
        return out

    def check(want):
        assert prob._dense_factor() is not None
        got = (prob.beta(), prob.u(), prob.logdet_re(), prob.pwrss(), prob.rxx_inverse())
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
        for a, b in zip(got[1], want[1]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        assert got[2:4] == pytest.approx(want[2:4], rel=1e-11)
        np.testing.assert_allclose(got[4], want[4], rtol=1e-10)

    assert prob.update(t1) and prob._dense_factor() is None  # no dense system yet
    prob.objective(t1)  # the optimizer's first evaluation builds it
    assert prob.update(t1)
    check(blocked(y1, t1))
    prob.objective(t2)  # the optimizer's evaluation installs t2: L follows it
    check(blocked(y1, t2))
    prob.set_response(y2)  # A changes in place: the factor at t2 is stale
    check(blocked(y2, t2))
    prob.set_weights(np.full(n, 2.0))  # a new A (PIRLS): the blocked factor again
    assert prob.update(t2) and prob._dense_factor() is None
    reml = LMMProblem(X, y1, terms, reml=True)
    reml.objective(t1)
    assert reml.update(t1) and reml._dense_factor() is None


def test_flip_theta_keeps_each_covariance_and_makes_the_diagonals_non_negative():
    """A column of a Cholesky factor may change sign without changing lambda lambda'
    (the covariance of the random effects): the flip is of columns, not rows."""
    rng = np.random.default_rng(8)
    terms = [_term(rng, 120, 10, 3, "g"), _term(rng, 120, 6, 2, "h")]
    prob = LMMProblem(np.ones((120, 1)), rng.normal(size=120), terms)
    theta = rng.normal(size=prob.ntheta)
    theta[prob.diag_positions()] = [-0.7, 0.4, -1.2, -0.5, 0.9]  # some negative diagonals
    flipped = prob.flip_theta(theta)
    assert np.all(flipped[prob.diag_positions()] >= 0)
    for before, after in zip(prob.lambdas(theta), prob.lambdas(flipped)):
        np.testing.assert_allclose(after @ after.T, before @ before.T, rtol=1e-14, atol=1e-15)
    assert prob.objective(flipped) == pytest.approx(prob.objective(theta), rel=1e-12)
