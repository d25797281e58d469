"""Families' log-likelihoods: Poisson for counts and for non-negative rates."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from sklmixed._core._families import PoissonFamily


def test_poisson_loglik_of_counts_is_the_poisson_pmf():
    y = np.array([0.0, 1.0, 2.0, 5.0, 17.0, 140.0])
    mu = np.array([0.3, 1.0, 2.5, 4.0, 20.0, 150.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0])
    ours = PoissonFamily().loglik(y, mu, wt)
    np.testing.assert_allclose(ours, wt * stats.poisson.logpmf(y, mu), rtol=1e-13)
    # the formula for counts, term by term (what it was before rates were allowed)
    expected = wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))
    np.testing.assert_array_equal(ours, expected)


def test_poisson_loglik_of_rates_extends_the_factorial_by_lgamma():
    y = np.array([0.25, 1.5, 2.75])
    mu = np.array([0.5, 1.0, 3.0])
    ours = PoissonFamily().loglik(y, mu, np.ones(3))
    np.testing.assert_allclose(ours, y * np.log(mu) - mu - special.gammaln(y + 1), rtol=1e-15)
    assert np.all(np.isfinite(ours))
    # continuous in y: between the neighbouring counts' values at the same mean
    grid = np.linspace(2.0, 3.0, 11)
    vals = PoissonFamily().loglik(grid, np.full(11, 2.5), np.ones(11))
    assert np.all(np.isfinite(vals)) and np.all(np.abs(np.diff(vals)) < 0.1)
