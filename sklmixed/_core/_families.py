"""Distribution families and link functions of generalized linear mixed models.

Each link gives eta = g(mu), mu = g^{-1}(eta) and d mu / d eta; each family gives
the variance function, the unit deviance and the log-likelihood of one response.
Formulas are the textbook GLM ones (McCullagh and Nelder, Generalized Linear
Models, 2nd ed., tables 2.1 and 2.2), written to stay finite in the tails.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special, stats

Array = NDArray[np.float64]

# mu is kept this far inside (0, 1) for the binary families so that the working
# weights mu_eta^2 / V(mu) stay positive and finite (as GLM.jl clamps mu).
_EPS = np.finfo(float).eps
# Positive families keep mu at least this (a mean of exactly 0 makes the deviance
# of a positive response infinite).
_TINY = np.finfo(float).tiny ** 0.25
# The dispersion / shape is searched within exp(+-_LOGPARAM_MAX) when started.
_LOGPARAM_MAX = 15.0


class Link:
    name = ""

    def link(self, mu: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, eta: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta(self, eta: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta2(self, eta: Array) -> Array:  # pragma: no cover - abstract
        """d^2 mu / d eta^2: the observed information of non-canonical links needs it."""
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

    def mu_eta2(self, eta: Array) -> Array:
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)


class IdentityLink(Link):
    name = "identity"

    def link(self, mu: Array) -> Array:
        return np.asarray(mu, dtype=float)

    def inverse(self, eta: Array) -> Array:
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta: Array) -> Array:
        return np.ones_like(eta)

    def mu_eta2(self, eta: Array) -> Array:
        return np.zeros_like(eta)


class SqrtLink(Link):
    name = "sqrt"

    def link(self, mu: Array) -> Array:
        return np.sqrt(mu)

    def inverse(self, eta: Array) -> Array:
        return eta**2

    def mu_eta(self, eta: Array) -> Array:
        return np.maximum(2.0 * eta, _EPS)

    def mu_eta2(self, eta: Array) -> Array:
        return np.full_like(eta, 2.0)


class InverseLink(Link):
    """eta = 1 / mu, the canonical link of the Gamma family (R's and GLM.jl's default)."""

    name = "inverse"

    def link(self, mu: Array) -> Array:
        return 1.0 / mu

    def inverse(self, eta: Array) -> Array:
        return 1.0 / eta

    def mu_eta(self, eta: Array) -> Array:
        # negative: mu falls as eta rises. Only its square enters the working
        # weights; its sign matters in the working response (y - mu) / mu_eta.
        return -1.0 / eta**2

    def mu_eta2(self, eta: Array) -> Array:
        return 2.0 / eta**3


LINKS = {
    cls.name: cls
    for cls in (
        LogitLink,
        ProbitLink,
        CloglogLink,
        CauchitLink,
        LogLink,
        IdentityLink,
        SqrtLink,
        InverseLink,
    )
}


class Family:
    """A response distribution without a dispersion parameter."""

    name = ""
    default_link = ""
    links: tuple[str, ...] = ()
    has_dispersion = False
    # Whether the Laplace approximation takes its log-determinant from the observed
    # information (the exact Hessian of the conditional log-likelihood, as glmmTMB,
    # through TMB, does) instead of the expected (Fisher) information of the PIRLS
    # weights (lme4, MixedModels.jl). The two agree for canonical links. The
    # families of lme4 and MixedModels.jl keep the expected information so that
    # their fits are those peers' fits; the dispersion families follow glmmTMB, the
    # peer that estimates their dispersion by maximum likelihood.
    observed_information = False

    @property
    def scale(self) -> float:
        """phi in Var(y) = phi V(mu): divides the deviance and the working weights."""
        return 1.0

    def variance(self, mu: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def variance_deriv(self, mu: Array) -> Array:  # pragma: no cover - abstract
        """V'(mu), for the observed information."""
        raise NotImplementedError

    def starting_mu(self, y: Array) -> Array | None:
        """Where the first GLM iteration starts (None: from beta = 0)."""
        return None

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
        # y may be a non-negative rate as well as a count (scikit-learn's
        # PoissonRegressor and glum accept both): lgamma(y + 1) is log y! for counts
        # and its continuous extension in between.
        return np.asarray(wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1)))


