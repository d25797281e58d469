"""GLMMs whose rows stay in chunks: each PIRLS pass is one map-reduce.

PIRLS needs the rows only through sums: the penalized deviance (a sum of
deviance residuals), and for the next step the cross-products
A = [Z X z]' W [Z X z] at the working weights W and working response z
(DESIGN.md section 11). Both are sums over rows, so a pass over chunks of rows,
each reduced to its part and the parts added, gives what one pass over all the
rows gives. The chunks may live anywhere that can run a function on each and add
the results (the partitions of a Dask DataFrame on a cluster): this module sees
them only through ``map_reduce(map_fn, combine_fn)``.

:class:`ChunkedGLMMProblem` is :class:`~sklmixed._core._glmm.GLMMProblem` with
the linear predictor kept where the rows are: ``eta`` is the coefficients that
determine it (:class:`_Eta`), and every quantity PIRLS computes from the rows
(``_pdev``, the working weights' cross-products, the rounding bound of the
deviance, the adaptive Gauss-Hermite sums) is one pass. A pass at eta computes
the deviance and the cross-products at once: PIRLS asks for the cross-products
at the point whose deviance it has just accepted, so each PIRLS iteration costs
one pass. The PIRLS iteration itself, its step halving and convergence, the
Laplace and quadrature deviances are the parent's, on the same numbers.

Families without a dispersion parameter whose Laplace approximation uses the
expected information (bernoulli, binomial, poisson): the others need the
observed information and a dispersion estimate from the rows, not implemented
for chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from sklmixed._core._crossprod import CrossProducts, RowProducts
from sklmixed._core._families import Family, Link
from sklmixed._core._glmm import GLMMProblem, PIRLSError, PIRLSState, gauss_hermite_normal
from sklmixed._core._lmm import LMMProblem, order_terms
from sklmixed._core._reterm import ReTerm
from sklmixed._core._scaling import Scaling

__all__ = ["ChunkedGLMMProblem", "GLMMChunk", "Reducer", "chunked_family_supported"]


class Reducer(Protocol):
    """Chunks of rows that can be reduced: ``combine_fn`` over ``map_fn`` of each."""

    def map_reduce(
        self, map_fn: Callable[[Any], Any], combine_fn: Callable[[Any, Any], Any]
    ) -> Any: ...


@dataclass
class GLMMChunk:
    """The rows of one chunk on the core's internal columns.

    Attributes
    ----------
    X : ndarray (n, p)
        Internal fixed-effects columns, the estimable ones only.
    y : ndarray (n,)
        Response on the family's scale (0/1, proportion, count).
    pw : ndarray (n,)
        Prior weights (ones without).
    offset : ndarray (n,)
        Known part of the linear predictor (zeros without).
    terms : list of ReTerm
        In the core's order, ``refs`` indexing the levels of the whole data.
    zs : list of ndarray (n, k)
        Internal random-effects columns of each term.
    """

    X: NDArray[Any]
    y: NDArray[Any]
    pw: NDArray[Any]
    offset: NDArray[Any]
    terms: list[ReTerm]
    zs: list[NDArray[Any]]
    _rows: RowProducts | None = None

    def cross_products(self, w: NDArray[Any], z: NDArray[Any]) -> CrossProducts:
        """A of these rows at weights ``w`` and response ``z``; what does not
        depend on them (Z', the level pairs of the rows) is built on the first
        call and kept (a chunk kept on a worker serves every PIRLS pass)."""
        if self._rows is None:
            self._rows = RowProducts(self.X, self.terms, self.zs)
        return self._rows.compute(w, z, counts=True)


def chunked_family_supported(family: Family) -> bool:
    """Whether a family can be fitted in chunks (see the module's notes)."""
    return not family.has_dispersion and not family.observed_information


@dataclass(frozen=True, eq=False)
class _Eta:
    """The linear predictor X beta + Z b + offset, as the coefficients that make it."""

    beta: NDArray[Any]
    bs: tuple[NDArray[Any], ...]


@dataclass
class _Pass:
    """What one pass over the rows at a given eta returns (summed over chunks)."""

    devsum: float  # sum of the deviance residuals
    noise: float  # sum of pw (|y| + mu): the rounding bound of devsum
    loglik: float  # conditional log-likelihood
    extreme: int  # rows whose mean is within 1e-10 of 0 or 1 (separation)
    nobs: int  # rows of positive prior weight
    logw_sum: float  # sum of the logs of the positive prior weights
    cp: CrossProducts | None  # at the working weights and response of eta

    def combine(self, other: _Pass) -> _Pass:
        cp = None if self.cp is None or other.cp is None else self.cp.combine(other.cp)
        return _Pass(
            self.devsum + other.devsum,
            self.noise + other.noise,
            self.loglik + other.loglik,
            self.extreme + other.extreme,
            self.nobs + other.nobs,
            self.logw_sum + other.logw_sum,
            cp,
        )


def _chunk_eta(ch: GLMMChunk, eta: _Eta) -> NDArray[Any]:
    # the same operations, in the same order, as GLMMProblem.eta on all rows
    out = ch.X @ eta.beta + ch.offset
    for t, z, b in zip(ch.terms, ch.zs, eta.bs):
        out = out + np.einsum("nk,nk->n", z, b[t.refs])
    return np.asarray(out)


def _pass_map(ch: GLMMChunk, family: Family, link: Link, eta: _Eta, with_cp: bool) -> _Pass:
    e = _chunk_eta(ch, eta)
    mu = family.clamp(link.inverse(e))
    dev = ch.pw * family.unit_deviance(ch.y, mu) / family.scale
    raw = link.inverse(e)
    positive = ch.pw > 0
    cp = None
    if with_cp:
        # GLMMProblem._reweight's expected-information weights and working response
        dmu = link.mu_eta(e)
        var = family.variance(mu) * family.scale
        w = ch.pw * dmu**2 / var
        z = e + (ch.y - mu) / dmu - ch.offset
        cp = ch.cross_products(w, z)
    return _Pass(
        float(dev.sum()),
        float(np.sum(ch.pw * (np.abs(ch.y) + mu))),
        float(np.sum(family.loglik(ch.y, mu, ch.pw))),
        int(np.sum((raw < 1e-10) | (raw > 1 - 1e-10))),
        int(np.sum(positive)),
        float(np.sum(np.log(ch.pw[positive]))),
        cp,
    )


def _combine_pass(a: _Pass, b: _Pass) -> _Pass:
    return a.combine(b)


def _agq_map(
    ch: GLMMChunk,
    family: Family,
    link: Link,
    eta: _Eta,
    lam: float,
    sd: NDArray[Any],
    nodes: NDArray[Any],
) -> NDArray[Any]:
    """Per level of the single scalar term: the summed deviance residuals at the
    modes (row 0) and at each nonzero quadrature node (the following rows)."""
    term = ch.terms[0]
    refs, nl = term.refs, term.nlevels
    e0 = _chunk_eta(ch, eta)
    zl = ch.zs[0][:, 0] * lam

    def devresid(e: NDArray[Any]) -> NDArray[Any]:
        mu = family.clamp(link.inverse(e))
        return np.asarray(ch.pw * family.unit_deviance(ch.y, mu) / family.scale)

    out = np.zeros((1 + len(nodes), nl))
    out[0] = np.bincount(refs, devresid(e0), minlength=nl)
    for i, z in enumerate(nodes):
        du = z * sd
        out[1 + i] = np.bincount(refs, devresid(e0 + zl * du[refs]), minlength=nl)
    return out


def _add(a: Any, b: Any) -> Any:
    return a + b


class ChunkedGLMMProblem(GLMMProblem):
    """A GLMM fitted from rows that stay in chunks (see the module's notes).

    Parameters
    ----------
    chunks : Reducer
        The rows as :class:`GLMMChunk` objects, reduced by ``map_reduce``.
    terms : list of ReTerm
        The model's terms (any order; rows not needed): names, levels, columns
        and the pattern of lambda.
    scaling : Scaling
        The internal centring and scaling of X and Z (the response is not
        scaled), as decided from the moments of the data.
    keep : ndarray of int
        Estimable columns of the internal X.
    p_full : int
        Number of columns of the full fixed-effects matrix.
    family, link : Family, Link
        A family for which :func:`chunked_family_supported` holds.
    nagq : int
        Adaptive Gauss-Hermite points (1: Laplace).
    """

    def __init__(
        self,
        chunks: Reducer,
        terms: Sequence[ReTerm],
        scaling: Scaling,
        keep: NDArray[Any],
        p_full: int,
        family: Family,
        link: Link,
        nagq: int = 1,
    ) -> None:
        if not chunked_family_supported(family):
            raise ValueError(f"the {family.name} family cannot be fitted in chunks")
        # None once the fit is done: the fitted model keeps no reference to the data
        self.chunks: Reducer | None = chunks
        self.family, self.link = family, link
        self.nagq = int(nagq)
        self._passes: dict[int, tuple[_Eta, _Pass]] = {}
        ordered = order_terms(list(terms))
        p = int(np.asarray(keep).shape[0])
        # A first pass at eta = 0 (beta = 0, u = 0): the level pairs of the data,
        # n, and a problem whose structure every later pass's cross-products fit
        eta0 = _Eta(np.zeros(p), tuple(np.zeros((t.nlevels, t.k)) for t in ordered))
        first = self._run(eta0)
        assert first.cp is not None
        # counts of the prior weights, as the in-memory problem's LMM has them (the
        # cross-products counted the working weights)
        cp = replace(first.cp, nobs=first.nobs, logw_sum=first.logw_sum)
        self.lmm = LMMProblem.from_crossproducts(cp, ordered, scaling, keep, p_full)
        self.n = int(first.cp.n)
        # the rows stay in their chunks: whatever would read them fails loudly
        self.y = None  # type: ignore[assignment]
        self.pw = None  # type: ignore[assignment]
        self.offset = None  # type: ignore[assignment]
        self.p = self.lmm.p
        self.X = None  # type: ignore[assignment]
        self.terms = self.lmm.terms
        self.ntheta = self.lmm.ntheta
        self._start_beta: NDArray[Any] | None = None
        self._start_u: list[NDArray[Any]] = []
        # the working weights of a state are per row: not kept for data in chunks
        self.state = PIRLSState.before_any(self.p, self.terms, eta0, 0)
        self.iterative = False  # every PIRLS step is a pass over the chunks
        self._lmm_weights = np.zeros(0)  # per row: not kept (see the state above)
        self._re = self.lmm
        self._aux = None
        self.logdet = 0.0
        self._newton = False
        self.passes = 1  # map-reduces over the chunks so far
        self.reset()
        if self.nagq > 1:
            self.gh = gauss_hermite_normal(self.nagq)

    # ------------------------------------------------------------- passes

    def _run(self, eta: _Eta, with_cp: bool = True) -> _Pass:
        fn = functools.partial(
            _pass_map, family=self.family, link=self.link, eta=eta, with_cp=with_cp
        )
        result: _Pass = self._reducer().map_reduce(fn, _combine_pass)
        self.passes = getattr(self, "passes", 0) + 1
        return result

    def forget_passes(self) -> None:
        """Drop the kept results of the last passes (their cross-products)."""
        self._passes = {}

    def _reducer(self) -> Reducer:
        if self.chunks is None:
            raise PIRLSError(
                "the data of this fit were read in chunks and are not kept: a new PIRLS "
                "pass needs the fit repeated"
            )
        return self.chunks

    def _at(self, eta: _Eta) -> _Pass:
        """The pass at eta, computed once (PIRLS asks for the deviance of a point
        and then for its cross-products)."""
        hit = self._passes.get(id(eta))
        if hit is not None and hit[0] is eta:
            return hit[1]
        result = self._run(eta)
        # the last few points only: a PIRLS iteration looks back one step
        if len(self._passes) >= 4:
            self._passes.pop(next(iter(self._passes)))
        self._passes[id(eta)] = (eta, result)
        return result

    # ------------------------------------------- GLMMProblem's row operations

    def eta(self, beta: NDArray[Any], theta: NDArray[Any], us: list[NDArray[Any]]) -> Any:
        bs = tuple(np.asarray(b) for b in self.lmm.b(us, theta))
        return _Eta(np.asarray(beta, dtype=float).copy(), bs)

    def devresid(self, eta: Any) -> NDArray[Any]:
        raise PIRLSError("deviance residuals per row are not kept for data in chunks")

    def _pdev(self, eta: Any, us: list[NDArray[Any]]) -> float:
        return float(self._at(eta).devsum + sum(float(np.sum(u**2)) for u in us))

    def _reweight(self, eta: Any, theta: NDArray[Any], beta: NDArray[Any] | None = None) -> Any:
        cp = self._at(eta).cp
        assert cp is not None
        self._newton = False
        # the same problem, new A: its structure (level pairs) is the data's
        self.lmm._install(cp)
        if not self.lmm.set_theta(theta):
            raise PIRLSError("the penalized weighted least-squares factor is not positive definite")
        return self.lmm

    def _fisher(self, eta: Any) -> tuple[NDArray[Any], NDArray[Any]]:
        # per-row working weights and response are not kept for data in chunks
        # (each pass sums them into the cross-products)
        return np.zeros(0), np.zeros(0)

    def _deviance_noise(self, eta: Any) -> float:
        return float(8.0 * np.finfo(float).eps * self._at(eta).noise)

    def glm_start(self, from_data: bool = False) -> None:
        if from_data:
            raise PIRLSError(
                "the GLM start from the data's means is not available for data in chunks"
            )
        super().glm_start()

    def _agq_deviance(
        self, theta: NDArray[Any], beta: NDArray[Any], us: list[NDArray[Any]]
    ) -> float:
        # GLMMProblem._agq_deviance, with its per-level sums from one pass
        u0 = us[0][:, 0]
        lam = float(theta[0])
        sd = 1.0 / self._re.factor()[(0, 0)].diagonal()
        z, w = self.gh
        nonzero = z != 0.0
        fn = functools.partial(
            _agq_map,
            family=self.family,
            link=self.link,
            eta=self.state.eta,
            lam=lam,
            sd=sd,
            nodes=z[nonzero],
        )
        sums = self._reducer().map_reduce(fn, _add)
        self.passes += 1
        devc0 = sums[0] + u0**2
        mult = np.zeros_like(u0)
        rows = iter(range(1, sums.shape[0]))
        for zk, wk, nz in zip(z, w, nonzero):
            if not nz:
                mult += wk
                continue
            du = zk * sd
            devc = sums[next(rows)] + (u0 + du) ** 2
            mult += np.exp((zk**2 - devc + devc0) / 2.0) * wk
        return float(devc0.sum() - 2.0 * (np.sum(np.log(mult)) + np.sum(np.log(sd))))

    def saturated_loglik(self) -> float:
        return 0.0  # only families with a dispersion read it

    def conditional_loglik(self, eta: Any) -> float:
        return float(self._at(eta).loglik)

    def extreme_means(self) -> int:
        """Rows whose fitted mean is within 1e-10 of 0 or 1 (at the last modes)."""
        return int(self._at(self.state.eta).extreme)
