"""Random intercepts and slopes for sleep-deprived subjects (the sleepstudy data).

Fits ``reaction ~ 1 + days + (1 + days|subj)`` by maximum likelihood, prints the
MixedModels.jl summary, the per-subject effects, and predictions for a seen and an
unseen subject (the latter from the fixed effects alone).

Run: ``python examples/sleepstudy_random_slopes.py``
"""

import pandas as pd

from sklmixed import MixedLMRegressor, load_dataset

df = load_dataset("sleepstudy")
model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
print(model.summary())
print()
print("conditional modes (first five subjects):")
print(model.ranef_["subj"].head())
print()
new = pd.DataFrame({"subj": ["S308", "a new subject"], "days": [5, 5]})
for subj, pred in zip(new["subj"], model.predict(new)):
    print(f"predicted reaction on day 5 for {subj}: {pred:.1f} ms")
