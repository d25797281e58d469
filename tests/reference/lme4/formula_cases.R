# lme4's fits of the formula cases in tests/estimators/test_formula_models.py.
#
# Run from this folder:  Rscript formula_cases.R
# Prints, per model, the deviance (-2 log L at the ML fit), the number of theta
# parameters and the fixed effects; the test file records them. lme4's sleepstudy
# is MixedModels.jl's (columns Reaction, Days, Subject there; reaction, days, subj
# in ours).

suppressMessages(library(lme4))
d <- sleepstudy
d$half <- factor(ifelse(d$Days < 5, "a", "b"))
d$third <- factor(c("p", "q", "r")[1 + (d$Days %% 3)])
show <- function(label, m) {
  cat(sprintf("%-28s deviance=%.10f ntheta=%d fixef=%s\n", label, deviance(m),
              length(getME(m, "theta")), paste(sprintf("%.8f", fixef(m)), collapse = ",")))
}
show("I(days^2)", lmer(Reaction ~ 1 + I(Days^2) + (1 | Subject), d, REML = FALSE))
show("I(days*20)", lmer(Reaction ~ 1 + I(Days * 20) + (1 | Subject), d, REML = FALSE))
show("days*half", lmer(Reaction ~ 1 + Days * half + (1 + Days * half | Subject), d,
                       REML = FALSE))
show("log(reaction)", lmer(log(Reaction) ~ 1 + Days + (1 + Days | Subject), d, REML = FALSE))
show("third, sum coding", lmer(Reaction ~ 1 + Days + third + (1 + third | Subject), d,
                               REML = FALSE, contrasts = list(third = "contr.sum")))
