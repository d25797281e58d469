"""
# Profile and bootstrap intervals

Three kinds of confidence interval for the sleepstudy model
`reaction ~ 1 + days + (1 + days|subj)`, fit by maximum likelihood:

- **Wald**: estimate +- 1.96 standard errors; fixed effects only.
- **Profile**: where the signed square root of the deviance increase,
  zeta, crosses +-1.96 when one parameter is held fixed and all others are
  refit (lme4's default `confint`).
- **Parametric bootstrap**: the spread of the estimates over refits to
  responses simulated from the fitted model.

The profile of a fixed effect can be traced with nothing but ordinary fits:
holding `days` at a value b is fitting `reaction - b * days` without `days`.
The trace shows what the profile interval is; the bootstrap histograms show the
sampling distributions, and where the two kinds of interval disagree.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklmixed import MixedLMRegressor, load_dataset

df = load_dataset("sleepstudy")
model = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)

wald = model.confint()
profile = model.confint(method="profile")
boot = model.bootstrap(n_boot=300, random_state=1)
shortest = boot.confint()
with pd.option_context("display.width", 100):
    print(pd.concat({"Wald": wald, "profile": profile, "bootstrap": shortest}, axis=1).round(2))

# %%
# ## The profile of each fixed effect, by refitting
#
# With one coefficient held at b (its column moved into the response as a known
# part), the other parameters are refit; zeta is the signed square root of the
# deviance above the full fit's. Where zeta crosses -1.96 and +1.96 are the
# limits of the 95% profile interval.

rest = {"(Intercept)": "0 + days", "days": "1"}
column = {"(Intercept)": np.ones(len(df)), "days": df["days"].to_numpy(dtype=float)}
traces = {}
for j, name in enumerate(model.coef_names_):
    se = model.stderror_[j]
    grid = model.coef_[j] + se * np.linspace(-3, 3, 13)
    zeta = []
    for b in grid:
        held = df.assign(r=df["reaction"] - b * column[name])
        refit = MixedLMRegressor(formula=f"r ~ {rest[name]} + (1 + days|subj)").fit(held)
        rise = max(refit.objective_ - model.objective_, 0.0)
        zeta.append(np.sign(b - model.coef_[j]) * np.sqrt(rise))
    traces[name] = (grid, np.array(zeta))

# the crossings read off the traces (zeta increases along the grid) agree with
# confint(method="profile") to a small fraction of the interval's width
agree = []
for name, (grid, zeta) in traces.items():
    lo, hi = np.interp([-1.96, 1.96], zeta, grid)
    width = profile.loc[name, "upper"] - profile.loc[name, "lower"]
    agree.append(
        abs(lo - profile.loc[name, "lower"]) < 0.01 * width
        and abs(hi - profile.loc[name, "upper"]) < 0.01 * width
    )
print("zeta crosses +-1.96 at the profile limits:", all(agree))

fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
for ax, (name, (grid, zeta)) in zip(axes, traces.items()):
    j = model.coef_names_.index(name)
    ax.plot(grid, zeta, "o-", ms=3, label="profile zeta")
    # a Wald interval assumes zeta is this straight line
    ax.plot(grid, (grid - model.coef_[j]) / model.stderror_[j], "--", label="Wald")
    for q in (-1.96, 1.96):
        ax.axhline(q, color="grey", lw=0.8)
    ax.vlines(profile.loc[name], -3, 3, color="C3", lw=0.8, label="profile interval")
    ax.set_xlabel(name)
axes[0].set_ylabel("zeta")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# ## Bootstrap distributions of every parameter
#
# The histograms of the 300 bootstrap estimates, with the shortest 95% bootstrap
# interval (solid) and the profile interval (dashed). For the fixed effects the
# two roughly agree (300 replicates place the limits of a shortest interval only
# to a few per cent of its width). The standard deviations of the random effects
# are estimated too small by maximum likelihood, and the bootstrap repeats that
# bias: its replicates are centred below the estimate (black), so its intervals
# sit lower than the profile's. A few replicates end on the boundary (a
# correlation of +1), which the shortest interval of the correlation includes.

replicates = boot.replicates
vc = model.varcorr()
estimates = pd.Series(
    [*model.coef_, *vc.table["sd"][:2], vc.correlations["subj"].iloc[1, 0], model.sigma_],
    index=replicates.columns[1:],
)
print(
    pd.DataFrame({"estimate": estimates, "mean of replicates": replicates.iloc[:, 1:].mean()})
    .round(2)
    .to_string()
)

fig, axes = plt.subplots(2, 3, figsize=(9, 5))
for ax, name in zip(axes.ravel(), replicates.columns[1:]):
    values = replicates[name].to_numpy()
    ax.hist(values[np.isfinite(values)], bins=30, color="C0", alpha=0.6)
    ax.axvline(estimates[name], color="black", lw=1, label="estimate")
    within = {"transform": ax.get_xaxis_transform(), "lw": 1.2}
    ax.vlines(shortest.loc[name], 0, 1, color="C1", label="bootstrap", **within)
    ax.vlines(profile.loc[name], 0, 1, color="C3", ls="--", label="profile", **within)
    ax.set_title(name, fontsize=9)
axes[0, 0].legend(fontsize=7, loc="upper left")
fig.tight_layout()
