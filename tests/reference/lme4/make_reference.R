# Reference values from lme4 for models the MixedModels.jl page does not show.
#
# Run from this folder:  Rscript make_reference.R
# Needs R with lme4, mlmRev, nlme and jsonlite (Debian: r-base-core r-cran-lme4
# r-cran-mlmrev r-cran-jsonlite). Writes data/*.csv (the data each model uses) and
# lme4_reference.json (estimates at full precision). The test suite reads only
# those two outputs, never R.
#
# Formulas are recorded twice: lme4's, and sklmixed's, where a random term has an
# intercept only where "1 +" is written (lme4's (x|g) is (1 + x|g)).

suppressMessages({
  library(lme4)
  library(jsonlite)
})
dir.create("data", showWarnings = FALSE)

full <- function(x) unname(x)

varcorr_list <- function(m) {
  vc <- VarCorr(m)
  out <- list()
  for (g in names(vc)) {
    v <- vc[[g]]
    out[[g]] <- list(columns = colnames(v), sd = full(attr(v, "stddev")),
                     corr = unname(as.matrix(attr(v, "correlation"))))
  }
  out
}

ranef_list <- function(m) {
  re <- ranef(m)
  out <- list()
  for (g in names(re)) {
    out[[g]] <- list(levels = rownames(re[[g]]), columns = colnames(re[[g]]),
                     values = unname(as.matrix(re[[g]])))
  }
  out
}

dropped_names <- function(m) {
  d <- attr(getME(m, "X"), "col.dropped")
  if (is.null(d)) NULL else I(names(d))
}

vcov_of <- function(m) if (isGLMM(m)) vcov(m, use.hessian = FALSE) else vcov(m)

describe <- function(m, name, file, lme4_formula, sklmixed_formula, options = list()) {
  is_glmm <- isGLMM(m)
  res <- list(
    name = name, data = file, lme4_formula = lme4_formula,
    sklmixed_formula = sklmixed_formula, options = options,
    fixef_names = names(fixef(m)), fixef = full(fixef(m)),
    # For GLMMs lme4 by default takes vcov from a finite-difference Hessian of the
    # deviance; MixedModels.jl (and sklmixed) from the PIRLS factor, R_X: record the
    # latter, which lme4 gives with use.hessian = FALSE.
    stderror = full(sqrt(diag(as.matrix(vcov_of(m))))),
    vcov = unname(as.matrix(vcov_of(m))),
    stderror_hessian = full(sqrt(diag(as.matrix(vcov(m))))),
    theta = full(getME(m, "theta")), theta_names = names(getME(m, "theta")),
    varcorr = varcorr_list(m), ranef = ranef_list(m),
    nlevels = as.list(sapply(ranef(m), nrow)),
    loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m),
    df = attr(logLik(m), "df"), nobs = nobs(m),
    dropped = dropped_names(m)
  )
  if (is_glmm) {
    res$deviance <- deviance(m)      # lme4's GLMM deviance (sum of deviance residuals)
    res$minus2loglik <- -2 * as.numeric(logLik(m))
    res$objective <- -2 * as.numeric(logLik(m))
    res$sigma <- NULL
  } else {
    res$sigma <- sigma(m)
    res$objective <- if (isREML(m)) REMLcrit(m) else deviance(m)
    res$hat_sum <- sum(hatvalues(m))
  }
  res
}

models <- list()
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

# ---- simulated designs (fixed seed) ----------------------------------------
set.seed(20261124)

# (a) two crossed vector-valued terms
n <- 600
g <- sprintf("g%02d", sample(1:30, n, TRUE)); h <- sprintf("h%02d", sample(1:20, n, TRUE))
x <- rnorm(n)
bg <- matrix(rnorm(60), 30) %*% chol(matrix(c(1, 0.3, 0.3, 0.5), 2))
bh <- matrix(rnorm(40), 20) %*% chol(matrix(c(0.6, -0.2, -0.2, 0.4), 2))
gi <- as.integer(sub("g", "", g)); hi <- as.integer(sub("h", "", h))
y <- 2 + 1.5 * x + bg[gi, 1] + bg[gi, 2] * x + bh[hi, 1] + bh[hi, 2] * x + rnorm(n, sd = 0.8)
twovec <- data.frame(y = y, x = x, g = g, h = h)
write.csv(twovec, "data/twovec.csv", row.names = FALSE)
m <- lmer(y ~ x + (x | g) + (x | h), twovec, REML = FALSE, control = ctrl)
models$twovec <- describe(m, "twovec", "twovec.csv", "y ~ x + (x | g) + (x | h)",
                          "y ~ 1 + x + (1 + x|g) + (1 + x|h)", list(reml = FALSE))

