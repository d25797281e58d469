"""The public scikit-learn estimators."""

from sklmixed.estimators._glmm import MixedGLMClassifier, MixedGLMRegressor
from sklmixed.estimators._lmm import MixedLMRegressor

__all__ = ["MixedGLMClassifier", "MixedGLMRegressor", "MixedLMRegressor"]
