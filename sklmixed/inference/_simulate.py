"""New responses from a fitted model (lme4's ``simulate``, MixedModels.jl's ``simulate!``).

Each simulated response draws new random effects from the fitted covariance,
b = Lambda(theta) u with u ~ N(0, s^2 I) (s = sigma for an LMM, 1 for a GLMM), and
new noise: for an LMM y = X beta + Z b + e with e ~ N(0, sigma^2 / w) for prior
weights w; for a GLMM y drawn from the family at mu = g^{-1}(X beta + Z b):
Bernoulli, binomial with the trials given as weights (the response is the
proportion of successes, as in fit) and Poisson.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import DataError, InferenceError

_FAMILIES = ("bernoulli", "binomial", "poisson")


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
    of the model object: the fixed-effects mean, each term's (refs, z, lambda),
    sigma, the prior weights and the family.
    """

    def __init__(self, model):
        check_is_fitted(model, "result_")
        result = model.result_
        coef = np.where(np.isnan(result.stderror), 0.0, result.coef)  # dropped columns: 0
        self.mean_fixed = model.design_.X @ coef
        self.n = self.mean_fixed.shape[0]
        problem = model.problem_
        self.family = result.family  # None for an LMM
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
        # binomial: successes out of the trials, reported as a proportion
        trials = self.weights.astype(np.int64)
        counts = rng.binomial(trials, np.clip(mu, 0.0, 1.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(trials > 0, counts / np.maximum(trials, 1), mu)


def simulate(model, n_sims: int = 1, random_state=None) -> np.ndarray:
    """New responses from the fitted model; see the estimators' ``simulate``."""
    n_sims = check_count(n_sims, "n_sims")
    rng = as_generator(random_state)
    y = Simulator(model).draw(rng, n_sims)
    classes = getattr(model, "classes_", None)
    if classes is not None:  # a classifier: labels, as fit takes them
        return classes[y.astype(np.int64)]
    return y
