# lme4 reference for a vector-valued term nested in a scalar one:
# y ~ 1 + x + (1 + x | cls) + (1 | school), classes nested in schools (data/nested_vector.csv,
# simulated once with numpy and stored). Run from this folder: Rscript make_nested_vector.R
suppressMessages({ library(lme4); library(jsonlite) })
d <- read.csv("data/nested_vector.csv")
m <- lmer(y ~ 1 + x + (1 + x | cls) + (1 | school), data = d, REML = FALSE,
          control = lmerControl(optimizer = "bobyqa",
                                optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10)))
out <- list(objective = deviance(m), beta = unname(fixef(m)), sigma = sigma(m),
            stderror = unname(sqrt(diag(as.matrix(vcov(m))))),
            lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "nested_vector.json")
