"""
# Choosing a random-effects structure by cross-validation

Three structures for the sleepstudy data, compared with `GridSearchCV` (the
formula is a hyperparameter) under two cross-validation schemes that answer two
different questions:

- predicting **new subjects** (`GroupKFold` over subjects): their random effects
  are unknown, so every structure predicts the population line and they tie;
- predicting **new days of known subjects** (`KFold` over rows): the structure
  with a random slope per subject wins.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold

from sklmixed import MixedLMRegressor, load_dataset

df = load_dataset("sleepstudy")
structures = [
    "reaction ~ 1 + days + (1|subj)",
    "reaction ~ 1 + days + zerocorr(1 + days|subj)",
    "reaction ~ 1 + days + (1 + days|subj)",
]
y = df["reaction"].to_numpy()

new_subjects = GridSearchCV(MixedLMRegressor(), {"formula": structures}, cv=GroupKFold(5))
new_subjects.fit(df, y, groups=df["subj"])

known_subjects = GridSearchCV(
    MixedLMRegressor(), {"formula": structures}, cv=KFold(5, shuffle=True, random_state=0)
)
known_subjects.fit(df, y)

for name, search in [("new subjects", new_subjects), ("known subjects", known_subjects)]:
    print(f"{name}: mean R^2 by structure")
    for formula, score in zip(structures, search.cv_results_["mean_test_score"]):
        print(f"  {score:6.3f}  {formula}")
    print("  best:", search.best_params_["formula"])
print(
    "random slopes help known subjects:",
    bool(np.argmax(known_subjects.cv_results_["mean_test_score"]) > 0),
)

# %%
# The scores of every fold: the spread between folds dwarfs the differences
# between structures for new subjects, not for known ones.

labels = ["(1|subj)", "zerocorr(1 + days|subj)", "(1 + days|subj)"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
for ax, (name, search) in zip(axes, [("new subjects", new_subjects), ("known", known_subjects)]):
    res = search.cv_results_
    folds = np.array([res[f"split{i}_test_score"] for i in range(search.n_splits_)])
    for j in range(len(structures)):
        ax.plot(np.full(folds.shape[0], j), folds[:, j], "o", color="grey", alpha=0.5, ms=4)
    ax.errorbar(
        range(len(structures)),
        res["mean_test_score"],
        yerr=res["std_test_score"],
        fmt="s",
        color="C0",
        capsize=4,
        label="mean +- sd",
    )
    ax.set_xticks(range(len(structures)), labels, rotation=15, fontsize=8)
    ax.set_title(f"{name} subjects" if name == "known" else name)
axes[0].set_ylabel("R^2 on the held-out fold")
axes[0].legend()
fig.tight_layout()
