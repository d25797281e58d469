"""Inference for fitted mixed models: profile intervals, denominator degrees of
freedom for t tests, and the uncertainty of predictions."""

from sklmixed.inference._ddf import ddf_coeftable
from sklmixed.inference._profile import profile_confint

__all__ = ["ddf_coeftable", "profile_confint"]
