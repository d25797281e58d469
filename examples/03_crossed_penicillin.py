"""
# Crossed random effects: penicillin

The diameter of the zone of inhibited growth in 144 assays: each of 6 penicillin
samples was tested on each of 24 plates. Plates and samples are *crossed* (every
sample on every plate), so the model has a random intercept for each:
`diameter ~ 1 + (1|plate) + (1|sample)`.
"""

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.plotting import plot_ranef

df = load_dataset("penicillin")
model = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(df)
print(model.summary())

# %%
# `varcorr().table` has the variance components as a DataFrame: the samples
# differ far more (variance 3.1) than the plates (0.71).

print(model.varcorr().table)

# %%
# The conditional modes of both factors, with 95% prediction intervals:

plot_ranef(model, "sample")
axes = plot_ranef(model, "plate")
