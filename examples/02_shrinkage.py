"""
# Shrinkage: conditional modes against within-subject fits

A subject's random effects are not its own least-squares line: they are pulled
towards the population, more so where the subject's data say less. The
shrinkage plot shows both for the sleepstudy model: each arrow starts at the
subject's own regression line (intercept and slope relative to the population's)
and ends at its conditional mode.
"""

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.plotting import plot_shrinkage

df = load_dataset("sleepstudy")
model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
axes = plot_shrinkage(model, df)

# %%
# Subjects whose own lines lie far from the others (steep or flat slopes) move
# the most. With ten observations for every subject the pull is mild here; with
# fewer observations per group, or a larger residual variance, it is stronger.
