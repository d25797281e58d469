"""The small-problem evaluator's system: A's blocks in one dense matrix, and the
positions through which theta fills Lambda-tilde."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

from sklmixed._core._block_types import dense_a_block
from sklmixed._core._dense import DenseEvaluator
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._reterm import ReTerm


def _problem(weighted, zerocorr):
    rng = np.random.default_rng(4)
    n = 120
    g1, g2, g3 = rng.integers(0, 6, n), rng.integers(0, 4, n), rng.integers(0, 30, n)
    x = rng.normal(size=n)
    z2 = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    inds = np.column_stack((np.arange(3), np.arange(3))) if zerocorr else None
    terms = [
        ReTerm("g1", g1, tuple(range(6)), np.ones((n, 1)), ("(Intercept)",)),
        ReTerm("g2", g2, tuple(range(4)), z2, ("(Intercept)", "x", "w"), inds),
        ReTerm("g3", g3, tuple(range(30)), np.ones((n, 1)), ("(Intercept)",)),
    ]
    X = np.column_stack([np.ones(n), x])
    y = 1.0 + x + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    return LMMProblem(X, y, terms, weights=w)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("zerocorr", [False, True])
def test_the_dense_system_holds_a_and_lambda(weighted, zerocorr):
    problem = _problem(weighted, zerocorr)
    ev = DenseEvaluator(problem)
    # each lower block of A and its transpose above it, a diagonal block (the
    # [X y] block, not symmetric to the last bit with weights) as its transpose
    sizes = [t.nranef for t in problem.terms] + [problem.p + 1]
    off = np.concatenate(([0], np.cumsum(sizes)))
    want = np.zeros_like(ev.A)
    for (i, j), blk in problem.A.items():
        dense = dense_a_block(blk)
        want[off[i] : off[i + 1], off[j] : off[j + 1]] = dense
        want[off[j] : off[j + 1], off[i] : off[i + 1]] = dense.T
    assert ev.A.tobytes() == want.tobytes()
    assert ev.q == off[-2]
    # theta's entries land where Lambda-tilde = blockdiag(Lambda, I) has them
    theta = np.random.default_rng(1).uniform(0.2, 1.5, problem.ntheta)
    lam = np.zeros_like(ev.A)
    lam.flat[ev._lam_pos] = np.append(theta, 1.0)[ev._lam_src]
    expected = sla.block_diag(problem.dense_lambda(theta), np.eye(problem.p + 1))
    np.testing.assert_array_equal(lam, expected)
    identity = np.diag(np.r_[np.ones(ev.q), np.zeros(problem.p + 1)])
    np.testing.assert_array_equal(ev._identity_re, identity)