# (b) three crossed scalar terms
n <- 800
a <- sprintf("a%02d", sample(1:25, n, TRUE)); b <- sprintf("b%02d", sample(1:15, n, TRUE))
cc <- sprintf("c%d", sample(1:8, n, TRUE)); x <- runif(n)
y <- 1 + 0.5 * x + rnorm(25)[as.integer(sub("a", "", a))] +
  0.7 * rnorm(15)[as.integer(sub("b", "", b))] + 0.5 * rnorm(8)[as.integer(sub("c", "", cc))] +
  rnorm(n)
three <- data.frame(y = y, x = x, a = a, b = b, c = cc)
write.csv(three, "data/three.csv", row.names = FALSE)
m <- lmer(y ~ x + (1 | a) + (1 | b) + (1 | c), three, REML = FALSE, control = ctrl)
models$three_crossed <- describe(m, "three_crossed", "three.csv",
                                 "y ~ x + (1 | a) + (1 | b) + (1 | c)",
                                 "y ~ 1 + x + (1|a) + (1|b) + (1|c)", list(reml = FALSE))

# (c) REML, a categorical fixed effect and a random slope
n <- 400
g <- sprintf("s%02d", sample(1:24, n, TRUE)); trt <- sample(c("A", "B", "C"), n, TRUE)
x <- rnorm(n); gi <- as.integer(sub("s", "", g))
bg <- cbind(rnorm(24, sd = 1.2), rnorm(24, sd = 0.6))
y <- 3 + c(A = 0, B = 0.8, C = -0.5)[trt] + 1.1 * x + bg[gi, 1] + bg[gi, 2] * x + rnorm(n)
remlcat <- data.frame(y = y, x = x, trt = trt, g = g)
write.csv(remlcat, "data/remlcat.csv", row.names = FALSE)
m <- lmer(y ~ trt + x + (x | g), remlcat, REML = TRUE, control = ctrl)
models$reml_categorical <- describe(m, "reml_categorical", "remlcat.csv",
                                    "y ~ trt + x + (x | g)", "y ~ 1 + trt + x + (1 + x|g)",
                                    list(reml = TRUE))

# (d) weighted LMM (prior weights)
sleep <- sleepstudy
names(sleep) <- c("reaction", "days", "subj")
sleep$subj <- paste0("S", sleep$subj)
sleep$w <- 1 + (sleep$days %% 3) / 2
write.csv(sleep, "data/sleep_weights.csv", row.names = FALSE)
m <- lmer(reaction ~ days + (days | subj), sleep, weights = w, REML = FALSE, control = ctrl)
models$weighted <- describe(m, "weighted", "sleep_weights.csv",
                            "reaction ~ days + (days | subj), weights = w",
                            "reaction ~ 1 + days + (1 + days|subj)",
                            list(reml = FALSE, weights = "w"))

# (e) all levels of a categorical column: (0 + Machine | Worker)
data(Machines, package = "nlme")
machines <- data.frame(score = Machines$score, Machine = as.character(Machines$Machine),
                       Worker = paste0("W", as.character(Machines$Worker)))
write.csv(machines, "data/machines.csv", row.names = FALSE)
m <- lmer(score ~ Machine + (0 + Machine | Worker), machines, REML = FALSE, control = ctrl)
models$machines <- describe(m, "machines", "machines.csv",
                            "score ~ Machine + (0 + Machine | Worker)",
                            "score ~ 1 + Machine + (0 + Machine|Worker)", list(reml = FALSE))

# (f) rank-deficient fixed effects: x2 = 2 x + 1 duplicates x and the intercept
rd <- remlcat
rd$x2 <- 2 * rd$x + 1
write.csv(rd, "data/rankdef.csv", row.names = FALSE)
m <- lmer(y ~ x + x2 + trt + (1 | g), rd, REML = FALSE, control = ctrl)
models$rank_deficient <- describe(m, "rank_deficient", "rankdef.csv",
                                  "y ~ x + x2 + trt + (1 | g)", "y ~ 1 + x + x2 + trt + (1|g)",
                                  list(reml = FALSE))

# (g) nested grouping with a covariate
n <- 300
a <- sample(sprintf("A%d", 1:10), n, TRUE); bb <- sample(c("p", "q", "r"), n, TRUE)
x <- rnorm(n)
key <- paste(a, bb)
y <- 5 + 0.4 * x + rnorm(10)[match(a, sprintf("A%d", 1:10))] +
  0.8 * rnorm(30)[match(key, unique(key))] + rnorm(n, sd = 0.7)
nested <- data.frame(y = y, x = x, a = a, b = bb)
write.csv(nested, "data/nested.csv", row.names = FALSE)
m <- lmer(y ~ x + (1 | a / b), nested, REML = FALSE, control = ctrl)
models$nested <- describe(m, "nested", "nested.csv", "y ~ x + (1 | a/b)",
                          "y ~ 1 + x + (1|a/b)", list(reml = FALSE))

