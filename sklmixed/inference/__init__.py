"""Inference on fitted mixed models: likelihood-ratio tests, confidence intervals,
simulation and the parametric bootstrap.

The estimators' ``confint``, ``simulate`` and ``bootstrap`` methods delegate here;
:func:`lrtest` compares several fitted models.
"""

from sklmixed.inference._bootstrap import BootstrapResult, bootstrap
from sklmixed.inference._confint import confint
from sklmixed.inference._lrtest import lrtest
from sklmixed.inference._params import parameter_names
from sklmixed.inference._simulate import simulate

__all__ = ["BootstrapResult", "bootstrap", "confint", "lrtest", "parameter_names", "simulate"]
