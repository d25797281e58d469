"""The sparse layout of L (crossed terms whose levels meet rarely) against the
blocked layout's factor of the same system."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklmixed._core import _sparse
from sklmixed._core._families import get_family, get_link
from sklmixed._core._glmm import GLMMProblem
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._pcg import FactorSolver
from sklmixed._core._reterm import ReTerm
from sklmixed._core._sparse import SparseFactor


@pytest.fixture
def small_sparse(monkeypatch):
    """The sparse layout's thresholds lowered to the size of a test problem."""
    monkeypatch.setattr(_sparse, "SPARSE_MIN_LEVELS", 50)
    monkeypatch.setattr(_sparse, "COST_PAIR", 1.0)
    monkeypatch.setattr(_sparse, "COST_ENTRY", 1.0)
    monkeypatch.setattr(_sparse, "SPARSE_MAX_PAIRS", 30.0)


def _terms(rng, n, sizes):
    refs = [rng.integers(0, nl, n) for nl in sizes]
    # every level present (the levels of a ReTerm are those of the data)
    for r, nl in zip(refs, sizes):
        r[:nl] = rng.permutation(nl)
    terms = [
        ReTerm(f"g{j}", r, tuple(f"l{i}" for i in range(nl)), np.ones((n, 1)), ("(Intercept)",))
        for j, (r, nl) in enumerate(zip(refs, sizes))
    ]
    return refs, terms


def _crossed(seed=3, n=400, sizes=(300, 120)):
    """A crossed design with about two level pairs per level: the blocked layout
    fills the second term's block in, a minimum-degree order hardly at all."""
    rng = np.random.default_rng(seed)
    refs, terms = _terms(rng, n, sizes)
    x = rng.normal(size=n)
    X = np.column_stack((np.ones(n), x, rng.normal(size=n)))
    y = 1.0 + 0.5 * x + sum(rng.normal(0, 0.7, nl)[r] for r, nl in zip(refs, sizes))
    y = y + rng.normal(0, 0.5, n)
    return X, y, terms


def _blocked_parts(problem):
    """logdet, [X y] block and modes from the blocked layout's L at the installed theta."""
    L = problem.factor()
    logdet = sum(2.0 * np.sum(np.log(L[(j, j)].diagonal())) for j in range(problem.m))
    xy = L[(problem.m, problem.m)].to_dense()
    p = problem.p
    beta = np.linalg.solve(xy[:p, :p].T, xy[p, :p])
    m = problem.m
    us = [None] * m
    for j in reversed(range(m)):
        Lmj = L[(m, j)].to_dense()
        rhs = Lmj[p, :] - Lmj[:p, :].T @ beta
        for i in range(j + 1, m):
            rhs = rhs - L[(i, j)].tmul(us[i].reshape(-1))
        us[j] = L[(j, j)].solve_t(rhs)
    return logdet, xy, beta, np.concatenate(us)


