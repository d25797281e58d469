"""
# Random intercepts and slopes

Reaction times of 18 subjects over ten days of sleep deprivation (the sleepstudy
data). Every subject gets an intercept and a slope of their own around the
population line, `reaction ~ 1 + days + (1 + days|subj)`, fit by maximum
likelihood as in MixedModels.jl's documentation.
"""

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.plotting import plot_ranef

df = load_dataset("sleepstudy")
model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
print(model.summary())

# %%
# The report is MixedModels.jl's, line for line. The subjects' intercepts vary with
# a standard deviation of about 24 ms around 251 ms, their slopes with about
# 5.7 ms/day around 10.5 ms/day, and the two are almost uncorrelated (+0.08).
#
# The conditional modes (the subjects' predicted deviations from the population
# line) are in `ranef_`, one DataFrame per grouping factor:

print(model.ranef_["subj"].head())

# %%
# A caterpillar plot shows them with 95% prediction intervals from `condvar()`,
# sorted by the intercept:

axes = plot_ranef(model)
