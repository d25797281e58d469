"""Choosing a random-effects structure by cross-validation (GridSearchCV, GroupKFold).

Two questions, two CV schemes on the sleepstudy data:

- predicting *new subjects* (GroupKFold over subjects): random effects cannot help
  (unseen subjects get the population prediction), so structures tie;
- predicting *new days of known subjects* (folds within subjects): the structure
  with a random slope per subject wins.

Run: ``python examples/choose_random_effects.py``
"""

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
    print(f"\n{name}: mean R^2 by structure")
    for formula, score in zip(structures, search.cv_results_["mean_test_score"]):
        print(f"  {score:6.3f}  {formula}")
    print("  best:", search.best_params_["formula"])
print(
    "\nrandom slopes help known subjects:",
    bool(np.argmax(known_subjects.cv_results_["mean_test_score"]) > 0),
)
