"""
# A Bernoulli GLMM: verbal aggression

316 subjects answered 24 items about verbally aggressive reactions to frustrating
situations (the verbagg data); `r2` is "Y" or "N". `MixedGLMClassifier` fits a
logistic mixed model with crossed random intercepts for subjects and items, by
the Laplace approximation, as MixedModels.jl does.
"""

from sklmixed import MixedGLMClassifier, load_dataset
from sklmixed.plotting import plot_ranef

df = load_dataset("verbagg")
formula = "r2 ~ 1 + anger + gender + btype + situ + mode + (1|subj) + (1|item)"
clf = MixedGLMClassifier(formula=formula).fit(df)
print(clf.summary())

# %%
# The labels are sorted: `classes_[1]` ("Y") is the positive class, and
# `predict_proba` gives the probability of each:

print(clf.classes_, clf.predict_proba(df.head(3)).round(3))

# %%
# `fast=True` optimizes only the covariance parameters and takes the fixed
# effects from PIRLS (lme4's `nAGQ = 0`): quicker, at a slightly higher deviance.

fast = MixedGLMClassifier(formula=formula, fast=True).fit(df)
print(f"deviance increase with fast=True: {fast.deviance_ - clf.deviance_:.4f}")

# %%
# The items' random intercepts on the log-odds scale:

axes = plot_ranef(clf, "item")
