"""Offsets and the families with a dispersion, against lme4 and glmmTMB.

``tests/reference/lme4/make_families_reference.R`` fitted them (versions in the JSON)
and wrote the data and the estimates; R is not needed here. The models: lme4's
Poisson GLMM with ``offset(log(BroodSize))`` on glmmTMB's Owls data, glmmTMB's
``nbinom2`` on the same model, glmmTMB's Gamma with log and inverse links and with a
correlated random slope, and an inverse Gaussian (which glmmTMB does not have)
fitted by an independent Laplace approximation in R and by the exact marginal
likelihood (R's ``integrate``), the target of adaptive Gauss-Hermite quadrature.

Tolerances (those of the issue): log-likelihood no lower than the reference's
minus 1e-2, fixed effects to 2e-3 relative, standard errors to 2%, random-effect
standard deviations and the dispersion to 1%, correlations to 0.01, predictions
to 1e-3 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklmixed import MixedGLMRegressor

HERE = Path(__file__).resolve().parents[1] / "reference" / "lme4"
REF = json.loads((HERE / "families_reference.json").read_text())
MODELS = REF["models"]

# the exact-likelihood reference is matched by quadrature, the others by Laplace
NAGQ = {"invgauss_log_exact": 25}

_CACHE: dict = {}


def data(name: str) -> pd.DataFrame:
    return pd.read_csv(HERE / "data" / name)


def fitted(name: str) -> MixedGLMRegressor:
    if name not in _CACHE:
        ref = MODELS[name]
        model = MixedGLMRegressor(
            formula=ref["sklmixed_formula"],
            family=ref["family"],
            link=ref["link"],
            nagq=NAGQ.get(name, 1),
        )
        _CACHE[name] = model.fit(data(ref["data"]))
    return _CACHE[name]


def _sds(ref) -> np.ndarray:
    sd = ref["re_sd"]
    parts = sd.values() if isinstance(sd, dict) else [sd]
    return np.concatenate([np.atleast_1d(np.asarray(v, dtype=float)) for v in parts])


@pytest.mark.parametrize("name", list(MODELS))
def test_loglik_no_lower(name):
    ref, model = MODELS[name], fitted(name)
    assert model.converged_
    assert model.loglik_ >= ref["loglik"] - 1e-2
    # and not higher by more than the optimizers' disagreement either: the same
    # approximation of the same likelihood
    assert model.loglik_ <= ref["loglik"] + 1e-2


@pytest.mark.parametrize("name", list(MODELS))
def test_fixed_effects_and_standard_errors(name):
    ref, model = MODELS[name], fitted(name)
    assert len(model.coef_) == len(ref["fixef"])
    np.testing.assert_allclose(model.coef_, ref["fixef"], rtol=2e-3)
    np.testing.assert_allclose(model.stderror_, ref["stderror"], rtol=0.02)


@pytest.mark.parametrize("name", list(MODELS))
def test_random_effects_and_dispersion(name):
    ref, model = MODELS[name], fitted(name)
    sds = np.concatenate([vc.sd for vc in model.result_.varcomps])
    np.testing.assert_allclose(sds, _sds(ref), rtol=0.01)
    if ref.get("re_corr"):
        corr = np.asarray(next(iter(ref["re_corr"].values())), dtype=float)
        np.testing.assert_allclose(model.result_.varcomps[0].corr, corr, atol=0.01)
    if ref.get("dispersion") is None:
        assert model.dispersion_ is None
    else:
        assert model.dispersion_ == pytest.approx(ref["dispersion"], rel=0.01)
    assert model.sigma_ is None


@pytest.mark.parametrize("name", ["owls_poisson_offset", "owls_nbinom2"])
def test_predictions_use_the_offsets_of_the_new_rows(name):
    ref, model = MODELS[name], fitted(name)
    new = data(ref["new_data"])
    assert "Unseen" in set(new["Nest"])  # a level not in the fit: random effect 0
    np.testing.assert_allclose(model.predict(new), ref["predictions_response"], rtol=1e-3)


def test_offset_as_a_fit_parameter_equals_the_formula_offset():
    ref = MODELS["owls_nbinom2"]
    owls = data(ref["data"])
    formula = ref["sklmixed_formula"].replace(" + offset(log(BroodSize))", "")
    assert "offset" not in formula
    model = MixedGLMRegressor(formula=formula, family="negative_binomial")
    model.fit(owls, offset=np.log(owls["BroodSize"]))
    np.testing.assert_allclose(model.coef_, fitted("owls_nbinom2").coef_, rtol=1e-8)
    new = data(ref["new_data"])
    np.testing.assert_allclose(
        model.predict(new, offset=np.log(new["BroodSize"])),
        ref["predictions_response"],
        rtol=1e-3,
    )


def test_poisson_standard_errors_match_lme4s_hessian_as_well():
    # lme4's default GLMM standard errors come from a finite-difference Hessian;
    # sklmixed reports the PIRLS factor's (as MixedModels.jl), within 0.2% here
    ref, model = MODELS["owls_poisson_offset"], fitted("owls_poisson_offset")
    np.testing.assert_allclose(model.stderror_, ref["stderror_hessian"], rtol=2e-3)


def test_summary_names_family_link_and_dispersion():
    text = str(fitted("owls_nbinom2").summary())
    assert "offset(log(BroodSize))" in text.splitlines()[1]
    assert "Distribution: NegativeBinomial{Float64}" in text
    assert "Link: LogLink()" in text
    line = next(ln for ln in text.splitlines() if ln.startswith(" Shape of the negative"))
    shape = float(line.rsplit(":", 1)[1])
    assert shape == pytest.approx(MODELS["owls_nbinom2"]["dispersion"], rel=1e-3)
    text = str(fitted("gamma_inverse").summary())
    assert "Distribution: Gamma{Float64}" in text and "Link: InverseLink()" in text
    assert " Dispersion of the Gamma family (variance phi mu^2): 0.274" in text
    html = fitted("invgauss_log").summary()._repr_html_()
    assert "Dispersion of the inverse Gaussian family" in html


def test_dispersion_counts_in_the_degrees_of_freedom():
    # glmmTMB's df: fixed effects + covariance parameters + the dispersion
    model = fitted("gamma_slope")
    assert model.dof_ == 2 + 3 + 1
    assert model.aic_ == pytest.approx(-2 * model.loglik_ + 2 * model.dof_)
    assert model.objective_ == pytest.approx(-2 * model.loglik_)