class DispersionFamily(Family):
    """A family with one positive parameter beyond the mean, estimated by maximum
    likelihood of the Laplace approximation (as glmmTMB). Instances are immutable:
    :meth:`with_param` returns the family at another value of the parameter.

    Prior weights are case weights (frequency weights: the log-likelihood of an
    observation is multiplied by its weight), as for the other families here and in
    glmmTMB, not R ``glm``'s precision weights.
    """

    has_dispersion = True
    observed_information = True
    param_name = ""
    # the parameter where the search starts before the first GLM fit (glmmTMB's
    # starting log-dispersion is 0)
    default_param = 1.0

    def __init__(self, param: float | None = None) -> None:
        value = self.default_param if param is None else float(param)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"the {self.param_name} of the {self.name} family must be positive")
        self.param = value

    def with_param(self, value: float) -> DispersionFamily:
        return type(self)(value)

    def clamp(self, mu: Array) -> Array:
        return np.maximum(mu, _TINY)

    def estimate_param(self, y: Array, mu: Array, wt: Array) -> float:
        """Maximum-likelihood value of the parameter for fixed means mu (a starting
        value for the joint optimization), by a bounded 1-D search on its log."""

        def nll(t: float) -> float:
            return -float(np.sum(self.with_param(float(np.exp(t))).loglik(y, mu, wt)))

        res = optimize.minimize_scalar(
            nll, bounds=(-_LOGPARAM_MAX, _LOGPARAM_MAX), method="bounded"
        )
        return float(np.exp(res.x))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param_name}={self.param!r})"


class NegativeBinomialFamily(DispersionFamily):
    """NB2: Var(y) = mu + mu^2 / shape (glmmTMB's ``nbinom2``, R's MASS ``theta``)."""

    name = "negative_binomial"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    param_name = "shape"

    def variance(self, mu: Array) -> Array:
        return mu + mu**2 / self.param

    def variance_deriv(self, mu: Array) -> Array:
        return 1.0 + 2.0 * mu / self.param

    def starting_mu(self, y: Array) -> Array | None:
        return y + 0.1  # as R's poisson()$initialize: away from log(0)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        k = self.param
        # 2 [y log(y / mu) - (y + k) log((y + k) / (mu + k))], the log by log1p
        return np.asarray(
            2.0 * (special.xlogy(y, y / mu) - (y + k) * np.log1p((y - mu) / (mu + k)))
        )

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        k = self.param
        return np.asarray(
            wt
            * (
                special.gammaln(y + k)
                - special.gammaln(k)
                - special.gammaln(y + 1.0)
                - k * np.log1p(mu / k)
                + special.xlogy(y, mu / (mu + k))
            )
        )


class _PhiFamily(DispersionFamily):
    """Families whose parameter is the dispersion phi itself, Var(y) = phi V(mu)
    (Gamma, inverse Gaussian), with the log, inverse and identity links."""

    links = ("log", "inverse", "identity")
    param_name = "dispersion"

    @property
    def scale(self) -> float:
        return self.param


class GammaFamily(_PhiFamily):
    """Var(y) = dispersion * mu^2; the dispersion is 1 / shape, the squared
    coefficient of variation (glmmTMB's ``sigma(m)^2``)."""

    name = "gamma"
    default_link = "log"

    def variance(self, mu: Array) -> Array:
        return mu**2

    def variance_deriv(self, mu: Array) -> Array:
        return 2.0 * mu

    def starting_mu(self, y: Array) -> Array | None:
        return y

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        r = y / mu
        return np.asarray(2.0 * ((r - 1.0) - np.log(r)))

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        a = 1.0 / self.param  # shape
        r = y / mu
        return np.asarray(wt * (a * np.log(a * r) - a * r - np.log(y) - special.gammaln(a)))


class InverseGaussianFamily(_PhiFamily):
    """Var(y) = dispersion * mu^3 (the dispersion is 1 / lambda of the
    Wald / inverse Gaussian density)."""

    name = "inverse_gaussian"
    default_link = "log"

    def variance(self, mu: Array) -> Array:
        return mu**3

    def variance_deriv(self, mu: Array) -> Array:
        return 3.0 * mu**2

    def starting_mu(self, y: Array) -> Array | None:
        return y

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return np.asarray((y - mu) ** 2 / (y * mu**2))

    def loglik(self, y: Array, mu: Array, wt: Array) -> Array:
        phi = self.param
        return np.asarray(
            wt * -0.5 * (np.log(2.0 * np.pi * phi * y**3) + (y - mu) ** 2 / (phi * y * mu**2))
        )


FAMILIES = {
    cls.name: cls
    for cls in (
        BernoulliFamily,
        BinomialFamily,
        PoissonFamily,
        NegativeBinomialFamily,
        GammaFamily,
        InverseGaussianFamily,
    )
}


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
