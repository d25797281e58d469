"""sklmixed: linear and generalized linear mixed-effects models as scikit-learn estimators.

The statistics of MixedModels.jl and lme4 (the same models, estimates and summary)
with the ergonomics of scikit-learn.
"""

from sklmixed.datasets import list_datasets, load_dataset
from sklmixed.estimators import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor
from sklmixed.estimators._sources import DatasetSource
from sklmixed.inference import BootstrapResult, lrtest
from sklmixed.scorers import (
    conditional_deviance,
    conditional_loglik,
    marginal_deviance,
    marginal_loglik,
)

__version__ = "0.1.0"
__all__ = [
    "BootstrapResult",
    "DatasetSource",
    "MixedGLMClassifier",
    "MixedGLMRegressor",
    "MixedLMRegressor",
    "__version__",
    "conditional_deviance",
    "conditional_loglik",
    "list_datasets",
    "load_dataset",
    "marginal_deviance",
    "marginal_loglik",
    "lrtest",
]
