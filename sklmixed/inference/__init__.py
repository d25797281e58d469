"""Inference for fitted mixed models: profile intervals, denominator degrees of
freedom for t tests, and the uncertainty of predictions."""

from sklmixed.inference._profile import profile_confint

__all__ = ["profile_confint"]
