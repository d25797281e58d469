"""
# Crossed random effects at scale: InstEval

73,421 ratings of 1,128 instructors (`d`) by 2,972 students (`s`) at ETH Zurich.
Every student rates several instructors, so the two grouping factors are crossed.
The fixed effects are the instructor's department, whether the course was a
service course, and their interaction.

This page fits **a random subsample of 20,000 ratings** so that the documentation
build stays short on a busy machine; remove the `.sample(...)` to fit all of them
(the model of MixedModels.jl's documentation, about a second and a half on one
core).
"""

from sklmixed import MixedLMRegressor, load_dataset

df = load_dataset("insteval").sample(20_000, random_state=0)
model = MixedLMRegressor(formula="y ~ 1 + service*dept + (1|s) + (1|d)").fit(df)
print(model.summary())

# %%
# How much of the variance of a rating lies between instructors, and which
# instructors are rated highest once students' leniency is accounted for:

vc = model.varcorr().table
share = vc.loc[vc.group == "d", "variance"].item() / vc["variance"].sum()
print(f"share of the variance between instructors: {share:.3f}")
print(model.ranef_["d"].sort_values("(Intercept)").tail(5))
