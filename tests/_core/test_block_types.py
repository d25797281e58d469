"""Every pair of block types that the blocked factorization meets, against a dense
Cholesky factorization of the whole system.

``LMMProblem.update`` combines typed blocks through a few operations (a rank
update of a diagonal block, a product subtracted from an off-diagonal block, a
right division by a factored diagonal block); which types meet depends on the
grouping factors. The structures below are chosen so that, together, they make
every combination in the dispatch tables happen; each factor is compared, block by
block, with the lower Cholesky factor of

    [Z Lambda, X, y]' W [Z Lambda, X, y] + diag(I_q, 0)

computed densely, and the test fails if some combination was never exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core import _block_types as bt
from sklmixed._core import _lmm
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._reterm import ReTerm


def _term(name, refs, nlevels, k, rng):
    n = refs.shape[0]
    z = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(k - 1)])
    return ReTerm(
        name,
        refs.astype(np.int64),
        tuple(range(nlevels)),
        z,
        tuple(f"c{i}" for i in range(k)),
        None,
    )


def _refs(rng, n, nlevels, p=None):
    refs = rng.choice(nlevels, size=n, p=p)
    refs[:nlevels] = np.arange(nlevels)  # every level present
    return refs


def _structures(n=300):
    """Random-effects structures (name -> list of (name, refs, nlevels, k))."""
    rng = np.random.default_rng(11)
    fine = _refs(rng, n, 60)
    coarse = fine // 6  # 10 levels; fine nested in coarse
    skew = 1.0 / np.arange(1, 101)
    heavy = _refs(rng, n, 100, skew / skew.sum())  # crossed, sparse against the others
    few = _refs(rng, n, 4)  # crossed with few levels: dense against the others
    mid = _refs(rng, n, 30)
    out = {}
    for k_fine, k_coarse in ((1, 1), (2, 2), (2, 1), (1, 2)):
        out[f"nested_{k_fine}{k_coarse}"] = [
            ("fine", fine, 60, k_fine),
            ("coarse", coarse, 10, k_coarse),
        ]
        out[f"nested_crossed_{k_fine}{k_coarse}"] = [
            ("fine", fine, 60, k_fine),
            ("coarse", coarse, 10, k_coarse),
            ("few", few, 4, 1),
        ]
        out[f"crossed_sparse_{k_fine}{k_coarse}"] = [
            ("heavy", heavy, 100, k_fine),
            ("mid", mid, 30, k_coarse),
        ]
    # term 1 dense against term 0, term 2 sparse (nested) against term 0
    out["dense_then_nested"] = [
        ("fine", fine, 60, 1),
        ("few", few, 4, 3),
        ("coarse", coarse, 10, 1),
    ]
    # three nested levels: the product of two sparse blocks lands in a sparse one
    for k in (1, 2):
        out[f"three_nested_{k}"] = [
            ("fine", fine, 60, k),
            ("middle", fine // 3, 20, k),
            ("coarse", coarse, 10, 1),
        ]
    out["three_crossed_sparse"] = [
        ("heavy", heavy, 100, 1),
        ("mid", mid, 30, 1),
        ("fine", fine, 60, 1),
    ]
    out["three_crossed_vectors"] = [
        ("heavy", heavy, 100, 2),
        ("mid", mid, 30, 2),
        ("few", few, 4, 2),
    ]
    # fine nested in coarse, with a few rows breaking the nesting
    broken = np.where(np.arange(n) % 50 == 3, 0, coarse)
    out["partially_nested"] = [("fine", fine, 60, 2), ("coarse", broken, 10, 1)]
    return out


def _dense_reference(prob, theta):
    """The lower Cholesky factor of the whole system at ``theta``, densely."""
    ZL = prob.dense_z() @ prob.dense_lambda(theta)
    W = np.hstack((ZL, prob.X, prob.y[:, None]))
    if prob.sqrtw is not None:
        W = W * prob.sqrtw[:, None]
    M = W.T @ W
    q = ZL.shape[1]
    M[np.arange(q), np.arange(q)] += 1.0
    return np.linalg.cholesky(M)


def _assembled(prob):
    L = prob.factor()
    sizes = [t.nranef for t in prob.terms] + [prob.p + 1]
    off = np.concatenate(([0], np.cumsum(sizes)))
    out = np.zeros((off[-1], off[-1]))
    for (i, j), blk in L.items():
        out[off[i] : off[i + 1], off[j] : off[j + 1]] = blk.to_dense()
    return out


class _Recorder:
    """Records the operand types of every rank update, product and division."""

    def __init__(self, monkeypatch):
        self.seen = set()
        for table, op in ((bt._RANK_UPDATE, "rank"), (bt._SUB_PRODUCT, "sub")):
            for key, fun in list(table.items()):
                monkeypatch.setitem(table, key, self._wrap(op, fun))
        for cls in (bt.DiagBlock, bt.BlockDiagBlock, bt.DenseBlock):
            monkeypatch.setattr(cls, "rdiv", self._wrap_rdiv(cls.rdiv))

    def _wrap(self, op, fun):
        def wrapped(target, *args):
            plan = args[-1]
            detail = ()
            if isinstance(plan, bt.GramPlan):
                detail = ("weighted" if plan.column_weighted else "plain",)
            types = tuple(type(x).__name__ for x in (target, *args[:-1]))
            self.seen.add((op, *types, *detail))
            return fun(target, *args)

        return wrapped

    def _wrap_rdiv(self, fun):
        def wrapped(diag, Lij):
            self.seen.add(("rdiv", type(diag).__name__, type(Lij).__name__))
            return fun(diag, Lij)

        return wrapped


# Every combination the dispatch tables allow, with the target's type for the
# products (a sparse target only from two sparse operands).
EXPECTED = {
    ("rank", "DenseBlock", "DenseBlock"),
    ("rank", "XYBlock", "DenseBlock"),
    ("rank", "DenseBlock", "SparseBlock", "plain"),
    ("rank", "DenseBlock", "SparseBlock", "weighted"),
    ("rank", "DiagBlock", "SparseBlock"),
    ("rank", "BlockDiagBlock", "SparseBlock"),
    ("sub", "DenseBlock", "DenseBlock", "DenseBlock"),
    ("sub", "DenseBlock", "DenseBlock", "SparseBlock"),
    ("sub", "DenseBlock", "SparseBlock", "DenseBlock"),
    ("sub", "DenseBlock", "SparseBlock", "SparseBlock"),
    ("sub", "SparseBlock", "SparseBlock", "SparseBlock"),
    ("rdiv", "DiagBlock", "SparseBlock"),
    ("rdiv", "DiagBlock", "DenseBlock"),
    ("rdiv", "BlockDiagBlock", "SparseBlock"),
    ("rdiv", "BlockDiagBlock", "DenseBlock"),
    ("rdiv", "DenseBlock", "DenseBlock"),
}


def test_tables_cover_the_expected_pairs():
    rank = {("rank", a.__name__, b.__name__) for a, b in bt._RANK_UPDATE}
    sub = {(a.__name__, b.__name__) for a, b in bt._SUB_PRODUCT}
    assert rank == {e[:3] for e in EXPECTED if e[0] == "rank"}
    assert sub == {e[2:4] for e in EXPECTED if e[0] == "sub"}


def test_every_block_type_pair_matches_a_dense_factorization(monkeypatch):
    monkeypatch.setattr(_lmm, "DENSE_MAX", 0)
    recorder = _Recorder(monkeypatch)
    rng = np.random.default_rng(12)
    for name, spec in _structures().items():
        terms = [_term(nm, refs, nl, k, rng) for nm, refs, nl, k in spec]
        n = terms[0].refs.shape[0]
        X = np.column_stack((np.ones(n), rng.normal(size=n)))
        y = X @ [1.0, -0.5] + rng.normal(size=n)
        for weights in (None, rng.uniform(0.5, 2.0, n)):
            prob = LMMProblem(X, y, terms, weights=weights)
            theta = rng.uniform(0.3, 1.5, prob.ntheta)
            assert prob.set_theta(theta), name
            np.testing.assert_allclose(
                _assembled(prob), _dense_reference(prob, theta), rtol=1e-9, atol=1e-10
            )
    missing = EXPECTED - recorder.seen
    assert not missing, f"combinations never exercised: {sorted(missing)}"
    assert recorder.seen <= EXPECTED, sorted(recorder.seen - EXPECTED)


def test_theta_and_factor_cannot_disagree(monkeypatch):
    """Readers of L get the factor at the theta installed last, also when the
    small-problem objective (which does not form L) installed it."""
    rng = np.random.default_rng(13)
    spec = _structures()["nested_crossed_11"]
    terms = [_term(nm, refs, nl, k, rng) for nm, refs, nl, k in spec]
    n = terms[0].refs.shape[0]
    X = np.column_stack((np.ones(n), rng.normal(size=n)))
    y = X @ [1.0, -0.5] + rng.normal(size=n)
    prob = LMMProblem(X, y, terms)
    with pytest.raises(RuntimeError, match="no theta"):
        prob.factor()
    t1, t2 = rng.uniform(0.3, 1.5, (2, prob.ntheta))
    assert prob.set_theta(t1)
    beta1 = prob.beta()
    monkeypatch.setattr(_lmm, "DENSE_MAX", 10_000)
    prob.objective(t2)  # the dense evaluator: installs t2 without forming L
    assert prob._dense is not None
    np.testing.assert_array_equal(prob.theta, t2)
    fresh = LMMProblem(X, y, terms)
    assert fresh.set_theta(t2)
    np.testing.assert_allclose(prob.beta(), fresh.beta(), rtol=1e-12)
    assert not np.allclose(prob.beta(), beta1)
    # a system that is not positive definite (negative weights, as a GLMM's
    # observed information can give): set_theta says so, and readers raise
    neg = LMMProblem(X, y, terms)
    with np.errstate(invalid="ignore"):  # the square roots of the weights
        neg.set_weights(-np.ones(n))
    assert not neg.set_theta(np.full(neg.ntheta, 1.5))
    with pytest.raises(np.linalg.LinAlgError):
        neg.beta()
    # conditional variances install their theta
    cv = _lmm.conditional_variances(prob, t1)
    cv1 = _lmm.conditional_variances(fresh, t1)
    for a, b in zip(cv, cv1):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(prob.theta, t1)
