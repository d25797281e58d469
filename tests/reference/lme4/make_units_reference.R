# lme4 reference values for tests/estimators/test_units.py: models that data in
# unusual units used to break (large Poisson counts, no fixed effects).
#
# Run from this folder:  Rscript make_units_reference.R
# Needs R with lme4 and jsonlite. Writes data/grouseticks.csv (lme4's grouseticks)
# and units_reference.json.

suppressMessages({
  library(lme4)
  library(jsonlite)
})
dir.create("data", showWarnings = FALSE)

data(grouseticks, package = "lme4")
write.csv(grouseticks[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")],
          "data/grouseticks.csv", row.names = FALSE)
g <- grouseticks
g$T4 <- g$TICKS * 1e4  # counts in the hundreds of thousands
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

glmm <- function(lme4_formula, sklmixed_formula) {
  m <- suppressWarnings(glmer(as.formula(lme4_formula), family = poisson, data = g,
                              control = gctrl))
  list(lme4_formula = lme4_formula, formula = sklmixed_formula,
       minus2loglik = -2 * as.numeric(logLik(m)), fixef = unname(fixef(m)),
       theta = unname(getME(m, "theta")))
}

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  ticks_x1e4_index = glmm("T4 ~ 1 + (1 | INDEX)", "T4 ~ 1 + (1|INDEX)"),
  ticks_x1e4_height = glmm("T4 ~ 1 + HEIGHT + (1 | BROOD)", "T4 ~ 1 + HEIGHT + (1|BROOD)")
)

m <- lmer(Reaction ~ 0 + (1 | Subject), sleepstudy, REML = FALSE)
out$sleep_no_fixed <- list(
  lme4_formula = "Reaction ~ 0 + (1 | Subject)", formula = "reaction ~ 0 + (1|subj)",
  objective = deviance(m), theta = unname(getME(m, "theta")), sigma = sigma(m),
  hat_sum = sum(hatvalues(m))
)

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "units_reference.json")
