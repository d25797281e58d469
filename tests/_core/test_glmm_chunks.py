"""GLMMs fitted from rows in chunks, one map-reduce per PIRLS pass, against the
in-memory GLMMProblem on the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from sklmixed._core._families import get_family, get_link
from sklmixed._core._glmm import GLMMProblem
from sklmixed._core._glmm_chunks import ChunkedGLMMProblem, GLMMChunk
from sklmixed._core._reterm import ReTerm
from sklmixed._optim import fit_glmm


class ListChunks:
    """Chunks in a list, reduced in order (what a cluster does on its workers)."""

    def __init__(self, chunks):
        self.chunks = chunks

    def map_reduce(self, map_fn, combine_fn):
        out = None
        for ch in self.chunks:
            part = map_fn(ch)
            out = part if out is None else combine_fn(out, part)
        return out


def _bernoulli(seed=5, n=900, crossed=True):
    """Crossed subjects and items with a covariate, as verbagg has (smaller)."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 40, n)
    item = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(scale=1.2, size=40)[subj] + rng.normal(0, 0.5, 12)[item]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack((np.ones(n), x, 5.0 + x**2))
    terms = [ReTerm("subj", subj, tuple(range(40)), np.ones((n, 1)), ("(Intercept)",))]
    if crossed:
        terms.append(ReTerm("item", item, tuple(range(12)), np.ones((n, 1)), ("(Intercept)",)))
    return X, y, terms


def _chunked(mem: GLMMProblem, y, cuts, pw=None, offset=None):
    lmm, n = mem.lmm, y.shape[0]
    pw = np.ones(n) if pw is None else pw
    offset = np.zeros(n) if offset is None else offset
    chunks = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        r = np.arange(a, b)
        terms = [ReTerm(t.name, t.refs[r], t.levels, t.z[r], t.cnames, t.inds) for t in lmm.terms]
        chunks.append(GLMMChunk(lmm.X[r], y[r], pw[r], offset[r], terms, [z[r] for z in lmm.zs]))
    return ChunkedGLMMProblem(
        ListChunks(chunks),
        lmm.terms,
        lmm.scaling,
        lmm.keep,
        lmm.p_full,
        mem.family,
        mem.link,
        nagq=mem.nagq,
    )


def _pair(family="bernoulli", cuts=(0, 7, 300, 301, 900), crossed=True, nagq=1, n=900, **kw):
    X, y, terms = _bernoulli(n=n, crossed=crossed)
    fam = get_family(family)
    link = get_link(fam, None)
    mem = GLMMProblem(X, y, terms, fam, link, nagq=nagq, **kw)
    return mem, _chunked(mem, y, list(cuts), kw.get("weights"), kw.get("offset"))


@pytest.mark.parametrize("nagq", [1, 5])
def test_fast_fit_in_chunks_is_the_in_memory_fit(nagq):
    mem, chunked = _pair(crossed=nagq == 1, nagq=nagq)
    beta, theta, opt = fit_glmm(mem, fast=True)
    beta_c, theta_c, opt_c = fit_glmm(chunked, fast=True)
    assert opt_c.fmin == pytest.approx(opt.fmin, rel=1e-9)
    # The optimum is found to the optimizer's tolerance, and sums in another order
    # (chunks) move it within that: the in-memory fit of these rows in reverse
    # order differs from the in-memory fit by 2.4e-6 in theta and 1.1e-7 in beta.
    np.testing.assert_allclose(beta_c, beta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(theta_c, theta, rtol=0, atol=1e-5)


def test_deviance_at_given_parameters_is_the_in_memory_deviance():
    # Laplace with beta given (the joint stage's evaluations) and the quadrature
    # deviance, on weights and an offset
    rng = np.random.default_rng(0)
    kw = {"weights": rng.uniform(0.5, 2.0, 900), "offset": rng.normal(scale=0.3, size=900)}
    mem, chunked = _pair(**kw)
    beta = np.array([-0.2, 0.5, 0.05])
    for theta in (np.array([1.0, 0.5]), np.array([0.3, 0.0])):
        assert chunked.deviance(theta, beta) == pytest.approx(mem.deviance(theta, beta), rel=1e-11)
    mem, chunked = _pair(crossed=False, nagq=7, **kw)
    theta = np.array([0.9])
    assert chunked.deviance(theta) == pytest.approx(mem.deviance(theta), rel=1e-11)
    assert chunked.lmm.nobs == mem.lmm.nobs == 900


def test_laplace_fit_in_chunks_is_the_in_memory_fit():
    mem, chunked = _pair(n=400, cuts=(0, 3, 150, 151, 400))
    beta, theta, opt = fit_glmm(mem)
    beta_c, theta_c, opt_c = fit_glmm(chunked)
    # The joint (beta, theta) search stops where the PIRLS deviance's last digits
    # stop telling points apart, and sums in another order (even the same sums at
    # other memory alignments) move that point: the in-memory fit of 900 such rows
    # in reverse order differs from it by 2.2e-9 in the relative deviance, 1.4e-4
    # in beta and 3e-5 in theta.
    assert opt_c.fmin == pytest.approx(opt.fmin, rel=1e-8)
    np.testing.assert_allclose(beta_c, beta, rtol=0, atol=1e-3)
    np.testing.assert_allclose(theta_c, theta, rtol=0, atol=3e-4)


def test_families_that_need_the_rows_are_refused():
    X, y, terms = _bernoulli()
    fam = get_family("gamma")
    mem = GLMMProblem(X, y + 1.0, terms, fam, get_link(fam, None))
    with pytest.raises(ValueError, match="gamma family cannot be fitted in chunks"):
        _chunked(mem, y + 1.0, [0, 900])
