# Reference values from lme4 for sklmixed's inference tools (lrtest, confint,
# bootstrap): likelihood-ratio tests of nested fits (lme4's anova), Wald and
# profile confidence intervals.
#
# Run from this folder:  Rscript make_inference_reference.R
# Needs R with lme4 and jsonlite (Debian: r-base-core r-cran-lme4 r-cran-jsonlite).
# Uses data/sleep_weights.csv and data/cbpp.csv written by make_reference.R (the
# sleepstudy and cbpp data with sklmixed's column names). Writes
# inference_reference.json; the test suite reads only that file, never R.

suppressMessages({
  library(lme4)
  library(jsonlite)
})

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
sleep <- read.csv("data/sleep_weights.csv")
cb <- read.csv("data/cbpp.csv")

anova_list <- function(a, sklmixed_formulas) {
  list(sklmixed_formulas = sklmixed_formulas,
       npar = unname(a$npar), deviance = unname(a$deviance),
       chisq = unname(a$Chisq), df = unname(a$Df), p = unname(a[["Pr(>Chisq)"]]))
}

ci_list <- function(ci, names) {
  list(names = names, lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}

out <- list(lme4_version = as.character(packageVersion("lme4")),
            R_version = R.version.string)

# (a) sleepstudy, three nested ML fits (anova sorts them by npar; given out of order)
m0 <- lmer(reaction ~ 1 + (1 | subj), sleep, REML = FALSE, control = ctrl)
m1 <- lmer(reaction ~ 1 + days + (1 | subj), sleep, REML = FALSE, control = ctrl)
m2 <- lmer(reaction ~ 1 + days + (1 + days | subj), sleep, REML = FALSE, control = ctrl)
out$anova_sleepstudy <- anova_list(anova(m2, m0, m1), c(
  "reaction ~ 1 + (1|subj)",
  "reaction ~ 1 + days + (1|subj)",
  "reaction ~ 1 + days + (1 + days|subj)"))

# (b) sleepstudy REML fits with the same fixed effects: lme4 refits them by ML
# unless refit = FALSE; the REML criteria are comparable here.
r1 <- lmer(reaction ~ 1 + days + (1 | subj), sleep, REML = TRUE, control = ctrl)
r2 <- lmer(reaction ~ 1 + days + (1 + days | subj), sleep, REML = TRUE, control = ctrl)
out$anova_sleepstudy_reml <- anova_list(anova(r1, r2, refit = FALSE), c(
  "reaction ~ 1 + days + (1|subj)",
  "reaction ~ 1 + days + (1 + days|subj)"))

# (c) binomial GLMM (cbpp, Laplace): period as fixed effect or not
g0 <- glmer(prop ~ 1 + (1 | herd), cb, family = binomial, weights = size, control = gctrl)
g1 <- glmer(prop ~ 1 + period + (1 | herd), cb, family = binomial, weights = size,
            control = gctrl)
out$anova_cbpp <- anova_list(anova(g0, g1), c(
  "prop ~ 1 + (1|herd)", "prop ~ 1 + period + (1|herd)"))

# (d) confidence intervals of the ML random-slope sleepstudy model, rows in
# sklmixed's order and names
ci_names <- c("(Intercept)", "days", "sd(subj: (Intercept))", "sd(subj: days)",
              "corr(subj: (Intercept), days)", "sigma")
lme4_rows <- c("(Intercept)", "days", "sd_(Intercept)|subj", "sd_days|subj",
               "cor_days.(Intercept)|subj", "sigma")
wald <- confint(m2, method = "Wald", oldNames = FALSE)
out$confint_wald_sleepstudy <- ci_list(wald[lme4_rows, ], ci_names)
prof <- confint(m2, method = "profile", oldNames = FALSE)
out$confint_profile_sleepstudy <- ci_list(prof[lme4_rows, ], ci_names)

# (e) lme4's parametric bootstrap of the same model (bootMer, new random effects,
# use.u = FALSE): the 2.5% and 97.5% quantiles (type 7, numpy's default) of 4000
# replicates of each parameter. Non-finite values (a correlation whose SD is 0 in
# that replicate) are left out, as sklmixed does.
params <- function(m) {
  # VarCorr's data frame lists sd_(Intercept), sd_days, cor, then sigma: with
  # fixef first this is the order of ci_names
  c(fixef(m), as.data.frame(VarCorr(m))$sdcor)
}
nboot <- 4000
t0 <- Sys.time()
b <- bootMer(m2, params, nsim = nboot, seed = 20261125, use.u = FALSE, type = "parametric")
elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
q <- apply(b$t, 2, function(v) quantile(v[is.finite(v)], c(0.025, 0.975), type = 7))
out$bootstrap_percentile_sleepstudy <- list(
  names = ci_names, n_boot = nboot, seconds = elapsed,
  lower = unname(q[1, ]), upper = unname(q[2, ]),
  n_finite = unname(colSums(is.finite(b$t))))

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "inference_reference.json")
