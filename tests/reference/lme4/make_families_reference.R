# Reference values for offsets and the families with a dispersion parameter.
#
# Run from this folder:  Rscript make_families_reference.R
# Needs R with lme4, glmmTMB and jsonlite (Debian: r-base-core r-cran-lme4
# r-cran-glmmtmb r-cran-jsonlite). Writes data/owls.csv, data/gamma.csv,
# data/gamma_slope.csv, data/invgauss.csv and families_reference.json; the test
# suite reads only those, never R.
#
# Models:
# - owls_poisson_offset: lme4 glmer, Poisson with offset(log(BroodSize)) on glmmTMB's
#   Owls data (Zuur et al. 2009), with predictions on new rows (their own offsets);
# - owls_nbinom2: glmmTMB nbinom2 (variance mu + mu^2 / shape) on the same model;
# - gamma_log, gamma_inverse, gamma_slope: glmmTMB Gamma on simulated positive
#   responses (log link; the canonical inverse link; a correlated random slope);
# - invgauss_log: glmmTMB has no inverse Gaussian family ("Family not implemented"),
#   and lme4's glmer does not estimate a dispersion by maximum likelihood. The
#   reference is computed here, independently of sklmixed: (a) the Laplace
#   approximation with the exact (observed) Hessian, each level's mode by Newton's
#   method, maximized by nlminb, standard errors from optimHess; (b) the exact
#   marginal likelihood (each level's integral by R's integrate), maximized the
#   same way: the target of adaptive Gauss-Hermite quadrature with many points.
#
# glmmTMB's dispersion parameter: for nbinom2 sigma(m) is the shape; for Gamma,
# sigma(m)^2 is the dispersion phi = 1 / shape (variance phi mu^2). Standard errors
# are glmmTMB's (inverse Hessian over all parameters) and, for lme4, both the
# PIRLS-factor ones (use.hessian = FALSE, what sklmixed reports for the families
# without a dispersion) and lme4's default.

suppressMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})
dir.create("data", showWarnings = FALSE)
full <- function(x) unname(x)
models <- list()

# ---- Owls: Poisson with an offset (lme4) --------------------------------------
data(Owls, package = "glmmTMB")
owls <- Owls[, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime",
                 "SiblingNegotiation", "BroodSize")]
write.csv(owls, "data/owls.csv", row.names = FALSE)
owls_formula <- SiblingNegotiation ~ FoodTreatment + ArrivalTime +
  offset(log(BroodSize)) + (1 | Nest)
sk_owls <- paste("SiblingNegotiation ~ 1 + FoodTreatment + ArrivalTime +",
                 "offset(log(BroodSize)) + (1|Nest)")

gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
m <- glmer(owls_formula, owls, family = poisson, control = gctrl)
# new rows: the first ten nests' first rows with other brood sizes, and a nest
# not seen in the fit (random effect 0)
newd <- owls[!duplicated(owls$Nest), ][1:10, ]
newd$BroodSize <- c(1, 2, 3, 4, 5, 6, 7, 2, 3, 4)
newd$Nest <- as.character(newd$Nest)
newd$Nest[10] <- "Unseen"
write.csv(newd, "data/owls_new.csv", row.names = FALSE)
models$owls_poisson_offset <- list(
  source = paste("lme4", packageVersion("lme4")), data = "owls.csv",
  r_formula = deparse1(owls_formula), sklmixed_formula = sk_owls,
  family = "poisson", link = "log",
  fixef_names = names(fixef(m)), fixef = full(fixef(m)),
  stderror = full(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
  stderror_hessian = full(sqrt(diag(as.matrix(vcov(m))))),
  re_sd = full(attr(VarCorr(m)$Nest, "stddev")),
  loglik = as.numeric(logLik(m)), nobs = nobs(m),
  new_data = "owls_new.csv",
  predictions_response = full(predict(m, newdata = newd, type = "response",
                                      allow.new.levels = TRUE))
)

# ---- Owls: negative binomial (glmmTMB nbinom2) -------------------------------
tmb_describe <- function(m, name, data, r_formula, sk_formula, family, link,
                         dispersion, dispersion_name) {
  vc <- VarCorr(m)$cond
  list(
    source = paste("glmmTMB", packageVersion("glmmTMB")), data = data,
    r_formula = r_formula, sklmixed_formula = sk_formula,
    family = family, link = link,
    fixef_names = names(fixef(m)$cond), fixef = full(fixef(m)$cond),
    stderror = full(sqrt(diag(vcov(m)$cond))),
    re_sd = lapply(vc, function(v) full(attr(v, "stddev"))),
    re_corr = lapply(vc, function(v) unname(as.matrix(attr(v, "correlation")))),
    dispersion = dispersion, dispersion_name = dispersion_name,
    loglik = as.numeric(logLik(m)), nobs = nobs(m),
    converged = m$fit$convergence == 0 && isTRUE(m$sdr$pdHess)
  )
}

m <- glmmTMB(owls_formula, owls, family = nbinom2)
models$owls_nbinom2 <- tmb_describe(m, "owls_nbinom2", "owls.csv",
  deparse1(owls_formula), sk_owls, "negative_binomial", "log",
  sigma(m), "shape (sigma(m) of nbinom2)")
models$owls_nbinom2$new_data <- "owls_new.csv"
models$owls_nbinom2$predictions_response <- full(predict(m, newdata = newd,
  type = "response", allow.new.levels = TRUE))

# ---- Gamma (glmmTMB) ----------------------------------------------------------
set.seed(20261201)
ng <- 30; nper <- 12
g <- sprintf("g%02d", rep(1:ng, each = nper))
x <- rnorm(ng * nper)
b <- rnorm(ng, sd = 0.4)
mu <- exp(1 + 0.5 * x + b[rep(1:ng, each = nper)])
shape <- 4
y <- rgamma(ng * nper, shape = shape, rate = shape / mu)
gam <- data.frame(y = y, x = x, g = g)
write.csv(gam, "data/gamma.csv", row.names = FALSE)

m <- glmmTMB(y ~ x + (1 | g), gam, family = Gamma(link = "log"))
models$gamma_log <- tmb_describe(m, "gamma_log", "gamma.csv", "y ~ x + (1 | g)",
  "y ~ 1 + x + (1|g)", "gamma", "log", sigma(m)^2, "dispersion (sigma(m)^2 of Gamma)")

# glmmTMB starts at beta = 0, an infinite mean for the inverse link: start at the GLM
m <- glmmTMB(y ~ x + (1 | g), gam, family = Gamma(link = "inverse"),
             start = list(beta = coef(glm(y ~ x, data = gam, family = Gamma))))
models$gamma_inverse <- tmb_describe(m, "gamma_inverse", "gamma.csv", "y ~ x + (1 | g)",
  "y ~ 1 + x + (1|g)", "gamma", "inverse", sigma(m)^2, "dispersion (sigma(m)^2 of Gamma)")

# a correlated random intercept and slope: a vector-valued term
set.seed(20261202)
ng <- 40; nper <- 10
gi <- rep(1:ng, each = nper)
x <- runif(ng * nper, -1, 1)
bs <- matrix(rnorm(2 * ng), ng) %*% chol(matrix(c(0.25, 0.06, 0.06, 0.09), 2))
mu <- exp(2 + 0.7 * x + bs[gi, 1] + bs[gi, 2] * x)
y <- rgamma(ng * nper, shape = 6, rate = 6 / mu)
gs <- data.frame(y = y, x = x, g = sprintf("s%02d", gi))
write.csv(gs, "data/gamma_slope.csv", row.names = FALSE)
m <- glmmTMB(y ~ x + (x | g), gs, family = Gamma(link = "log"))
models$gamma_slope <- tmb_describe(m, "gamma_slope", "gamma_slope.csv",
  "y ~ x + (x | g)", "y ~ 1 + x + (1 + x|g)", "gamma", "log", sigma(m)^2,
  "dispersion (sigma(m)^2 of Gamma)")

# ---- inverse Gaussian: computed here ----------------------------------------
# Michael, Schucany and Haas (1976) sampler; lambda = 1 / phi
rinvgauss1 <- function(n, mu, lambda) {
  v <- rnorm(n)^2
  xx <- mu + mu^2 * v / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * v + mu^2 * v^2)
  ifelse(runif(n) <= mu / (mu + xx), xx, mu^2 / xx)
}
set.seed(20261203)
ng <- 25; nper <- 8
gi <- rep(1:ng, each = nper)
x <- rnorm(ng * nper)
mu <- exp(0.5 + 0.3 * x + rnorm(ng, sd = 0.5)[gi])
y <- rinvgauss1(ng * nper, mu, lambda = 1 / 0.2)
ig <- data.frame(y = y, x = x, g = sprintf("h%02d", gi))
write.csv(ig, "data/invgauss.csv", row.names = FALSE)

