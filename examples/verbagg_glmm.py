"""A Bernoulli GLMM with crossed random effects (the verbal aggression data).

Fits the model of the MixedModels.jl documentation with the Laplace approximation
and with ``fast=True`` (beta from PIRLS), and compares their deviances.

Run: ``python examples/verbagg_glmm.py``
"""

from sklmixed import MixedGLMClassifier, load_dataset

df = load_dataset("verbagg")
formula = "r2 ~ 1 + anger + gender + btype + situ + mode + (1|subj) + (1|item)"
laplace = MixedGLMClassifier(formula=formula).fit(df)
fast = MixedGLMClassifier(formula=formula, fast=True).fit(df)
print(laplace.summary())
print(f"\ndeviance increase with fast=True: {fast.deviance_ - laplace.deviance_:.4f}")
print("P(r2 = 'Y') for the first rows:", laplace.predict_proba(df.head(3))[:, 1].round(3))
