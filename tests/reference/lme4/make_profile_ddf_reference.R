# Reference values for inference: profile intervals (lme4), Satterthwaite and
# Kenward-Roger degrees of freedom (lmerTest, pbkrtest), likelihood-ratio tests
# (lme4's anova).
#
# Run from this folder:  Rscript make_profile_ddf_reference.R
# Needs R with lme4, lmerTest, pbkrtest and jsonlite (Debian: r-base-core
# r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-jsonlite). Writes
# profile_ddf_reference.json; the test suite reads only that file, never R.
#
# Data: lme4's sleepstudy and Penicillin (the same numbers as sklmixed's bundled
# "sleepstudy" and "penicillin"), and nlme's Machines (data/machines.csv, written
# by make_reference.R).
#
# Profile intervals are recorded twice: with lme4's default profile (points about
# 0.5 apart on the zeta scale, interpolated by a spline) and with a profile ten
# times as fine (delta.cutoff = 1/80). The difference between the two is the
# interpolation error of lme4's default answer, which bounds how closely any
# other exact computation can be expected to agree with it.

suppressMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

interval_table <- function(ci) {
  list(names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}

profile_ci <- function(m, level = 0.95, delta.cutoff = 1 / 8) {
  pr <- profile(m, delta.cutoff = delta.cutoff, signames = TRUE)
  interval_table(confint(pr, level = level))
}

fit_info <- function(m) {
  list(
    reml = isREML(m),
    objective = if (isREML(m)) REMLcrit(m) else deviance(m),
    fixef = unname(fixef(m)), fixef_names = names(fixef(m)),
    theta = unname(getME(m, "theta")), sigma = sigma(m),
    stderror = unname(sqrt(diag(as.matrix(vcov(m)))))
  )
}

ddf_table <- function(m, ddf) {
  s <- summary(m, ddf = ddf)$coefficients
  list(names = rownames(s), estimate = unname(s[, "Estimate"]),
       stderror = unname(s[, "Std. Error"]), df = unname(s[, "df"]),
       t = unname(s[, "t value"]), p = unname(s[, "Pr(>|t|)"]))
}

kr_vcov <- function(m) {
  # pbkrtest's adjusted covariance of the fixed effects (REML fits)
  unname(as.matrix(vcovAdj(as(m, "lmerMod"))))
}

describe <- function(m, name, sklmixed_formula, data, profile = TRUE, kr = TRUE,
                     levels = c(0.95)) {
  res <- list(name = name, sklmixed_formula = sklmixed_formula, data = data,
              fit = fit_info(m),
              satterthwaite = ddf_table(m, "Satterthwaite"))
  # lmerTest offers Kenward-Roger for REML fits only (pbkrtest refits an ML fit by
  # REML first, so the REML entry is also the answer for the ML fit)
  if (kr && isREML(m)) {
    res$kenward_roger <- ddf_table(m, "Kenward-Roger")
    res$kenward_roger$vcov <- kr_vcov(m)
  }
  if (profile) {
    res$profile <- list()
    for (lv in levels) {
      key <- sprintf("%g", lv)
      res$profile[[key]] <- profile_ci(m, lv)
      res$profile_fine[[key]] <- profile_ci(m, lv, delta.cutoff = 1 / 80)
    }
  }
  res
}

models <- list()

# (a) sleepstudy, random intercept and slope, ML and REML
sleep <- sleepstudy
for (reml in c(FALSE, TRUE)) {
  m <- lmer(Reaction ~ 1 + Days + (1 + Days | Subject), sleep, REML = reml, control = ctrl)
  nm <- if (reml) "sleepstudy_reml" else "sleepstudy_ml"
  models[[nm]] <- describe(m, nm, "reaction ~ 1 + days + (1 + days|subj)", "sleepstudy",
                           levels = if (reml) c(0.95) else c(0.95, 0.8))
}

# (b) Penicillin, two crossed scalar terms (intercept only), REML and ML
for (reml in c(TRUE, FALSE)) {
  m <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, REML = reml, control = ctrl)
  nm <- if (reml) "penicillin_reml" else "penicillin_ml"
  models[[nm]] <- describe(m, nm, "diameter ~ 1 + (1|plate) + (1|sample)", "penicillin")
}

# (c) Machines: a fixed effect crossed with a random factor,
# score ~ Machine + (1 | Worker) + (1 | Worker:Machine), REML and ML
machines <- read.csv("data/machines.csv", stringsAsFactors = FALSE)
for (reml in c(TRUE, FALSE)) {
  m <- lmer(score ~ Machine + (1 | Worker) + (1 | Worker:Machine), machines, REML = reml,
            control = ctrl)
  nm <- if (reml) "machines_reml" else "machines_ml"
  models[[nm]] <- describe(m, nm, "score ~ 1 + Machine + (1|Worker) + (1|Worker & Machine)",
                           "machines.csv")
}

# (d) prior weights: the weighted sleepstudy fit of make_reference.R (ML)
sw <- read.csv("data/sleep_weights.csv", stringsAsFactors = FALSE)
m <- lmer(reaction ~ 1 + days + (1 + days | subj), sw, weights = w, REML = FALSE, control = ctrl)
models$sleepstudy_weighted_ml <- describe(m, "sleepstudy_weighted_ml",
                                          "reaction ~ 1 + days + (1 + days|subj)",
                                          "sleep_weights.csv")

# (e) a singular (boundary) fit: Dyestuff2, REML (no profile: sd at zero)
m <- lmer(Yield ~ 1 + (1 | Batch), Dyestuff2, REML = TRUE, control = ctrl)
models$dyestuff2_reml <- describe(m, "dyestuff2_reml", "yield ~ 1 + (1|batch)", "dyestuff2",
                                  profile = FALSE)

# (f) likelihood-ratio tests of nested sleepstudy ML fits
f0 <- lmer(Reaction ~ 1 + Days + (1 | Subject), sleep, REML = FALSE, control = ctrl)
f1 <- lmer(Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject), sleep, REML = FALSE,
           control = ctrl)
f2 <- lmer(Reaction ~ 1 + Days + (1 + Days | Subject), sleep, REML = FALSE, control = ctrl)
fx <- lmer(Reaction ~ 1 + (1 + Days | Subject), sleep, REML = FALSE, control = ctrl)
anova_table <- function(a) {
  list(models = rownames(a), npar = unname(a[, "npar"]), AIC = unname(a[, "AIC"]),
       BIC = unname(a[, "BIC"]), logLik = unname(a[, "logLik"]),
       deviance = unname(a[, "deviance"]), Chisq = unname(a[, "Chisq"]),
       Df = unname(a[, "Df"]), p = unname(a[, "Pr(>Chisq)"]))
}
anova_ref <- list(
  formulas = list(
    f0 = "reaction ~ 1 + days + (1|subj)",
    f1 = "reaction ~ 1 + days + zerocorr(1 + days|subj)",
    f2 = "reaction ~ 1 + days + (1 + days|subj)",
    fx = "reaction ~ 1 + (1 + days|subj)"
  ),
  f0_f1_f2 = anova_table(anova(f0, f1, f2)),
  f0_f2 = anova_table(anova(f0, f2)),
  fx_f2 = anova_table(anova(fx, f2))
)

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  R_version = R.version.string,
  models = models,
  anova = anova_ref
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "profile_ddf_reference.json")