X <- cbind(1, ig$x)
# log density of the inverse Gaussian with mean mu and variance phi mu^3
ldig <- function(y, mu, phi) -0.5 * (log(2 * pi * phi * y^3) + (y - mu)^2 / (phi * y * mu^2))
# a level's conditional log-likelihood plus log N(u; 0, 1) without its constant
level_fun <- function(u, y, eta0, s, phi) sum(ldig(y, exp(eta0 + s * u), phi)) - u^2 / 2
# Newton's method for the mode (score and observed information of the log link)
level_mode <- function(y, eta0, s, phi) {
  u <- 0
  for (it in 1:100) {
    mu <- exp(eta0 + s * u)
    grad <- s * sum((y - mu) / (phi * mu^2)) - u
    hess <- s^2 * sum((2 * y - mu) / (phi * mu^2)) + 1
    step <- grad / hess
    u <- u + step
    if (abs(step) < 1e-12) break
  }
  mu <- exp(eta0 + s * u)
  list(u = u, h = s^2 * sum((2 * y - mu) / (phi * mu^2)) + 1)
}
groups <- split(seq_len(nrow(ig)), ig$g)
negll <- function(par, exact) {
  beta <- par[1:2]; s <- exp(par[3]); phi <- exp(par[4])
  eta0 <- drop(X %*% beta)
  total <- 0
  for (rows in groups) {
    md <- level_mode(ig$y[rows], eta0[rows], s, phi)
    top <- level_fun(md$u, ig$y[rows], eta0[rows], s, phi)
    if (!exact) {
      total <- total + top - 0.5 * log(md$h)  # Laplace
    } else {
      f <- function(u) sapply(u, function(v)
        exp(level_fun(v, ig$y[rows], eta0[rows], s, phi) - top)) / sqrt(2 * pi)
      sd <- 1 / sqrt(md$h)
      val <- integrate(f, md$u - 12 * sd, md$u + 12 * sd, rel.tol = 1e-12,
                       subdivisions = 1000L)$value
      total <- total + top + log(val)
    }
  }
  -total
}
start <- c(coef(glm(y ~ x, data = ig, family = inverse.gaussian(link = "log"))),
           log(0.3), log(0.2))
ig_fit <- function(exact) {
  # nlminb's default tolerances (rel.tol 1e-10): tighter ones end in "singular
  # convergence" at the same point; optim's BFGS agrees to 1e-6
  opt <- nlminb(start, negll, exact = exact, control = list(eval.max = 2000, iter.max = 1000))
  H <- optimHess(opt$par, negll, exact = exact)
  list(
    source = if (exact) "R integrate (exact marginal likelihood), nlminb" else
      "R Laplace (observed information), nlminb",
    data = "invgauss.csv", sklmixed_formula = "y ~ 1 + x + (1|g)",
    family = "inverse_gaussian", link = "log",
    fixef_names = c("(Intercept)", "x"), fixef = full(opt$par[1:2]),
    stderror = full(sqrt(diag(solve(H)))[1:2]),
    re_sd = list(g = exp(opt$par[3])),
    dispersion = exp(opt$par[4]), dispersion_name = "dispersion (variance phi mu^3)",
    loglik = -opt$objective, nobs = nrow(ig), converged = opt$convergence == 0
  )
}
models$invgauss_log <- ig_fit(FALSE)
models$invgauss_log_exact <- ig_fit(TRUE)

out <- list(r_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")),
            glmmTMB_version = as.character(packageVersion("glmmTMB")),
            models = models)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", pretty = TRUE),
           "families_reference.json")
cat("wrote", length(models), "models\n")
