"""
# Predicting new groups

A fitted mixed model predicts a known group from the fixed effects plus that
group's conditional modes, and a group it has never seen from the fixed effects
alone (its random effects have mean zero), as lme4's `allow.new.levels = TRUE`
and MixedModels.jl's `new_re_levels = :population` do.

Here the sleepstudy model is fit without three subjects, which then play the new
subjects.
"""

import matplotlib.pyplot as plt
import numpy as np

from sklmixed import MixedLMRegressor, load_dataset
from sklmixed.exceptions import DataError

df = load_dataset("sleepstudy")
held_out = ["S308", "S309", "S310"]
train, new = df[~df.subj.isin(held_out)], df[df.subj.isin(held_out)]
model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(train)

# %%
# For the new subjects every prediction is the population line, `coef_[0] +
# coef_[1] * days`:

pred = model.predict(new)
population = model.coef_[0] + model.coef_[1] * new["days"].to_numpy()
print("new subjects get the population line:", np.allclose(pred, population))

# %%
# How much knowing the subject helps: the error of the population line against
# that of the subject's own effects, on the training subjects, and on the new ones.


def rmse(y, p):
    return float(np.sqrt(np.mean((np.asarray(y) - p) ** 2)))


print(f"known subjects, with their effects:  {rmse(train.reaction, model.predict(train)):5.1f} ms")
train_pop = model.coef_[0] + model.coef_[1] * train["days"].to_numpy()
print(f"known subjects, population line:     {rmse(train.reaction, train_pop):5.1f} ms")
print(f"new subjects (population line):      {rmse(new.reaction, pred):5.1f} ms")

# %%
# With `new_levels="error"` an unseen level is an error that names it, for
# applications where a silent population prediction would be wrong:

strict = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)", new_levels="error").fit(
    train
)
try:
    strict.predict(new)
except DataError as exc:
    print("DataError:", exc)

# %%
# A known subject and a new one: the data, the subject's own predicted line and
# the population line.

fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
for ax, subj in zip(axes, ["S337", "S308"]):
    rows = df[df.subj == subj]
    ax.plot(rows.days, rows.reaction, "o", ms=4, label="data")
    ax.plot(rows.days, model.predict(rows), label="prediction")
    ax.plot(rows.days, model.coef_[0] + model.coef_[1] * rows.days, "--", label="population")
    ax.set_title(f"{subj} ({'new' if subj in held_out else 'seen in fit'})")
    ax.set_xlabel("days")
axes[0].set_ylabel("reaction (ms)")
axes[0].legend()
fig.tight_layout()