@pytest.mark.parametrize("sizes", [(300, 120), (400, 150, 60)])
@pytest.mark.parametrize("reml", [False, True])
def test_sparse_layout_equals_the_blocked_factor(small_sparse, sizes, reml):
    X, y, terms = _crossed(sizes=sizes, n=sum(sizes) + 100)
    w = np.random.default_rng(1).uniform(0.2, 2.0, y.shape[0])
    problem = LMMProblem(X, y, terms, weights=w, reml=reml)
    assert problem.layout == "sparse"
    assert "dense" in problem.Lkind.values()  # the blocked layout would fill in
    for theta in ([1.0] * len(sizes), [0.3, 1.7, 0.9][: len(sizes)], [0.0, 0.8, 0.2][: len(sizes)]):
        theta = np.asarray(theta)
        assert problem.set_theta(theta)
        sf = problem.last_factor()
        assert isinstance(sf, SparseFactor)
        obj = problem.objective(theta)
        logdet, xy, beta, u = _blocked_parts(problem)  # forms the blocks on demand
        assert problem.logdet_re() == pytest.approx(logdet, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(problem._xy_block(), xy, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(problem.beta(), beta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.concatenate(problem.u()).ravel(), u, rtol=1e-9, atol=1e-11)
        assert obj == pytest.approx(problem.objective_from_factor(), rel=1e-14)


def test_layout_is_chosen_where_it_pays(small_sparse, monkeypatch):
    X, y, terms = _crossed()
    assert LMMProblem(X, y, terms).layout == "sparse"
    # every level of the second term meets many of the first: not even tried
    rng = np.random.default_rng(0)
    n = 6000
    _, dense_terms = _terms(rng, n, (300, 120))
    yd = rng.normal(size=n)
    Xd = np.ones((n, 1))
    assert LMMProblem(Xd, yd, dense_terms).layout == "blocked"
    # tried (pairs allowed), and refused on its modelled cost
    monkeypatch.setattr(_sparse, "SPARSE_MAX_PAIRS", 1e9)
    monkeypatch.setattr(_sparse, "SPARSE_COST_RATIO", 1e-9)
    assert LMMProblem(Xd, yd, dense_terms).layout == "blocked"
    # small systems are one dense block whatever the thresholds
    monkeypatch.setattr(_sparse, "SPARSE_MIN_LEVELS", 1)
    assert LMMProblem(*_crossed(n=60, sizes=(40, 20))).layout == "dense"
    # the default thresholds keep this (small) problem blocked
    monkeypatch.undo()
    assert LMMProblem(X, y, terms).layout == "blocked"


def test_not_positive_definite_in_both_layouts(small_sparse):
    X, y, terms = _crossed()
    problem = LMMProblem(X, y, terms)
    assert problem.layout == "sparse"
    with np.errstate(invalid="ignore"):  # the square roots of the weights
        problem.set_weights(np.full(y.shape[0], -3.0))  # negative weights: indefinite
    assert not problem.set_theta(np.array([1.0, 1.0]))
    assert problem.objective(np.array([1.0, 1.0])) == np.inf
    with pytest.raises(np.linalg.LinAlgError):
        problem.factor()


def test_sparse_factor_preconditions_the_pirls_system(small_sparse):
    X, y, terms = _crossed()
    yb = (y > np.median(y)).astype(float)
    fam = get_family("bernoulli")
    problem = GLMMProblem(X, yb, terms, fam, get_link(fam, None))
    assert problem.lmm.layout == "sparse"
    problem.glm_start()
    theta = np.array([0.7, 0.5])
    problem.deviance(theta)
    w = problem.state.weights
    lams = problem.lmm.lambdas(theta)
    kept = problem.lmm.last_factor()
    assert isinstance(kept, SparseFactor)
    for with_x in (True, False):
        solver = FactorSolver(problem.lmm, kept, with_x=with_x)
        v = np.random.default_rng(0).normal(size=solver.q + solver.p)
        back = solver.precondition(solver.matvec(v, w, lams, problem.X))
        np.testing.assert_allclose(back, v, rtol=1e-9, atol=1e-9)


def test_glmm_deviance_equals_the_blocked_layout(small_sparse, monkeypatch):
    X, y, terms = _crossed()
    yb = (y > np.median(y)).astype(float)
    fam = get_family("bernoulli")

    def problem():
        out = GLMMProblem(X, yb, terms, fam, get_link(fam, None))
        out.iterative = True  # the large problems' conjugate-gradient steps
        out.glm_start()
        return out

    sparse = problem()
    assert sparse.lmm.layout == "sparse"
    monkeypatch.setattr(_sparse, "SPARSE_MIN_LEVELS", 10**9)
    blocked = problem()
    assert blocked.lmm.layout == "blocked"
    for theta in ([1.0, 1.0], [1.75, 1.0], [0.8, 0.6], [0.82, 0.61], [0.0, 0.6]):
        theta = np.asarray(theta)
        a, b = blocked.deviance(theta), sparse.deviance(theta)
        assert b == pytest.approx(a, rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(sparse.state.beta, blocked.state.beta, rtol=1e-7, atol=1e-9)
        for ua, ub in zip(blocked.state.u, sparse.state.u):
            np.testing.assert_allclose(ub, ua, rtol=1e-6, atol=1e-8)
    beta = np.array([-0.2, 0.45, 0.1])
    theta = np.array([0.9, 0.5])
    a, b = blocked.deviance(theta, beta), sparse.deviance(theta, beta)
    assert b == pytest.approx(a, rel=1e-10, abs=1e-8)


def test_a_problem_on_the_sparse_layout_pickles(small_sparse):
    X, y, terms = _crossed()
    problem = LMMProblem(X, y, terms)
    theta = np.array([0.6, 1.1])
    obj = problem.objective(theta)
    back = pickle.loads(pickle.dumps(problem))
    assert back._sparse.plan is None  # not carried: made again on demand
    assert back.layout == "sparse"
    assert back.objective(theta) == obj
    np.testing.assert_array_equal(back.beta(), problem.beta())


def test_pair_updates_are_bounded_by_the_pattern(small_sparse, monkeypatch):
    X, y, terms = _crossed()
    problem = LMMProblem(X, y, terms)
    assert problem.layout == "sparse"
    plan = problem._sparse.plan
    pairs = sum(lv.pa.shape[0] for lv in plan.levels)
    entries = problem._sparse.q + problem._sparse._rows.shape[0]
    assert pairs <= _sparse.MAX_PAIRS_PER_ENTRY * entries
    # with no pairs allowed, no level is taken: the whole system is the dense tail,
    # which the cost model refuses
    monkeypatch.setattr(_sparse, "MAX_PAIRS_PER_ENTRY", 0)
    assert LMMProblem(X, y, terms).layout == "blocked"


def test_a_new_response_refactors_the_sparse_layout(small_sparse):
    X, y, terms = _crossed()
    theta = np.array([0.6, 1.1])
    problem = LMMProblem(X, y, terms)
    problem.objective(theta)  # a factor at the old response
    y2 = y + np.random.default_rng(4).normal(size=y.shape[0])
    problem.set_response(y2)
    fresh = LMMProblem(X, y2, terms, scaling=problem.scaling)
    assert problem.layout == fresh.layout == "sparse"
    assert problem.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    np.testing.assert_allclose(problem.beta(), fresh.beta(), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 90), min_size=2, max_size=3),
    extra=st.integers(0, 150),
    weighted=st.booleans(),
)
def test_any_crossed_pattern_factors_as_the_blocked_layout(seed, sizes, extra, weighted):
    """Whatever the pattern (levels met once or by everyone, isolated pairs, one
    level alone), the sparse layout's objective and estimates are the blocked
    layout's, with the thresholds at their smallest."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_sparse, "SPARSE_MIN_LEVELS", 1)
        mp.setattr(_sparse, "SPARSE_MAX_PAIRS", 1e9)
        mp.setattr(_sparse, "SPARSE_COST_RATIO", np.inf)  # always taken when eligible
        sizes = sorted(sizes, reverse=True)
        X, y, terms = _crossed(seed=seed, sizes=tuple(sizes), n=max(sizes) + extra)
        rng = np.random.default_rng(seed)
        w = rng.uniform(0.1, 3.0, y.shape[0]) if weighted else None
        problem = LMMProblem(X, y, terms, weights=w)
        if problem.layout != "sparse":
            return  # a small system (one dense block) or a term that does not fill in
        theta = rng.uniform(0.0, 2.0, len(sizes))
        obj = problem.objective(theta)
        logdet, xy, beta, u = _blocked_parts(problem)
        assert problem.logdet_re() == pytest.approx(logdet, rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(problem._xy_block(), xy, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(np.concatenate(problem.u()).ravel(), u, rtol=1e-8, atol=1e-9)
        assert obj == pytest.approx(problem.objective_from_factor(), rel=1e-14)
