"""Families and links: densities against scipy, deviances, derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sklmixed._core._families import (
    LINKS,
    GammaFamily,
    InverseGaussianFamily,
    NegativeBinomialFamily,
    get_family,
    get_link,
)

RNG = np.random.default_rng(12)
COUNTS = np.array([0.0, 1, 2, 5, 13, 40])
POSITIVE = np.array([0.05, 0.4, 1.0, 2.5, 7.0, 30.0])
MU = np.array([0.3, 1.5, 2.0, 4.0, 9.0, 25.0])
ONES = np.ones(6)


def test_negative_binomial_density_is_scipys():
    fam = NegativeBinomialFamily(1.7)
    expected = stats.nbinom.logpmf(COUNTS, 1.7, 1.7 / (1.7 + MU))
    np.testing.assert_allclose(fam.loglik(COUNTS, MU, ONES), expected, rtol=1e-12)
    np.testing.assert_allclose(fam.variance(MU), MU + MU**2 / 1.7)


def test_gamma_density_is_scipys():
    fam = GammaFamily(0.25)  # shape 4
    expected = stats.gamma.logpdf(POSITIVE, a=4.0, scale=MU / 4.0)
    np.testing.assert_allclose(fam.loglik(POSITIVE, MU, ONES), expected, rtol=1e-12)


def test_inverse_gaussian_density_is_scipys():
    phi = 0.3
    fam = InverseGaussianFamily(phi)
    # scipy's invgauss(m, scale=s) has mean m s and variance m^3 s^2
    expected = stats.invgauss.logpdf(POSITIVE, MU * phi, scale=1 / phi)
    np.testing.assert_allclose(fam.loglik(POSITIVE, MU, ONES), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "fam, y",
    [
        (NegativeBinomialFamily(0.8), COUNTS),
        (NegativeBinomialFamily(1e6), COUNTS),
        (GammaFamily(0.4), POSITIVE),
        (InverseGaussianFamily(0.2), POSITIVE),
    ],
)
def test_unit_deviance_is_twice_the_loglik_drop_from_saturated(fam, y):
    drop = 2 * (fam.saturated_loglik(y, ONES) - fam.loglik(y, MU, ONES))
    np.testing.assert_allclose(fam.unit_deviance(y, MU) / fam.scale, drop, rtol=1e-9, atol=1e-9)
    # case weights multiply the log-likelihood
    np.testing.assert_allclose(fam.loglik(y, MU, 3 * ONES), 3 * fam.loglik(y, MU, ONES))


@pytest.mark.parametrize("fam", [NegativeBinomialFamily(2.0), GammaFamily(1.0)])
def test_variance_derivative(fam):
    h = 1e-6
    numeric = (fam.variance(MU + h) - fam.variance(MU - h)) / (2 * h)
    np.testing.assert_allclose(fam.variance_deriv(MU), numeric, rtol=1e-6)
    fam = InverseGaussianFamily(1.0)
    numeric = (fam.variance(MU + h) - fam.variance(MU - h)) / (2 * h)
    np.testing.assert_allclose(fam.variance_deriv(MU), numeric, rtol=1e-6)


@pytest.mark.parametrize("name", ["log", "identity", "sqrt", "inverse"])
def test_link_derivatives(name):
    link = LINKS[name]()
    eta = np.array([0.3, 0.8, 1.5, 2.5])
    h = 1e-5
    np.testing.assert_allclose(link.inverse(link.link(link.inverse(eta))), link.inverse(eta))
    d1 = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), d1, rtol=1e-6, atol=1e-9)
    d2 = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta2(eta), d2, rtol=1e-6, atol=1e-9)


def test_estimate_param_recovers_the_simulated_shape():
    mu = RNG.gamma(2.0, 3.0, size=20000)
    y = RNG.negative_binomial(2.5, 2.5 / (2.5 + mu)).astype(float)
    shape = NegativeBinomialFamily().estimate_param(y, mu, np.ones_like(y))
    assert shape == pytest.approx(2.5, rel=0.05)
    y = RNG.gamma(5.0, mu / 5.0)
    assert GammaFamily().estimate_param(y, mu, np.ones_like(y)) == pytest.approx(0.2, rel=0.05)


def test_families_and_links_by_name():
    for name, link in [
        ("negative_binomial", "log"),
        ("gamma", "log"),
        ("inverse_gaussian", "log"),
    ]:
        fam = get_family(name)
        assert fam.has_dispersion and fam.default_link == link
        assert get_link(fam, None).name == link
    assert get_link(get_family("gamma"), "inverse").name == "inverse"
    with pytest.raises(ValueError, match="not available for family 'negative_binomial'"):
        get_link(get_family("negative_binomial"), "inverse")
    with pytest.raises(ValueError, match="must be positive"):
        GammaFamily(0.0)
    fam = NegativeBinomialFamily(2.0)
    assert fam.with_param(3.0).param == 3.0 and fam.param == 2.0  # immutable
