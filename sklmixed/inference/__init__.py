"""Inference for fitted mixed models: profile intervals, denominator degrees of
freedom for t tests, and the uncertainty of predictions."""

from sklmixed.inference._ddf import ddf_coeftable
from sklmixed.inference._predict import conditional_std, marginal_mean, predict_interval
from sklmixed.inference._profile import profile_confint

__all__ = [
    "conditional_std",
    "ddf_coeftable",
    "marginal_mean",
    "predict_interval",
    "profile_confint",
]
