"""Distribution families and link functions of generalized linear mixed models.

Each link gives eta = g(mu), mu = g^{-1}(eta) and d mu / d eta; each family gives
the variance function, the unit deviance and the log-likelihood of one response.
Formulas are the textbook GLM ones (McCullagh and Nelder, Generalized Linear
Models, 2nd ed., tables 2.1 and 2.2), written to stay finite in the tails.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

Array = NDArray[np.float64]

# mu is kept this far inside (0, 1) for the binary families so that the working
# weights mu_eta^2 / V(mu) stay positive and finite (as GLM.jl clamps mu).
_EPS = np.finfo(float).eps


class Link:
    name = ""

    def link(self, mu: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, eta: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta(self, eta: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError


class LogitLink(Link):
    name = "logit"

    def link(self, mu: Array) -> Array:
        return np.asarray(special.logit(mu))

    def inverse(self, eta: Array) -> Array:
        return np.asarray(special.expit(eta))

    def mu_eta(self, eta: Array) -> Array:
        e = np.exp(-np.abs(eta))
        return np.maximum(e / (1.0 + e) ** 2, _EPS)


class ProbitLink(Link):
    name = "probit"

    def link(self, mu: Array) -> Array:
        return np.asarray(special.ndtri(mu))

    def inverse(self, eta: Array) -> Array:
        return np.asarray(special.ndtr(eta))

    def mu_eta(self, eta: Array) -> Array:
        return np.asarray(np.maximum(stats.norm.pdf(eta), _EPS))


class CloglogLink(Link):
    name = "cloglog"

    def link(self, mu: Array) -> Array:
        return np.log(-np.log1p(-mu))

    def inverse(self, eta: Array) -> Array:
        return -np.expm1(-np.exp(np.minimum(eta, 700.0)))

    def mu_eta(self, eta: Array) -> Array:
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


class CauchitLink(Link):
    name = "cauchit"

    def link(self, mu: Array) -> Array:
        return np.tan(np.pi * (mu - 0.5))

    def inverse(self, eta: Array) -> Array:
        return 0.5 + np.arctan(eta) / np.pi

    def mu_eta(self, eta: Array) -> Array:
        return np.maximum(1.0 / (np.pi * (1.0 + eta**2)), _EPS)


class LogLink(Link):
    name = "log"

    def link(self, mu: Array) -> Array:
        return np.log(mu)

    def inverse(self, eta: Array) -> Array:
        return np.exp(np.minimum(eta, 700.0))

    def mu_eta(self, eta: Array) -> Array:
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)


class IdentityLink(Link):
    name = "identity"

    def link(self, mu: Array) -> Array:
        return np.asarray(mu, dtype=float)

    def inverse(self, eta: Array) -> Array:
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta: Array) -> Array:
        return np.ones_like(eta)


class SqrtLink(Link):
    name = "sqrt"

    def link(self, mu: Array) -> Array:
        return np.sqrt(mu)

    def inverse(self, eta: Array) -> Array:
        return eta**2

    def mu_eta(self, eta: Array) -> Array:
        return np.maximum(2.0 * eta, _EPS)


LINKS = {
    cls.name: cls
    for cls in (LogitLink, ProbitLink, CloglogLink, CauchitLink, LogLink, IdentityLink, SqrtLink)
}


class Family:
    """A response distribution without a dispersion parameter."""

    name = ""
    default_link = ""
    links: tuple[str, ...] = ()
    has_dispersion = False

    def variance(self, mu: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def unit_deviance(self, y: Array, mu: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def saturated_loglik(self, y: Array, wt: Array) -> Array:
        return self.loglik(y, y, wt)

    def clamp(self, mu: Array) -> Array:
        return mu

    def mustart(self, y: Array, wt: Array) -> Array:
        """Starting means for IRLS inside the family's support (R's
        ``family$initialize``): the data themselves, pulled off the boundary."""
        return y


class BernoulliFamily(Family):
    name = "bernoulli"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit")

    def variance(self, mu: Array) -> Array:
        return mu * (1.0 - mu)

    def clamp(self, mu: Array) -> Array:
        return np.clip(mu, _EPS, 1.0 - _EPS)

    def mustart(self, y: Array, wt: Array) -> Array:
        return np.asarray((wt * y + 0.5) / (wt + 1.0))

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        # y is 0/1: -2 log of the probability of the observed outcome
        return -2.0 * np.log(np.where(y > 0.5, mu, 1.0 - mu))

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        return np.asarray(wt * (special.xlogy(y, mu) + special.xlog1py(1.0 - y, -mu)))


class BinomialFamily(BernoulliFamily):
    """Response = proportion of successes, prior weight = number of trials."""

    name = "binomial"

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        # 2 [y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))], with 0 log 0 = 0
        return 2.0 * np.asarray(
            special.xlogy(y, y)
            - special.xlogy(y, mu)
            + special.xlogy(1.0 - y, 1.0 - y)
            - special.xlog1py(1.0 - y, -mu)
        )

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        k = np.rint(y * wt)
        return np.asarray(
            special.gammaln(wt + 1)
            - special.gammaln(k + 1)
            - special.gammaln(wt - k + 1)
            + (special.xlogy(k, mu) + special.xlog1py(wt - k, -mu))
        )


class PoissonFamily(Family):
    name = "poisson"
    default_link = "log"
    links = ("log", "identity", "sqrt")

    def variance(self, mu: Array) -> Array:
        return mu

    def clamp(self, mu: Array) -> Array:
        return np.maximum(mu, _EPS)

    def mustart(self, y: Array, wt: Array) -> Array:
        return np.asarray(y + 0.1)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return np.asarray(2.0 * (special.xlogy(y, y / mu) - (y - mu)))

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        return np.asarray(wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1)))


FAMILIES = {cls.name: cls for cls in (BernoulliFamily, BinomialFamily, PoissonFamily)}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]()


def get_link(family: Family, name: str | None) -> Link:
    name = family.default_link if name is None else name
    if name not in LINKS:
        raise ValueError(f"unknown link {name!r}; choose one of {sorted(LINKS)}")
    if name not in family.links:
        raise ValueError(
            f"link {name!r} is not available for family {family.name!r}; "
            f"choose one of {list(family.links)}"
        )
    return LINKS[name]()
