"""Generalized linear mixed models: PIRLS, the Laplace deviance and adaptive GHQ.

For given theta (and beta, unless beta is to vary), penalized iteratively
reweighted least squares (PIRLS) finds the conditional modes u by repeatedly
solving the penalized weighted least-squares problem of an LMM whose weights are
the GLM working weights and whose response is the working response; the blocked
factorization of :class:`~sklmixed._core._lmm.LMMProblem` is reused unchanged.
The Laplace approximation to the deviance at the modes is (MixedModels.jl's
``deviance(m, 1)``)

    sum of deviance residuals + ||u||^2 + log |Lambda' Z'WZ Lambda + I|,

and with nAGQ = k > 1 (one scalar random-effects term only) the integral over each
level's random effect uses k-point adaptive Gauss-Hermite quadrature centred at
the mode with scale 1 / L_ii, as MixedModels.jl does.

An offset (a known term of the linear predictor, e.g. log exposure) is added to
eta and subtracted from the working response, so the penalized least-squares
problem sees only X beta + Z b.

Families with a dispersion parameter (negative binomial shape, Gamma and inverse
Gaussian dispersion phi) are fitted as glmmTMB fits them: the parameter's log is
one more coordinate of the optimization, the deviance residuals and working
weights are divided by phi, and the Laplace deviance is the full -2 log L,

    -2 log p(y | u, phi) + ||u||^2 + log |Lambda' Z'W_obs Z Lambda + I|,

normalizing terms included (they depend on phi), with W_obs the observed
information of each observation at the modes, the exact Hessian that TMB uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sklmixed._core._block_types import DenseBlock
from sklmixed._core._families import DispersionFamily, Family, Link
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._pcg import FactorSolver
from sklmixed._core._reterm import ReTerm
from sklmixed._core._scaling import Scaling

# PIRLS convergence: stop when the penalized deviance changes by less than this
# relative amount; step halving gives up after this many halvings.
PIRLS_RTOL = 1e-10
PIRLS_MAXITER = 200
PIRLS_MAXHALF = 20
# hessian_vcov differences every pair of parameters up to this many; beyond, the
# fixed-effects block comes from the PIRLS factor (d (d + 1) evaluations are 156 here,
# about one fit's worth).
FULL_HESSIAN_MAX = 12
# PIRLS steps by conjugate gradients (see _pcg) where the factor has a dense diagonal
# block of at least this many rows: below, a factorization costs less than a few
# iterations' bookkeeping (a 1000-row dense Cholesky takes about 10 ms).
ITERATIVE_MIN = 1000
# The random-effects-only problem's last diagonal (see _factor): any large value.
_R2_PLACEHOLDER = 1e300
_TINY = np.finfo(float).tiny
# Beyond exp(+-LOG_PARAM_MAX) a dispersion or shape is treated as infeasible (the
# objective is infinite there): a negative binomial with shape e^40 is a Poisson.
LOG_PARAM_MAX = 40.0


@dataclass
class PIRLSState:
    """What the last PIRLS evaluation of a :class:`GLMMProblem` left (its ``state``).

    The one view of a GLMM's conditional modes that the layers above the core
    read; every array is on the core's internal scale (centred and scaled
    columns, spherical random effects).

    Attributes
    ----------
    params : ndarray
        The parameters evaluated: theta, then the log dispersion (or shape) for a
        family that has one (theta alone after a bare :meth:`GLMMProblem.pirls`).
    beta : ndarray
        The fixed effects at the modes: PIRLS's when they varied, else those given.
    u : list of ndarray
        The spherical conditional modes, one (levels, k) array per term.
    eta : ndarray
        The linear predictor at the modes, offset included (for data read in
        chunks, the fixed and random effects that give it chunk by chunk).
    weights : ndarray
        The working weights at eta, prior weights included, that the PIRLS
        factor holds: Fisher's, or the observed information for a family that
        uses it where it is positive.
    pdev : float
        The penalized deviance at the modes.
    converged : bool
        Whether PIRLS converged (False only for the state before any evaluation).
    beta_varied : bool
        Whether PIRLS updated beta (``fast=True`` and the GLM start) or held it fixed.
    """

    params: NDArray[Any]
    beta: NDArray[Any]
    u: list[NDArray[Any]]
    eta: Any
    weights: NDArray[Any]
    pdev: float
    converged: bool
    beta_varied: bool

    @classmethod
    def before_any(cls, p: int, terms: Sequence[ReTerm], eta: Any, nweights: int) -> PIRLSState:
        """The state before any evaluation: beta = 0, u = 0 and the given eta."""
        return cls(
            params=np.zeros(0),
            beta=np.zeros(p),
            u=[np.zeros((t.nlevels, t.k)) for t in terms],
            eta=eta,
            weights=np.zeros(nweights),
            pdev=np.nan,
            converged=False,
            beta_varied=True,
        )


class PIRLSError(RuntimeError):
    """PIRLS could not reduce the penalized deviance (step halving exhausted)."""


def gauss_hermite_normal(k: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Nodes and weights of k-point Gauss-Hermite quadrature for the standard
    normal density (weights sum to 1), as MixedModels.jl's ``GHnorm``."""
    z, w = np.polynomial.hermite_e.hermegauss(k)
    return z, w / np.sqrt(2.0 * np.pi)