# ---- GLMMs -----------------------------------------------------------------
# (h) binomial with trials
cb <- data.frame(herd = paste0("H", sprintf("%02d", as.integer(cbpp$herd))),
                 incidence = cbpp$incidence, size = cbpp$size,
                 period = paste0("P", cbpp$period))
cb$prop <- cb$incidence / cb$size
write.csv(cb, "data/cbpp.csv", row.names = FALSE)
for (q in c(1, 9, 0)) {
  m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial,
             nAGQ = q, control = gctrl)
  nm <- paste0("cbpp_nagq", q)
  models[[nm]] <- describe(m, nm, "cbpp.csv",
                           "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           "prop ~ 1 + period + (1|herd)",
                           list(family = "binomial", weights = "size", nagq = q))
}

# (i) Poisson with two crossed factors
n <- 900
a <- sprintf("a%02d", sample(1:30, n, TRUE)); b <- sprintf("b%02d", sample(1:12, n, TRUE))
x <- rnorm(n)
eta <- 0.5 + 0.3 * x + rnorm(30, sd = 0.5)[as.integer(sub("a", "", a))] +
  rnorm(12, sd = 0.3)[as.integer(sub("b", "", b))]
pois <- data.frame(count = rpois(n, exp(eta)), x = x, a = a, b = b)
write.csv(pois, "data/poisson.csv", row.names = FALSE)
m <- glmer(count ~ x + (1 | a) + (1 | b), pois, family = poisson, control = gctrl)
models$poisson_crossed <- describe(m, "poisson_crossed", "poisson.csv",
                                   "count ~ x + (1 | a) + (1 | b)",
                                   "count ~ 1 + x + (1|a) + (1|b)", list(family = "poisson"))

# (j) Bernoulli with a vector-valued random effect
data(Contraception, package = "mlmRev")
con <- data.frame(use = as.character(Contraception$use), age = Contraception$age,
                  urban = as.character(Contraception$urban),
                  livch = as.character(Contraception$livch),
                  district = sprintf("D%02d", as.integer(Contraception$district)))
con$usen <- as.integer(con$use == "Y")
write.csv(con, "data/contraception.csv", row.names = FALSE)
m <- glmer(usen ~ age + urban + (urban | district), con, family = binomial, control = gctrl)
models$bernoulli_vector <- describe(m, "bernoulli_vector", "contraception.csv",
                                    "usen ~ age + urban + (urban | district)",
                                    "usen ~ 1 + age + urban + (1 + urban|district)",
                                    list(family = "bernoulli"))

# ---- predictions on held-out rows: seen and unseen levels --------------------
# (l) LMM with a random slope: sleepstudy, subjects 308 and 372 held out entirely,
# and the last day of every other subject held out.
test_rows <- sleep$subj %in% c("S308", "S372") | sleep$days == 9
sleep$heldout <- as.integer(test_rows)
write.csv(sleep, "data/sleep_predict.csv", row.names = FALSE)
m <- lmer(reaction ~ days + (days | subj), sleep[!test_rows, ], REML = FALSE, control = ctrl)
models$predict_lmm <- describe(m, "predict_lmm", "sleep_predict.csv",
                               "reaction ~ days + (days | subj)",
                               "reaction ~ 1 + days + (1 + days|subj)",
                               list(reml = FALSE, train = "heldout == 0"))
models$predict_lmm$predictions <- full(predict(m, newdata = sleep[test_rows, ],
                                               allow.new.levels = TRUE))

# (m) Bernoulli GLMM: three districts held out entirely, every 10th woman held out
con$heldout <- as.integer(con$district %in% c("D05", "D17", "D42") | (seq_len(nrow(con)) %% 10 == 0))
write.csv(con, "data/contraception_predict.csv", row.names = FALSE)
tr <- con$heldout == 0
m <- glmer(usen ~ age + urban + livch + (1 | district), con[tr, ], family = binomial,
           control = gctrl)
models$predict_glmm <- describe(m, "predict_glmm", "contraception_predict.csv",
                                "usen ~ age + urban + livch + (1 | district)",
                                "usen ~ 1 + age + urban + livch + (1|district)",
                                list(family = "bernoulli", train = "heldout == 0"))
models$predict_glmm$predictions_response <- full(predict(m, newdata = con[!tr, ],
  type = "response", allow.new.levels = TRUE))
models$predict_glmm$predictions_link <- full(predict(m, newdata = con[!tr, ],
  type = "link", allow.new.levels = TRUE))

out <- list(lme4_version = as.character(packageVersion("lme4")),
            r_version = R.version.string, models = models)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", pretty = TRUE),
           "lme4_reference.json")
cat("wrote", length(models), "models\n")
