"""Crossed random effects: students rating instructors (the InstEval data).

73,421 ratings of 1,128 instructors (d) by 2,972 students (s). Every student rates
several instructors, so the two grouping factors are crossed: the factorization
keeps the students' block diagonal and the instructors' block dense. Set
SKLMIXED_EXAMPLE_ROWS to fit on a subsample (the test suite does).

Run: ``python examples/insteval_crossed.py``
"""

import os

from sklmixed import MixedLMRegressor, load_dataset

df = load_dataset("insteval")
rows = int(os.environ.get("SKLMIXED_EXAMPLE_ROWS", "0"))
if rows:
    df = df.sample(rows, random_state=0)
model = MixedLMRegressor(formula="y ~ 1 + service*dept + (1|s) + (1|d)").fit(df)
print(model.summary())
vc = model.varcorr().table
print(
    "\nshare of the variance between instructors:",
    round(vc.loc[vc.group == "d", "variance"].item() / vc["variance"].sum(), 3),
)
print("five instructors with the highest conditional modes:")
print(model.ranef_["d"].sort_values("(Intercept)").tail(5))
