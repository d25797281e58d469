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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sklmixed._core._families import Family, Link
from sklmixed._core._lmm import LMMProblem
from sklmixed._core._reterm import ReTerm

# PIRLS convergence: stop when the penalized deviance changes by less than this
# relative amount; step halving gives up after this many halvings.
PIRLS_RTOL = 1e-10
PIRLS_MAXITER = 200
PIRLS_MAXHALF = 20


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
        Prior weights (numbers of trials for the binomial family).
    nagq : int
        Number of adaptive Gauss-Hermite quadrature points (1: Laplace).
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
        xnames: list[str] | None = None,
    ) -> None:
        self.y = np.asarray(y, dtype=float)
        n = self.y.shape[0]
        self.pw = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
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
        self._beta: NDArray[Any] | None = None  # PIRLS's beta, kept as the next warm start
        self._eta = np.zeros(n)
        self.last_ok: tuple[NDArray[Any], NDArray[Any]] = (np.zeros(0), np.zeros(0))
        self.reset()
        if self.nagq > 1:
            self.gh = gauss_hermite_normal(self.nagq)

    def reset(self) -> None:
        """Forget the warm start (modes from the previous evaluation)."""
        self.u = [np.zeros((t.nlevels, t.k)) for t in self.terms]

    # ------------------------------------------------------------- pieces

    def eta(self, beta: NDArray[Any], theta: NDArray[Any], us: list[NDArray[Any]]) -> NDArray[Any]:
        eta = self.X @ beta
        for t, z, b in zip(self.terms, self.lmm.zs, self.lmm.b(us, theta)):
            eta = eta + np.einsum("nk,nk->n", z, b[t.refs])
        return np.asarray(eta)

    def devresid(self, eta: NDArray[Any]) -> NDArray[Any]:
        mu = self.family.clamp(self.link.inverse(eta))
        return self.pw * self.family.unit_deviance(self.y, mu)

    def _reweight(self, eta: NDArray[Any], theta: NDArray[Any]) -> None:
        """Install working weights and response at eta, and factor at theta."""
        mu = self.family.clamp(self.link.inverse(eta))
        dmu = self.link.mu_eta(eta)
        w = self.pw * dmu**2 / self.family.variance(mu)
        z = eta + (self.y - mu) / dmu
        self.lmm.set_weights(w, z)
        if not self.lmm.update(theta):
            raise PIRLSError("the penalized weighted least-squares factor is not positive definite")

    # --------------------------------------------------------------- PIRLS

    def pirls(
        self, theta: NDArray[Any], beta: NDArray[Any] | None = None
    ) -> tuple[NDArray[Any], list[NDArray[Any]], float]:
        """Conditional modes at theta (and beta from PIRLS when beta is None).

        Returns (beta, u list, penalized deviance). On return the factor of
        ``self.lmm`` holds the working weights at the returned modes.
        """
        theta = np.asarray(theta, dtype=float)
        vary_beta = beta is None
        us = [u.copy() for u in self.u]
        if beta is None:
            beta = self._beta if self._beta is not None else np.zeros(self.p)
        eta = self.eta(beta, theta, us)
        obj0 = self.devresid(eta).sum() + sum(float(np.sum(u**2)) for u in us)
        prev: tuple[list[NDArray[Any]], NDArray[Any]] | None = None
        for _ in range(PIRLS_MAXITER):
            us, beta, eta, obj0 = self._reweight_or_retreat(eta, theta, us, beta, obj0, prev)
            prev = (us, beta)
            new_beta = self.lmm.beta() if vary_beta else beta
            new_us = self.lmm.u(new_beta)
            eta_new = self.eta(new_beta, theta, new_us)
            obj = self.devresid(eta_new).sum() + sum(float(np.sum(u**2)) for u in new_us)
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
                obj = self.devresid(eta_new).sum() + sum(float(np.sum(u**2)) for u in new_us)
            if stalled:
                break
            converged = abs(obj0 - obj) <= PIRLS_RTOL * (abs(obj) + 1.0)
            us, beta, eta, obj0 = new_us, new_beta, eta_new, obj
            if converged:
                break
        else:
            raise PIRLSError(f"PIRLS did not converge in {PIRLS_MAXITER} iterations")
        # Factor at the final modes' weights: the Laplace log-determinant uses it.
        self._reweight(eta, theta)
        self.u = us
        self.last_ok = (theta.copy(), np.asarray(beta).copy())
        if vary_beta:
            self._beta = beta
        self._eta = eta
        return beta, us, float(obj0)

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
    ) -> tuple[list[NDArray[Any]], NDArray[Any], NDArray[Any], float]:
        """Install the working weights at eta; where their factor is not
        positive definite, retreat towards the previous iterate (or, at the first
        one, restart from u = 0) and try again.

        A long Newton step can land where the working weights span 20 orders of
        magnitude (a Poisson mean of 1e16 beside one of 1e-8, with an observation-
        level random effect): the penalized deviance there may still be lower,
        but the Schur complement of the fixed effects then cancels to rounding
        and the factorization fails. The deviance is convex along the segment,
        so the midpoint is no worse than the previous iterate.
        """
        for _ in range(PIRLS_MAXHALF + 1):
            try:
                self._reweight(eta, theta)
                return us, beta, eta, obj
            except PIRLSError:
                if prev is not None:
                    us = [(a + b) / 2 for a, b in zip(us, prev[0])]
                    beta = (beta + prev[1]) / 2
                elif any(np.any(u != 0.0) for u in us):
                    us = [np.zeros_like(u) for u in us]  # the warm start was the trouble
                else:
                    raise
            eta = self.eta(beta, theta, us)
            obj = self.devresid(eta).sum() + sum(float(np.sum(u**2)) for u in us)
        raise PIRLSError(
            "the penalized weighted least-squares factor is not positive definite (the "
            "working weights are too extreme); rescale the response or simplify the model"
        )

    def start_from_data(self) -> None:
        """Warm-start beta by one IRLS step from the family's starting means.

        PIRLS otherwise starts the GLM fit from beta = 0, whose first step jumps
        to the size of the response on the linear predictor's scale; for large
        counts (Poisson responses in the tens of thousands) that overflows the
        working weights. Starting from eta = g(mustart), as R's glm does, the
        first step is already close.
        """
        eta = self.link.link(self.family.mustart(self.y, self.pw))
        self._reweight(np.asarray(eta, dtype=float), np.zeros(self.ntheta))
        self._beta = self.lmm.beta()
        self.reset()

    # ----------------------------------------------------------- deviance

    def deviance(self, theta: NDArray[Any], beta: NDArray[Any] | None = None) -> float:
        """Laplace (nagq = 1) or adaptive GHQ deviance after PIRLS at theta."""
        beta, us, pdev = self.pirls(theta, beta)
        if self.nagq <= 1:
            return float(pdev + self.lmm.logdet_re())
        return self._agq_deviance(theta, beta, us)

    def _agq_deviance(
        self, theta: NDArray[Any], beta: NDArray[Any], us: list[NDArray[Any]]
    ) -> float:
        term = self.terms[0]
        refs, nl = term.refs, term.nlevels
        u0 = us[0][:, 0]
        eta0 = self._eta
        lam = theta[0]
        # eta moves with u only through the single scalar term: eta(u) = eta0 + z lam (u - u0)
        zl = self.lmm.zs[0][:, 0] * lam
        devc0 = np.bincount(refs, self.devresid(eta0), minlength=nl) + u0**2
        sd = 1.0 / self.lmm.L[(0, 0)]
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
