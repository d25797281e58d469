"""The FitResult's assembly: its shortcuts give the general arithmetic's bits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed._core._reterm import ReTerm
from sklmixed._results import _varcomps


def _general(term, theta, scale):
    """The variance components of one term by the general route (every term)."""
    lam = term.lambda_from_theta(theta) * scale
    cov = lam @ lam.T
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[np.outer(sd, sd) == 0] = np.nan
    np.fill_diagonal(corr, 1.0)
    return sd, corr, term.structural_zero


def _term(k, inds=None):
    z = np.ones((4, k))
    return ReTerm(
        "g", np.array([0, 0, 1, 1]), ("a", "b"), z, tuple(f"c{i}" for i in range(k)), inds
    )


VALUES = [0.0, -0.0, 1.0, -0.7, 1e-170, 3e-160, 1e160, 1e200, np.inf, np.nan, 0.3 * 1e-4]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("scale", [1.0, 2.5, 1e-3, 47.3])
def test_a_scalar_terms_components_are_the_general_routes(value, scale):
    term = _term(1)
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        (vc,) = _varcomps([term], [slice(0, 1)], np.array([value]), scale)
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        sd, corr, zero = _general(term, np.array([value]), scale)
    assert [str(w.message) for w in got_warnings] == [str(w.message) for w in want_warnings]
    for got, want in [(vc.sd, sd), (vc.corr, corr), (vc.structural_zero, zero)]:
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "k, inds", [(2, None), (3, None), (2, [[0, 0], [1, 1]]), (3, [[0, 0], [1, 1], [2, 1], [2, 2]])]
)
@pytest.mark.parametrize("seed", range(20))
def test_a_vector_terms_components_are_the_general_routes(k, inds, seed):
    term = _term(k, None if inds is None else np.array(inds))
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(term.ntheta) * 10.0 ** rng.integers(-170, 170)
    theta[rng.random(term.ntheta) < 0.3] = 0.0  # zero SDs: the masked correlations
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        (vc,) = _varcomps([term], [slice(0, term.ntheta)], theta, 1.7)
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        sd, corr, zero = _general(term, theta, 1.7)
    assert [str(w.message) for w in got_warnings] == [str(w.message) for w in want_warnings]
    for got, want in [(vc.sd, sd), (vc.corr, corr), (vc.structural_zero, zero)]:
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_a_full_rank_fits_coefficients_and_covariance_are_copies_in_c_order():
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        load_dataset("sleepstudy")
    )
    r = m.result_
    assert r.vcov.flags.c_contiguous and r.vcov.flags.owndata
    np.testing.assert_array_equal(r.stderror, np.sqrt(np.diag(r.vcov)))
