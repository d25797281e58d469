"""Inference on fitted mixed models: likelihood-ratio tests, confidence intervals
(Wald, profile, bootstrap), simulation and the parametric bootstrap, denominator
degrees of freedom for t tests, and the uncertainty of predictions.

The estimators' ``confint``, ``simulate``, ``bootstrap``, ``coeftable(ddf=...)``,
``predict(return_std=True)`` and ``predict_interval`` methods delegate here;
:func:`lrtest` compares several fitted models.
"""

from sklmixed.inference._bootstrap import BootstrapResult, bootstrap
from sklmixed.inference._confint import confint
from sklmixed.inference._ddf import ddf_coeftable
from sklmixed.inference._lrtest import lrtest
from sklmixed.inference._params import parameter_names
from sklmixed.inference._predict import conditional_std, marginal_mean, predict_interval
from sklmixed.inference._profile import profile_confint
from sklmixed.inference._simulate import simulate

__all__ = [
    "BootstrapResult",
    "bootstrap",
    "conditional_std",
    "confint",
    "ddf_coeftable",
    "lrtest",
    "marginal_mean",
    "parameter_names",
    "predict_interval",
    "profile_confint",
    "simulate",
]
