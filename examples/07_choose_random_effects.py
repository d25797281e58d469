"""
# Choosing a random-effects structure by cross-validation

Which of `(1|subj)`, `zerocorr(1 + days|subj)` and `(1 + days|subj)` describes
*new* subjects of the sleepstudy best?

- `GroupKFold` over subjects holds out whole subjects. R^2 cannot answer: a new
  subject's random effects are zero in `predict`, every structure predicts the
  same means, and R^2 ties. The held-out *marginal* log-likelihood
  (`sklmixed.marginal_loglik`) integrates the new subjects' random effects out: a
  random slope changes how a new subject's reactions spread and covary over the
  days, and the score sees that.
- For comparison: AIC, BIC and the likelihood-ratio test on the whole data, and
  folds within subjects (`KFold` over rows), where the conditional modes of known
  subjects make the random slope visible to R^2 too.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold

from sklmixed import MixedLMRegressor, conditional_loglik, load_dataset, lrtest, marginal_loglik

df = load_dataset("sleepstudy")
labels = ["(1|subj)", "zerocorr(1 + days|subj)", "(1 + days|subj)"]
structures = [f"reaction ~ 1 + days + {re}" for re in labels]
y = df["reaction"]

# %%
# New subjects: `GroupKFold`, scored by the held-out marginal log-likelihood
# (and R^2, which ties).

new_subjects = GridSearchCV(
    MixedLMRegressor(),
    {"formula": structures},
    cv=GroupKFold(5),
    scoring={"marginal_loglik": marginal_loglik, "r2": "r2"},
    refit="marginal_loglik",
)
new_subjects.fit(df, y, groups=df["subj"])
res = new_subjects.cv_results_
folds = np.array([[res[f"split{k}_test_marginal_loglik"][i] for k in range(5)] for i in range(3)])

print("new subjects (GroupKFold(5)): mean over folds")
print(f"  {'R^2':>7s} {'marginal logLik/obs':>20s}  structure")
for i, label in enumerate(labels):
    se = folds[i].std(ddof=1) / np.sqrt(5)
    r2 = res["mean_test_r2"][i]
    print(f"  {r2:7.4f} {folds[i].mean():11.4f} +- {se:.4f}  {label}")
print(f"  R^2 ties (spread {np.ptp(res['mean_test_r2']):.1e}); best by marginal log-likelihood:")
print("   ", labels[new_subjects.best_index_])
gain = folds[1:] - folds[0]  # paired per-fold gains over (1|subj): the folds share noise
for label, g in zip(labels[1:], gain):
    print(
        f"  gain of {label} over (1|subj): {g.mean():.3f} +- {g.std(ddof=1) / np.sqrt(5):.3f}"
        f" (per fold {np.round(g, 3).tolist()})"
    )
print("random slopes help new subjects:", bool(new_subjects.best_index_ > 0))

# %%
# The in-sample criteria on all the data, for comparison: AIC, BIC and the
# likelihood-ratio tests of the nested fits.

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fits = [MixedLMRegressor(formula=f).fit(df) for f in structures]
for label, m in zip(labels, fits):
    print(f"  AIC {m.aic_:9.2f}  BIC {m.bic_:9.2f}  {label}")
print(lrtest(*fits).round(4).to_string())

# %%
# Known subjects, new days: folds within subjects. The conditional modes of the
# subjects seen in training now carry each subject's own slope.

known_subjects = GridSearchCV(
    MixedLMRegressor(),
    {"formula": structures},
    cv=KFold(5, shuffle=True, random_state=0),
    scoring={"r2": "r2", "conditional_loglik": conditional_loglik},
    refit="conditional_loglik",
)
known_subjects.fit(df, y)
print("known subjects (KFold over rows): mean R^2 and conditional logLik/obs")
for i, label in enumerate(labels):
    r2 = known_subjects.cv_results_["mean_test_r2"][i]
    ll = known_subjects.cv_results_["mean_test_conditional_loglik"][i]
    print(f"  {r2:7.4f} {ll:9.4f}  {label}")
print("random slopes help known subjects:", bool(known_subjects.best_index_ > 0))

# %%
# The held-out marginal log-likelihood by structure and fold: the folds share
# noise, so compare the lines fold by fold.

fig, ax = plt.subplots(figsize=(6, 4))
x = np.arange(3)
for k in range(5):
    ax.plot(x, folds[:, k], "o-", color="0.6", lw=1, label="fold" if k == 0 else None)
ax.plot(x, folds.mean(axis=1), "s-", color="C0", lw=2.5, label="mean over folds")
ax.set_xticks(x, labels)
ax.set_ylabel("held-out marginal log-likelihood per obs.")
ax.set_title("sleepstudy, GroupKFold(5): new subjects")
ax.legend()
fig.tight_layout()
