"""New responses from a fitted model (lme4's ``simulate``, MixedModels.jl's ``simulate!``).

Each simulated response draws new random effects from the fitted covariance,
b = Lambda(theta) u with u ~ N(0, s^2 I) (s = sigma for an LMM, 1 for a GLMM), and
new noise: for an LMM y = X beta + Z b + e with e ~ N(0, sigma^2 / w) for prior
weights w; for a GLMM y drawn from the family at mu = g^{-1}(X beta + Z b):
Bernoulli, binomial with the trials given as weights (the response is the
proportion of successes, as in fit), Poisson, and at the fitted shape or
dispersion the negative binomial (NB2: variance mu + mu^2 / shape, a Poisson of a
Gamma mean), the Gamma (variance phi mu^2: shape 1/phi, scale phi mu) and the
inverse Gaussian (variance phi mu^3: numpy's Wald with scale 1/phi). The
offsets the model was fitted with (formula terms and the ``offset`` parameter)
are part of the mean. Prior weights of these families are case weights: a row
is one draw whatever its weight, as for the Poisson.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import DataError, InferenceError, RowsNotAvailableError

_FAMILIES = (
    "bernoulli",
    "binomial",
    "poisson",
    "negative_binomial",
    "gamma",
    "inverse_gaussian",
)


def seed_sequence(random_state) -> np.random.SeedSequence:
    """A SeedSequence from None, an int, a SeedSequence, a Generator or a legacy
    RandomState (the last two are advanced by one draw of entropy, as
    scikit-learn consumes a RandomState)."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise InferenceError(f"random_state must be non-negative; got {random_state}")
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(random_state.integers(0, 2**63, size=4).tolist())
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(random_state.randint(0, 2**31, size=4).tolist())
    raise InferenceError(
        "random_state must be None, an int, a numpy Generator, SeedSequence or RandomState; "
        f"got {random_state!r}"
    )


def as_generator(random_state) -> np.random.Generator:
    """A Generator: the one given, or one seeded by :func:`seed_sequence` (an int
    seed gives numpy's ``default_rng(seed)`` stream)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(seed_sequence(random_state))


def check_count(value, name: str) -> int:
    """A positive integer (n_sims, n_boot), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InferenceError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


class Simulator:
    """Everything a draw of new responses needs, taken once from a fitted model.

    Picklable (it travels to the workers of a parallel bootstrap) and independent
    of the model object: the fixed-effects mean (offsets included), each term's
    (refs, z, lambda), sigma, the prior weights and the family (with its fitted
    shape or dispersion).
    """

    def __init__(self, model):
        check_is_fitted(model, "result_")
        result = model.result_
        coef = np.where(np.isnan(result.stderror), 0.0, result.coef)  # dropped columns: 0
        self.mean_fixed = model.design_.X @ coef
        self.n = self.mean_fixed.shape[0]
        problem = model.problem_
        self.family = result.family  # None for an LMM
        # the offsets of the fit: the LMM's (None without), the GLMM's (zeros without)
        offset = problem.offset
        if offset is not None:
            self.mean_fixed = self.mean_fixed + offset
        if self.family is None:
            lmm = problem
            self.sigma = float(result.sigma)
            self.weights = None if lmm.weights is None else np.asarray(lmm.weights, float)
        else:
            if self.family not in _FAMILIES:
                raise InferenceError(
                    f"simulating responses of the {self.family!r} family is not supported; "
                    f"supported families: {list(_FAMILIES)}"
                )
            lmm = problem.lmm
            self.sigma = 1.0  # GLMM lambdas are on the scale of the linear predictor
            self.weights = np.asarray(problem.pw, dtype=float)
            self.link = model.link_
            # the family at the fitted shape or dispersion (None for the others)
            self.param = float(result.dispersion) if result.dispersion is not None else None
            # the family's clamp of mu into its support (an identity or inverse link
            # with a drawn random effect can leave it)
            self.clamp = model.family_.clamp
            if self.family == "binomial":
                trials = self.weights
                if np.any(trials != np.round(trials)):
                    bad = np.unique(trials[trials != np.round(trials)])[:5].tolist()
                    raise DataError(
                        "binomial responses are simulated as counts of successes out of the "
                        f"numbers of trials given as sample_weight, which must be whole numbers; "
                        f"found {bad}"
                    )
        self.terms = [
            (t.refs, t.z, lam, t.nlevels)
            for t, lam in zip(lmm.terms, lmm.lambdas(np.asarray(result.theta)))
        ]

    def draw(self, rng: np.random.Generator, n_sims: int) -> np.ndarray:
        """``n_sims`` new responses, shape (n_sims, n): the random effects of each
        term in turn, then the noise (or the family's draw)."""
        eta = np.tile(self.mean_fixed, (n_sims, 1))
        for refs, z, lam, nlevels in self.terms:
            u = rng.standard_normal((n_sims, nlevels, lam.shape[0]))
            b = (self.sigma * u) @ lam.T  # (n_sims, levels, k)
            eta += np.einsum("nk,snk->sn", z, b[:, refs, :])
        if self.family is None:
            e = rng.standard_normal((n_sims, self.n))
            if self.weights is None:
                return eta + self.sigma * e
            # sd sigma / sqrt(w); a zero weight removes the row from the fit, so its
            # value does not matter: it gets the mean, not an infinite variance
            scale = np.zeros(self.n)
            pos = self.weights > 0
            scale[pos] = self.sigma / np.sqrt(self.weights[pos])
            return eta + scale * e
        mu = self.link.inverse(eta)
        if self.family == "bernoulli":
            return (rng.random(mu.shape) < mu).astype(float)
        if self.family == "poisson":
            return rng.poisson(mu).astype(float)
        if self.family == "negative_binomial":
            # numpy's (n, p) with n = shape, p = shape / (shape + mu): mean mu,
            # variance mu + mu^2 / shape
            k, mu = self.param, self.clamp(mu)
            return rng.negative_binomial(k, k / (k + mu)).astype(float)
        if self.family == "gamma":
            phi, mu = self.param, self.clamp(mu)
            return rng.gamma(1.0 / phi, phi * mu)
        if self.family == "inverse_gaussian":
            # numpy's Wald(mean, scale) has variance mean^3 / scale
            mu = self.clamp(mu)
            return rng.wald(mu, np.full_like(mu, 1.0 / self.param))
        # binomial: successes out of the trials, reported as a proportion
        trials = self.weights.astype(np.int64)
        counts = rng.binomial(trials, np.clip(mu, 0.0, 1.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(trials > 0, counts / np.maximum(trials, 1), mu)


def simulate(model, n_sims: int = 1, random_state=None) -> np.ndarray:
    """New responses from the fitted model; see the estimators' ``simulate``."""
    n_sims = check_count(n_sims, "n_sims")
    if model.design_.X.shape[0] == 0 and model.nobs_ > 0:
        # a model fitted out of core keeps no rows to simulate responses for
        raise RowsNotAvailableError(
            "simulate draws a response for every training row, and this model was "
            "fitted from the data's cross-products only (out of core); fit it on "
            "data in memory"
        )
    rng = as_generator(random_state)
    y = Simulator(model).draw(rng, n_sims)
    classes = getattr(model, "classes_", None)
    if classes is not None:  # a classifier: labels, as fit takes them
        return classes[y.astype(np.int64)]
    return y