class GLMMProblem:
    """The GLMM deviance as a function of (beta, theta) or of theta alone.

    Parameters
    ----------
    X, y, reterms : as for LMMProblem (y on the response scale: 0/1, proportion,
        or count).
    family, link : Family, Link
    weights : ndarray, optional
        Prior weights (numbers of trials for the binomial family, case weights
        otherwise).
    nagq : int
        Number of adaptive Gauss-Hermite quadrature points (1: Laplace).
    offset : ndarray, optional
        Known term added to the linear predictor of each observation.

    The optimizer's parameter vector is theta, followed by the log of the
    dispersion (or shape) for a :class:`DispersionFamily`; ``self.family`` always
    holds the family at the value of the last evaluation.
    """

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        reterms: list[ReTerm],
        family: Family,
        link: Link,
        weights: ArrayLike | None = None,
        nagq: int = 1,
        offset: ArrayLike | None = None,
        xnames: list[str] | None = None,
    ) -> None:
        self.y = np.asarray(y, dtype=float)
        n = self.y.shape[0]
        self.pw = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        self.offset = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
        self.family, self.link = family, link
        self.nagq = int(nagq)
        # Covariates are centred and scaled inside the LMM (beta, theta and u are
        # internal here too); the response is on the family's scale and stays.
        self.lmm = LMMProblem(
            X, self.y, reterms, weights=self.pw, scale_response=False, xnames=xnames
        )
        self.n = n
        self.p = self.lmm.p
        self.X = self.lmm.X  # estimable columns only
        self.terms = self.lmm.terms
        self.ntheta = self.lmm.ntheta
        # PIRLS's warm start: beta (when it varies) and u, from the previous evaluation
        self._start_beta: NDArray[Any] | None = None
        self._start_u: list[NDArray[Any]] = []
        self.state = PIRLSState.before_any(self.p, self.terms, np.array(self.offset), n)
        # The problem whose factor holds the Laplace log-determinant of the last
        # evaluation, and that log-determinant (see _laplace_factor).
        self._re: LMMProblem = self.lmm
        self._aux: LMMProblem | None = None
        self.logdet = 0.0
        self._newton = False  # whether the last weights were the observed information
        self._lmm_weights = np.zeros(n)  # the working weights of self.lmm's factor
        # Whether PIRLS may take its steps by conjugate gradients (see _pcg): a large
        # dense block in the factor, and Fisher weights (the factor is self.lmm's).
        self.iterative = not family.observed_information and any(
            block is DenseBlock and self.lmm.terms[i].nranef >= ITERATIVE_MIN
            for (i, j), block in self.lmm.Ltype.items()
            if i == j < self.lmm.m
        )
        self.reset()
        if self.nagq > 1:
            self.gh = gauss_hermite_normal(self.nagq)

    def reset(self) -> None:
        """Forget the warm start of u (the modes of the previous evaluation): the
        next PIRLS starts from u = 0."""
        self._start_u = [np.zeros((t.nlevels, t.k)) for t in self.terms]

    def set_start(
        self, beta: NDArray[Any] | None = None, u: list[NDArray[Any]] | None = None
    ) -> None:
        """Start the next PIRLS from ``beta`` (internal; used where beta varies)
        and/or the modes ``u`` instead of the previous evaluation's."""
        if beta is not None:
            self._start_beta = np.array(beta, dtype=float)
        if u is not None:
            self._start_u = [np.array(a, dtype=float) for a in u]

    @property
    def u(self) -> list[NDArray[Any]]:
        """The conditional modes of the last evaluation (``state.u``)."""
        return self.state.u

    @property
    def _eta(self) -> NDArray[Any]:
        # the linear predictor of the last evaluation, kept under its former name
        return np.asarray(self.state.eta)

    # -------------------------------------------------------- parameters

    def initial_theta(self) -> NDArray[Any]:
        """lambda = I, then the log of the family's current dispersion or shape."""
        theta = self.lmm.initial_theta()
        if isinstance(self.family, DispersionFamily):
            theta = np.append(theta, np.log(self.family.param))
        return theta

    def lower_bounds(self) -> NDArray[Any]:
        lower = self.lmm.lower_bounds()
        return np.append(lower, -np.inf) if self.family.has_dispersion else lower

    def _set_params(self, params: NDArray[Any]) -> NDArray[Any]:
        """Install the dispersion from ``params`` (if it has one) and return theta.

        A vector of theta alone keeps the family's current dispersion."""
        params = np.asarray(params, dtype=float)
        family = self.family
        if isinstance(family, DispersionFamily) and params.shape[0] == self.ntheta + 1:
            logp = float(params[-1])
            if not abs(logp) <= LOG_PARAM_MAX:
                raise FloatingPointError(f"the {family.param_name} is out of range")
            value = float(np.exp(logp))
            if value != family.param:
                self.family = family.with_param(value)
            return params[:-1]
        return params

    def glm_start(self, from_data: bool = False) -> None:
        """Fit the GLM (Lambda = 0): starting beta and, for a family with a
        dispersion, its maximum-likelihood value given the GLM's means.

        ``from_data``: start IRLS from the family's starting means (R's
        ``family$initialize``) even where the family starts from beta = 0, whose
        first step jumps to the size of the response on the linear predictor's
        scale and, for large counts (Poisson responses in the tens of thousands),
        overflows the working weights.
        """
        theta0 = np.zeros(self.ntheta)
        self.reset()
        mu0 = self.family.starting_mu(self.y)
        if mu0 is None and from_data:
            mu0 = self.family.mustart(self.y, self.pw)
        if mu0 is not None and self.p:
            # one weighted least-squares step from mu0 (R's glm.fit start): a
            # positive response may be far from mu = g^{-1}(0)
            eta0 = self.link.link(mu0)
            dmu = self.link.mu_eta(eta0)
            sw = np.sqrt(self.pw * dmu**2 / self.family.variance(mu0))
            z = eta0 + (self.y - mu0) / dmu - self.offset
            self._start_beta = np.linalg.lstsq(self.X * sw[:, None], z * sw, rcond=None)[0]
        # Lambda = 0: the log-determinant is 0 and nothing reads the factor, which
        # large problems skip (see pirls)
        self.pirls(theta0, final_factor=False)
        family = self.family
        if isinstance(family, DispersionFamily):
            # twice: the negative binomial's weights depend on its shape
            for _ in range(2):
                mu = family.clamp(self.link.inverse(self.state.eta))
                family = family.with_param(family.estimate_param(self.y, mu, self.pw))
                self.family = family
                self.pirls(theta0, final_factor=False)
        self.reset()

    # ------------------------------------------------------------- pieces

    def eta(self, beta: NDArray[Any], theta: NDArray[Any], us: list[NDArray[Any]]) -> NDArray[Any]:
        eta = self.X @ beta + self.offset
        for t, z, b in zip(self.terms, self.lmm.zs, self.lmm.b(us, theta)):
            eta = eta + np.einsum("nk,nk->n", z, b[t.refs])
        return np.asarray(eta)

    def devresid(self, eta: NDArray[Any]) -> NDArray[Any]:
        """Deviance residuals, divided by the dispersion: -2 log p(y | eta) up to
        terms free of eta."""
        mu = self.family.clamp(self.link.inverse(eta))
        return self.pw * self.family.unit_deviance(self.y, mu) / self.family.scale

    def _pdev(self, eta: NDArray[Any], us: list[NDArray[Any]]) -> float:
        """The penalized deviance that PIRLS minimizes; infinite where a mean
        leaves the support of a family with a dispersion (a non-positive mean from
        an identity or inverse link), so that step halving backs away from it."""
        if self.family.has_dispersion and not np.all(self.link.inverse(eta) > 0):
            return np.inf
        return float(self.devresid(eta).sum() + sum(float(np.sum(u**2)) for u in us))

    def _reweight(
        self, eta: NDArray[Any], theta: NDArray[Any], beta: NDArray[Any] | None = None
    ) -> LMMProblem:
        """Install working weights and response at eta, factor at theta, and
        return the problem whose factor gives the next modes (``beta``: the fixed
        effects when they are held fixed, None when PIRLS updates them too).

        The weights are the expected (Fisher) information, as lme4 and
        MixedModels.jl use. For a family that asks for the observed information
        they are that instead, so that iteratively reweighted least squares is
        Newton's method: it converges quadratically, where Fisher scoring is
        linear for a non-canonical link and stops with modes off by 1e-4 and noise
        of 1e-7 in the deviance. Where the observed information is negative for
        some observation (the inverse Gaussian's log link when y < mu / 2) the
        fixed-effects block may be indefinite while the random-effects block is
        positive definite near the modes: with beta fixed, the Newton step for u
        then comes from a problem without X; with beta varying, PIRLS keeps
        Fisher scoring.
        """
        fam = self.family
        mu = fam.clamp(self.link.inverse(eta))
        dmu = self.link.mu_eta(eta)
        var = fam.variance(mu) * fam.scale
        self._newton = False
        if fam.observed_information:
            info = self._information(eta, mu, dmu, var / fam.scale)
            positive = bool(np.all(info[self.pw > 0] > 0))
            if positive or beta is not None:
                self._newton = True
                safe = np.where(info == 0.0, _TINY, info)
                w = self.pw * info
                z = eta + (self.y - mu) * dmu / (var * safe) - self.offset
                if positive:
                    return self._factor(self.lmm, w, z, theta)
                return self._factor(self._re_only(), w, z - self.X @ beta, theta)
        return self._factor(
            self.lmm, self.pw * dmu**2 / var, eta + (self.y - mu) / dmu - self.offset, theta
        )

    def _fisher(self, eta: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
        """Fisher's working weights (prior weights included) and working response
        (offset removed) at eta."""
        fam = self.family
        mu = fam.clamp(self.link.inverse(eta))
        dmu = self.link.mu_eta(eta)
        w = self.pw * dmu**2 / (fam.variance(mu) * fam.scale)
        return w, eta + (self.y - mu) / dmu - self.offset

    def working_response(self, eta: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
        """(Fisher's working weights, working response) at ``eta``: the weighted
        linear model that one PIRLS step solves (offset removed from the response)."""
        return self._fisher(eta)

    def start_eta(self) -> NDArray[Any]:
        """The linear predictor at the starting beta (the GLM fit) and u = 0."""
        beta = self._start_beta if self._start_beta is not None else np.zeros(self.p)
        return np.asarray(self.X @ beta + self.offset)

    def _re_only(self) -> LMMProblem:
        """The random-effects terms without X (built on first use)."""
        if self._aux is None:
            # the same internal random-effects columns as self.lmm's
            self._aux = LMMProblem(
                np.zeros((self.n, 0)),
                np.zeros(self.n),
                self.terms,
                scaling=Scaling(None, 0.0, 1.0, self.lmm.scaling.terms),
            )
        return self._aux

    def _factor(
        self, problem: LMMProblem, w: NDArray[Any], z: NDArray[Any], theta: NDArray[Any]
    ) -> LMMProblem:
        with np.errstate(invalid="ignore"):  # sqrt of negative weights (random-effects only)
            problem.set_weights(w, z)
        if problem is self.lmm:
            self._lmm_weights = w
        if problem is self._aux:
            # Its last diagonal, r^2 = z'Wz - ..., may be negative with negative
            # weights; nothing reads it (the modes come from the rows above it, the
            # log-determinant from the random-effects blocks), so make it positive.
            problem.A[(problem.m, problem.m)] = np.full((1, 1), _R2_PLACEHOLDER)
        if not problem.set_theta(theta):
            raise PIRLSError("the penalized weighted least-squares factor is not positive definite")
        return problem

    def observed_information(self, eta: NDArray[Any]) -> NDArray[Any]:
        """-d^2 log p(y_i | eta_i) / d eta_i^2 per unit prior weight: the Fisher
        weight dmu^2 / (phi V) minus (y - mu) / phi * d/deta (dmu / V), a term that
        vanishes for canonical links."""
        mu = self.family.clamp(self.link.inverse(eta))
        return self._information(eta, mu, self.link.mu_eta(eta), self.family.variance(mu))

    def _information(
        self, eta: NDArray[Any], mu: NDArray[Any], dmu: NDArray[Any], v: NDArray[Any]
    ) -> NDArray[Any]:
        fam = self.family
        d2mu, dv = self.link.mu_eta2(eta), fam.variance_deriv(mu)
        info = dmu**2 / v - (self.y - mu) * (d2mu / v - dmu**2 * dv / v**2)
        return np.asarray(info / fam.scale)

    def _laplace_factor(
        self, eta: NDArray[Any], theta: NDArray[Any], beta: NDArray[Any] | None
    ) -> None:
        """Factor at the modes for the Laplace log-determinant, kept in
        ``self._re``; ``self.lmm`` is left with a factor of the whole system (for
        the covariance of beta and the conditional variances)."""
        self._re = self._reweight(eta, theta, beta)
        fam = self.family
        if fam.observed_information and not self._newton:
            # beta varies and some observed information is negative: the PIRLS
            # factor is Fisher's, the Laplace approximation wants the observed one
            info = self.pw * self.observed_information(eta)
            self._re = self._factor(self._re_only(), info, np.zeros(self.n), theta)
        elif self._re is not self.lmm:
            # Newton's factor is of the random effects only: give lmm Fisher's
            self._factor(self.lmm, *self._fisher(eta), theta)
        self.logdet = self._re.logdet_re()

    # --------------------------------------------------------------- PIRLS

    def pirls(
        self, theta: NDArray[Any], beta: NDArray[Any] | None = None, final_factor: bool = True
    ) -> tuple[NDArray[Any], list[NDArray[Any]], float]:
        """Conditional modes at theta (and beta from PIRLS when beta is None).

        Returns (beta, u list, penalized deviance). On return the factor of
        ``self.lmm`` holds the working weights at the returned modes, except for
        a large problem (``self.iterative``) at theta = 0 with ``final_factor``
        False (the GLM start): there the steps are weighted least squares in X
        alone, no factor is formed and the log-determinant is 0.
        """
        theta = np.asarray(theta, dtype=float)
        vary_beta = beta is None
        us = list(self._start_u)  # never modified in place below
        if beta is None:
            beta = self._start_beta if self._start_beta is not None else np.zeros(self.p)
        eta = self.eta(beta, theta, us)
        obj0 = self._pdev(eta, us)
        if obj0 == np.inf:
            # the previous modes put some mean outside the family's support at this
            # theta: start from u = 0 instead
            us = [np.zeros_like(u) for u in us]
            eta = self.eta(beta, theta, us)
            obj0 = self._pdev(eta, us)
            if obj0 == np.inf:
                raise PIRLSError(
                    f"the {self.link.name} link gives means outside the support of the "
                    f"{self.family.name} family at these parameters (try the log link)"
                )
        prev: tuple[list[NDArray[Any]], NDArray[Any]] | None = None
        for _ in range(PIRLS_MAXITER):
            step = self._iterative_step(eta, theta, us, beta, vary_beta)
            if step is not None:
                new_beta, new_us = step
            else:
                solver, us, beta, eta, obj0 = self._reweight_or_retreat(
                    eta, theta, us, beta, obj0, prev, vary_beta
                )
                new_beta = solver.beta() if vary_beta else beta
                new_us = solver.u(new_beta if solver is self.lmm else np.zeros(0))
            prev = (us, beta)
            eta_new = self.eta(new_beta, theta, new_us)
            obj = self._pdev(eta_new, new_us)
            nhalf = 0
            stalled = False
            while not obj <= obj0 * (1 + 1e-12) + 1e-12:  # also catches NaN
                nhalf += 1
                if nhalf > PIRLS_MAXHALF:
                    if obj - obj0 <= self._deviance_noise(eta):
                        # At the mode already: no step can lower the deviance by more
                        # than the rounding of its own sum (large counts).
                        stalled = True
                        break
                    raise PIRLSError(
                        "PIRLS step halving failed to reduce the penalized deviance "
                        f"(from {obj0:.6g}); the model may be too complex for the data "
                        "or the response separated"
                    )
                new_us = [(a + b) / 2 for a, b in zip(new_us, us)]
                new_beta = (new_beta + beta) / 2
                eta_new = self.eta(new_beta, theta, new_us)
                obj = self._pdev(eta_new, new_us)
            if stalled:
                break
            converged = abs(obj0 - obj) <= PIRLS_RTOL * (abs(obj) + 1.0)
            us, beta, eta, obj0 = new_us, new_beta, eta_new, obj
            if converged:
                break
        else:
            raise PIRLSError(f"PIRLS did not converge in {PIRLS_MAXITER} iterations")
        # Factor at the final modes' weights: the Laplace log-determinant uses it.
        if final_factor or not (self.iterative and not np.any(theta)):
            self._laplace_factor(eta, theta, None if vary_beta else beta)
            weights = self._lmm_weights
        else:
            self.logdet = 0.0
            weights = self._fisher(eta)[0]
        beta = np.array(beta, dtype=float)
        self._start_u = us
        if vary_beta:
            self._start_beta = beta
        self.state = PIRLSState(
            params=theta.copy(),
            beta=beta,
            u=us,
            eta=eta,
            weights=weights,
            pdev=float(obj0),
            converged=True,
            beta_varied=vary_beta,
        )
        return beta, us, float(obj0)

    def _iterative_step(
        self,
        eta: NDArray[Any],
        theta: NDArray[Any],
        us: list[NDArray[Any]],
        beta: NDArray[Any],
        vary_beta: bool,
    ) -> tuple[NDArray[Any], list[NDArray[Any]]] | None:
        """The next PIRLS iterate (beta, u) by conjugate gradients preconditioned
        with the factor of the last factorization (see ``_pcg``), or None where that
        is not used (small problems, observed-information weights, no factor yet)
        or has not converged: the caller factors the system afresh then."""
        if not self.iterative:
            return None
        w, z = self._fisher(eta)
        if not np.all(np.isfinite(w)) or not np.all(np.isfinite(z)):
            return None
        if not np.any(theta):
            # Lambda = 0: u = 0 and beta from weighted least squares in X alone
            if not vary_beta:
                return beta, [np.zeros((t.nlevels, t.k)) for t in self.terms]
            sw = np.sqrt(w)
            new_beta = np.linalg.lstsq(self.X * sw[:, None], z * sw, rcond=None)[0]
            return new_beta, [np.zeros((t.nlevels, t.k)) for t in self.terms]
        kept = self.lmm.last_factor()
        if kept is None:
            return None
        solver = FactorSolver(self.lmm, kept, with_x=vary_beta)
        lams = self.lmm.lambdas(theta)
        if not vary_beta:
            z = z - self.X @ beta
        wz = w * z
        rhs = solver.lambda_zt(wz, lams)
        if vary_beta:
            rhs[solver.q :] = self.X.T @ wz
        x0 = np.concatenate([u.reshape(-1) for u in us] + ([beta] if vary_beta else []))
        x = solver.solve(rhs, x0, w, lams, self.X)
        if x is None:
            return None
        off = solver.offsets
        new_us = [x[off[j] : off[j + 1]].reshape(t.nlevels, t.k) for j, t in enumerate(self.terms)]
        return (x[solver.q :].copy() if vary_beta else beta), new_us

    def _deviance_noise(self, eta: NDArray[Any]) -> float:
        """A bound on the rounding of the summed deviance residuals at eta.

        Each unit deviance is a difference of terms of the size of y and mu
        (``y log(y / mu) - (y - mu)`` for the Poisson), each rounded to a few eps of
        its size; with counts in the hundreds of thousands the sum's rounding
        exceeds PIRLS's relative tolerance near the mode.
        """
        mu = self.family.clamp(self.link.inverse(eta))
        return float(8.0 * np.finfo(float).eps * np.sum(self.pw * (np.abs(self.y) + mu)))

    def _reweight_or_retreat(
        self,
        eta: NDArray[Any],
        theta: NDArray[Any],
        us: list[NDArray[Any]],
        beta: NDArray[Any],
        obj: float,
        prev: tuple[list[NDArray[Any]], NDArray[Any]] | None,
        vary_beta: bool,
    ) -> tuple[LMMProblem, list[NDArray[Any]], NDArray[Any], NDArray[Any], float]:
        """Install the working weights at eta (see :meth:`_reweight`); where their
        factor is not positive definite, retreat towards the previous iterate (or,
        at the first one, restart from u = 0) and try again. Returns the solver
        and the (possibly retreated) iterate.

        A long Newton step can land where the working weights span 20 orders of
        magnitude (a Poisson mean of 1e16 beside one of 1e-8, with an observation-
        level random effect): the penalized deviance there may still be lower,
        but the Schur complement of the fixed effects then cancels to rounding
        and the factorization fails. The deviance is convex along the segment,
        so the midpoint is no worse than the previous iterate.
        """
        for _ in range(PIRLS_MAXHALF + 1):
            try:
                solver = self._reweight(eta, theta, None if vary_beta else beta)
                return solver, us, beta, eta, obj
            except PIRLSError:
                if prev is not None:
                    us = [(a + b) / 2 for a, b in zip(us, prev[0])]
                    beta = (beta + prev[1]) / 2
                elif any(np.any(u != 0.0) for u in us):
                    us = [np.zeros_like(u) for u in us]  # the warm start was the trouble
                else:
                    raise
            eta = self.eta(beta, theta, us)
            obj = self._pdev(eta, us)
        raise PIRLSError(
            "the penalized weighted least-squares factor is not positive definite (the "
            "working weights are too extreme); rescale the response or simplify the model"
        )

    # ----------------------------------------------------------- deviance

    def deviance(self, params: NDArray[Any], beta: NDArray[Any] | None = None) -> float:
        """Laplace (nagq = 1) or adaptive GHQ deviance after PIRLS at ``params``
        (theta, then the log dispersion for a family that has one).

        Without a dispersion this is MixedModels.jl's deviance (no normalizing
        terms of the distribution); with one it is the full -2 log L, because those
        terms depend on the dispersion being estimated.
        """
        theta = self._set_params(params)
        beta, us, pdev = self.pirls(theta, beta)
        if self.nagq <= 1:
            value = pdev + self.logdet
        else:
            value = self._agq_deviance(theta, beta, us)
        self.state.params = np.array(params, dtype=float)
        if self.family.has_dispersion:
            value -= 2.0 * self.saturated_loglik()
        return float(value)

    def hessian_vcov(self, params: NDArray[Any], beta: NDArray[Any]) -> NDArray[Any] | None:
        """Covariance of beta from the Hessian of the deviance over (beta, params).

        glmmTMB's standard errors (TMB's ``sdreport``) come from the Hessian of the
        Laplace objective over all its parameters; for a family with a dispersion
        they can differ from the PIRLS factor's R_X by several percent (the
        dispersion and beta are correlated in a finite sample: 5% for a
        coefficient of the negative binomial Owls model). Central second
        differences, d (d + 1) evaluations for d parameters, with steps of 1/200
        of a standard error: on that model the standard errors agree with those of
        the four-point rule (four evaluations per pair, converged to 1e-6 at such
        steps) to 4e-5 with steps of 1/100 and 3e-6 with 1/300; PIRLS by Newton's
        method leaves noise of about 1e-11 in the deviance. R_X gives the step for
        beta, a pilot difference the step for theta and the log dispersion. The
        problem is left at (params, beta). None if the Hessian is not positive
        definite.

        With more than FULL_HESSIAN_MAX parameters the fixed-effects block is that
        of the PIRLS factor at the observed information, which misses only the
        third derivatives of the log-determinant (standard errors within 0.25% of
        the full Hessian's on the models tried, where the factor alone is 5% off
        for the Owls model), and the differences cost O(d) evaluations per
        covariance or dispersion parameter instead of d^2 in all.
        """
        params = np.asarray(params, dtype=float)
        beta = np.asarray(beta, dtype=float)
        p = beta.shape[0]
        x0 = np.concatenate((beta, params))
        d = x0.shape[0]
        f0 = self.deviance(params, beta)
        u0 = [u.copy() for u in self.state.u]
        # the fixed-effects block from the factor when it holds the observed
        # information (its Hessian up to the log-determinant's third derivatives)
        xx_information = None
        if d > FULL_HESSIAN_MAX and self._newton and self._re is self.lmm:
            xx_information = np.linalg.inv(self.lmm.rxx_inverse())

        def f(dx: NDArray[Any]) -> float:
            self.set_start(u=u0)  # the same warm start for every point
            x = x0 + dx
            return self.deviance(x[p:], x[:p])

        def unit(i: int, step: float) -> NDArray[Any]:
            e = np.zeros(d)
            e[i] = step
            return e

        try:
            curv = np.empty(d)
            curv[:p] = 2.0 / np.diag(self.lmm.rxx_inverse())  # -2 log L: 2 / se^2
            for i in range(p, d):
                h0 = 1e-2 * max(abs(x0[i]), 1.0)
                curv[i] = (f(unit(i, h0)) - 2.0 * f0 + f(unit(i, -h0))) / h0**2
            h = 0.005 * np.sqrt(2.0 / np.maximum(curv, 1e-12))
            fp = np.array([f(unit(i, h[i])) for i in range(d)])
            fm = np.array([f(unit(i, -h[i])) for i in range(d)])
            H = np.diag((fp - 2.0 * f0 + fm) / h**2)
            if xx_information is not None:
                H[:p, :p] = 2.0 * xx_information
            for i in range(0 if xx_information is None else p, d):
                for j in range(i):
                    # from f(x +- (e_i + e_j)) and the diagonal's points: O(h^2),
                    # two evaluations per pair instead of four
                    both = f(unit(i, h[i]) + unit(j, h[j])) + f(-unit(i, h[i]) - unit(j, h[j]))
                    H[i, j] = H[j, i] = (both - fp[i] - fm[i] - fp[j] - fm[j] + 2.0 * f0) / (
                        2.0 * h[i] * h[j]
                    )
            # the deviance is -2 log L: the information matrix is H / 2
            R = np.linalg.inv(np.linalg.cholesky(H / 2.0))
        except (np.linalg.LinAlgError, RuntimeError, FloatingPointError):
            return None
        finally:
            self.set_start(u=u0)
            self.deviance(params, beta)
        return np.asarray((R.T @ R)[:p, :p])

    def _agq_deviance(
        self, theta: NDArray[Any], beta: NDArray[Any], us: list[NDArray[Any]]
    ) -> float:
        term = self.terms[0]
        refs, nl = term.refs, term.nlevels
        u0 = us[0][:, 0]
        eta0 = self.state.eta
        lam = theta[0]
        # eta moves with u only through the single scalar term: eta(u) = eta0 + z lam (u - u0)
        zl = self.lmm.zs[0][:, 0] * lam
        devc0 = np.bincount(refs, self.devresid(eta0), minlength=nl) + u0**2
        sd = 1.0 / self._re.factor()[(0, 0)].diagonal()
        mult = np.zeros(nl)
        for z, w in zip(*self.gh):
            if z == 0.0:
                mult += w
                continue
            du = z * sd
            eta = eta0 + zl * du[refs]
            devc = np.bincount(refs, self.devresid(eta), minlength=nl) + (u0 + du) ** 2
            mult += np.exp((z**2 - devc + devc0) / 2.0) * w
        return float(devc0.sum() - 2.0 * (np.sum(np.log(mult)) + np.sum(np.log(sd))))

    def saturated_loglik(self) -> float:
        return float(np.sum(self.family.saturated_loglik(self.y, self.pw)))

    def conditional_loglik(self, eta: NDArray[Any]) -> float:
        mu = self.family.clamp(self.link.inverse(eta))
        return float(np.sum(self.family.loglik(self.y, mu, self.pw)))
