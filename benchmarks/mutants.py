"""Planted bugs in the numeric core: does the test suite notice each one?

A hand-made mutation test. Each mutant replaces one unique snippet of source text
in ``sklmixed/_core/``, ``sklmixed/_optim.py`` or ``sklmixed/_results.py`` by a
slightly wrong version (a flipped sign, an index off by one, a transposed factor, a
weight where its square root belongs, a dropped term, a changed constant, a skipped
condition). The mutants are applied one at a time to a copy of the package and
tests in a temporary directory (the working tree is never modified), and a fast
subset of the tests runs with ``-x``: a mutant is *killed* when a test fails (or
the run times out), and *survives* when every test passes.

Mutants are defined by their text, not by line numbers, so that the list survives
edits elsewhere in the files: a snippet that is no longer found exactly once is
reported as *skipped*. A mutant known to change nothing observable (*equivalent*)
carries the reason and is neither run nor counted.

Usage (from the repository root)::

    python benchmarks/mutants.py                 # every mutant
    python benchmarks/mutants.py lmm-nobs glmm-  # ids, or id prefixes
    python benchmarks/mutants.py --list          # the mutants, without running
    python benchmarks/mutants.py --tests tests/_core  # another test subset

A survivor runs the whole subset (about two minutes on a loaded two-core machine);
a killed mutant stops at its first failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The fast subset, quickest first (with -x a killed mutant stops at the first
# failure): the core against dense references, the families, then fits against
# MixedModels.jl's printed output and lme4's estimates, weights, inference.
DEFAULT_TESTS = [
    "tests/_core",
    "tests/estimators/test_seed_cases.py",
    "tests/estimators/test_lme4_reference.py",
    "tests/estimators/test_weights_and_variances.py",
    "tests/estimators/test_families_reference.py",
    "tests/estimators/test_nested_vector_term.py",
    "tests/report/test_text.py",
    "tests/inference/test_predict.py",
    "tests/test_optim.py",
]

# Tests run first for a mutant of each file (the rest of the subset follows), so
# that a killed mutant fails early.
FIRST = {
    "_core/_lmm.py": ["tests/_core/test_lmm.py"],
    "_core/_dense.py": ["tests/_core/test_lmm.py"],
    "_core/_sparse.py": ["tests/_core/test_sparse.py"],
    "_core/_glmm.py": ["tests/_core/test_glmm.py"],
    "_core/_families.py": ["tests/_core/test_families.py"],
    "_core/_blocks.py": ["tests/_core/test_blocks.py", "tests/_core/test_lmm.py"],
    "_core/_predictive.py": ["tests/_core/test_predictive.py"],
    "_core/_scaling.py": ["tests/_core/test_scaling.py", "tests/estimators/test_seed_cases.py"],
    "_optim.py": ["tests/test_optim.py", "tests/estimators/test_seed_cases.py"],
    "_results.py": ["tests/estimators/test_seed_cases.py", "tests/report/test_text.py"],
}

# The slowest tests of the subset, left out (a survivor runs everything else):
# MixedModels.jl's fm5 and over-parameterized pages (about 2 minutes between them
# on a loaded machine) and the Gram-split variants of the blocked factorization
# (each structure keeps its default split).
DEFAULT_DESELECT = (
    "not fm5 and not overparameterized and not split1 and not split2 and not split3"
    " and not split4 and not split5 and not split6"
)

TIMEOUT = 900  # seconds; a mutant that makes a fit loop forever is killed


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to sklmixed/
    old: str
    new: str
    what: str
    equivalent: str = ""  # why it changes nothing observable (then not run)


M = Mutant
MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------- _core/_sparse.py
    M(
        "sparse-update-sign",
        "_core/_sparse.py",
        "vals[lv.upos] -= np.add.reduceat",
        "vals[lv.upos] += np.add.reduceat",
        "a level's elimination adds its update instead of subtracting it",
    ),
    M(
        "sparse-lcol",
        "_core/_sparse.py",
        "lcol = c / d[lv.entry_owner]",
        "lcol = c / np.sqrt(d[lv.entry_owner])",
        "the columns of L scaled by the square root of the pivot (Cholesky, not L D L')",
    ),
    M(
        "sparse-tail-logdet",
        "_core/_sparse.py",
        "logdet += 2.0 * float(np.sum(np.log(Lt.diagonal())))",
        "logdet += float(np.sum(np.log(Lt.diagonal())))",
        "the dense tail's log-determinant halved",
    ),
    M(
        "sparse-backward-sign",
        "_core/_sparse.py",
        "y[lv.nodes] = y[lv.nodes] / scale - Lk.T @ y",
        "y[lv.nodes] = y[lv.nodes] / scale + Lk.T @ y",
        "back substitution adds the later nodes' terms",
    ),
    M(
        "sparse-b-lambda",
        "_core/_sparse.py",
        "B = np.concatenate([A[(m, j)].T * s[j] for j in range(m)], axis=0)",
        "B = np.concatenate([A[(m, j)].T for j in range(m)], axis=0)",
        "the [X y] rows not scaled by lambda",
    ),
    M(
        "sparse-inflate",
        "_core/_sparse.py",
        "A[(j, j)] * s[j] ** 2 + 1.0",
        "A[(j, j)] * s[j] ** 2 + 0.5",
        "the identity added to the random effects' diagonal halved",
    ),
    M(
        "sparse-not-independent",
        "_core/_sparse.py",
        "blocked[indices[indptr[v] : indptr[v + 1]]] = True",
        "blocked[v] = True",
        "a level of the elimination may hold adjacent nodes",
    ),
    M(
        "sparse-precondition-x",
        "_core/_sparse.py",
        "xx = trsolve(R, trsolve(R, rx), trans=True)",
        "xx = trsolve(R, rx)",
        "the fixed effects' part of the preconditioner solves with R only",
    ),
    M(
        "lmm-sparse-stale",
        "_core/_lmm.py",
        "self._L_at = self._sf = None",
        "self._L_at = None",
        "a new response keeps the sparse layout's stale factor",
    ),
    M(
        "optim-refine-gradient",
        "_optim.py",
        "for i in range(n)]) / (2.0 * h)",
        "for i in range(n)]) / h",
        "the refinement's gradient twice too large",
    ),
    # ------------------------------------------------------------ _core/_lmm.py
    M(
        "lmm-nobs",
        "_core/_lmm.py",
        "self.nobs = int(positive.sum())",
        "self.nobs = self.n",
        "zero-weight rows counted in nobs",
    ),
    M(
        "lmm-log2pi",
        "_core/_lmm.py",
        "math.log(2.0 * math.pi * r2 / d)",
        "math.log(math.pi * r2 / d)",
        "log(2 pi) -> log(pi) in the profiled objective",
    ),
    M(
        "lmm-reml-d",
        "_core/_lmm.py",
        "d = self.nobs - self.p\n            val += logdet_x",
        "d = self.nobs\n            val += logdet_x",
        "REML objective with d = n instead of n - p",
    ),
    M(
        "lmm-logw-sign",
        "_core/_lmm.py",
        "r2 / d)) - self._logw_sum",
        "r2 / d)) + self._logw_sum",
        "sign of the sum of log prior weights",
    ),
    M(
        "lmm-rdiv-bdiag-transpose",
        "_core/_lmm.py",
        "np.matmul(Lij.data, inv_blocks[Lij.bcol].transpose(0, 2, 1))",
        "np.matmul(Lij.data, inv_blocks[Lij.bcol])",
        "sparse block right-divided by L_jj^-1 instead of L_jj^-T (vector terms)",
    ),
    M(
        "lmm-rdiv-diag-index",
        "_core/_lmm.py",
        "Lij.data /= Ljj[Lij.bcol][:, None, None]",
        "Lij.data /= Ljj[Lij.brow % Ljj.shape[0]][:, None, None]",
        "sparse block divided by the wrong diagonal entries (row index)",
    ),
    M(
        "lmm-u-beta-sign",
        "_core/_lmm.py",
        "rhs = Lmj[p, :] - Lmj[:p, :].T @ beta",
        "rhs = Lmj[p, :] + Lmj[:p, :].T @ beta",
        "sign of the fixed effects in the back-substitution for u",
    ),
    M(
        "lmm-u-crossed-drop",
        "_core/_lmm.py",
        "rhs = rhs - _tmul(L[(i, j)], self.Lkind[(i, j)], ui.reshape(-1))",
        "rhs = rhs",
        "back-substitution for u ignores the later terms",
    ),
    M(
        "lmm-condvar-first-block",
        "_core/_lmm.py",
        'G += np.einsum("qla,qlb->lab", Y3, Y3)',
        'G = np.einsum("qla,qlb->lab", Y3, Y3)',
        "conditional variance keeps only the last block of L^-1",
    ),
    M(
        "lmm-leverage-weights",
        "_core/_lmm.py",
        "zl = (problem.zs[j][rows] @ lams[j]) * sw[rows, None]",
        "zl = problem.zs[j][rows] @ lams[j]",
        "leverage ignores the prior weights in the random-effects rows",
    ),
    M(
        "lmm-scaled-diag-identity",
        "_core/_lmm.py",
        "blk[:, np.arange(k), np.arange(k)] += 1.0",
        "blk[:, np.arange(k), np.arange(k)] += 1.0 + 1e-6",
        "I in Lambda'Z'Z Lambda + I perturbed (blocked path, vector terms)",
    ),
    M(
        "lmm-dense-reml-logdet",
        "_core/_dense.py",
        "2.0 * (logd[q:].sum() - logd[-1]), r * r",
        "2.0 * logd[q:].sum(), r * r",
        "small-model REML log|L_X|^2 includes the residual's diagonal",
    ),
    M(
        "lmm-rank-tol",
        "_core/_lmm.py",
        "if s[-1] > tol * max(1.0, s[0]):",
        "if s[-1] > 0.0:",
        "rank-deficient columns kept (no tolerance)",
    ),
    M(
        "lmm-rxx-transpose",
        "_core/_lmm.py",
        "return np.asarray(Rinv.T @ Rinv)",
        "return np.asarray(Rinv @ Rinv.T)",
        "(R R')^-1 computed as R^-1 R^-T",
    ),
    M(
        "lmm-A-sqrtw",
        "_core/_lmm.py",
        "zw = z if w is None else z * w[:, None]",
        "zw = z if w is None else z * np.sqrt(w)[:, None]",
        "Z'WZ built with sqrt weights",
    ),
    M(
        "lmm-set-response-sqrtw",
        "_core/_lmm.py",
        "wy = values if self.sqrtw is None else values * self.sqrtw**2",
        "wy = values if self.sqrtw is None else values * self.sqrtw",
        "new response weighted by sqrt weights (bootstrap path)",
    ),
    M(
        "lmm-flip-rows",
        "_core/_lmm.py",
        "lam[:, neg] *= -1.0",
        "lam[neg, :] *= -1.0",
        "flip of a lambda column's sign applied to a row",
    ),
    M(
        "lmm-gram-c2",
        "_core/_lmm.py",
        "c2 = (lams[j][0, 0] * lams[0][0, 0]) ** 2",
        "c2 = lams[j][0, 0] * lams[0][0, 0]",
        "cached rank update of crossed scalar terms not squared",
    ),
    M(
        "lmm-offdiag-lam-transpose",
        "_core/_lmm.py",
        "out = (lam_i.T @ out.reshape(-1, ki, cols)).reshape(rows, cols)",
        "out = (lam_i @ out.reshape(-1, ki, cols)).reshape(rows, cols)",
        "dense off-diagonal block scaled by lambda_i instead of lambda_i'",
    ),
    # ----------------------------------------------------------- _core/_glmm.py
    M(
        "glmm-gh-weights",
        "_core/_glmm.py",
        "return z, w / np.sqrt(2.0 * np.pi)",
        "return z, w / np.sqrt(np.pi)",
        "Gauss-Hermite weights normalized with sqrt(pi)",
    ),
    M(
        "glmm-fisher-weight",
        "_core/_glmm.py",
        "self.lmm, self.pw * dmu**2 / var, eta",
        "self.lmm, self.pw * dmu / var, eta",
        "working weights mu' / V instead of mu'^2 / V",
    ),
    M(
        "glmm-working-offset",
        "_core/_glmm.py",
        "self.pw * dmu**2 / var, eta + (self.y - mu) / dmu - self.offset",
        "self.pw * dmu**2 / var, eta + (self.y - mu) / dmu",
        "offset left in the working response",
    ),
    M(
        "glmm-observed-info-sign",
        "_core/_glmm.py",
        "info = dmu**2 / v - (self.y - mu) * (d2mu / v - dmu**2 * dv / v**2)",
        "info = dmu**2 / v + (self.y - mu) * (d2mu / v - dmu**2 * dv / v**2)",
        "sign of the observed information's correction",
    ),
    M(
        "glmm-agq-z2",
        "_core/_glmm.py",
        "mult += np.exp((z**2 - devc + devc0) / 2.0) * w",
        "mult += np.exp((-devc + devc0) / 2.0) * w",
        "AGQ without the z^2 / 2 of the normal density",
    ),
    M(
        "glmm-agq-sd",
        "_core/_glmm.py",
        "np.sum(np.log(mult)) + np.sum(np.log(sd))",
        "np.sum(np.log(mult))",
        "AGQ without the scale's Jacobian",
    ),
    M(
        "glmm-devresid-scale",
        "_core/_glmm.py",
        "self.family.unit_deviance(self.y, mu) / self.family.scale",
        "self.family.unit_deviance(self.y, mu)",
        "deviance residuals not divided by the dispersion",
    ),
    M(
        "glmm-hessian-half",
        "_core/_glmm.py",
        "R = np.linalg.inv(np.linalg.cholesky(H / 2.0))",
        "R = np.linalg.inv(np.linalg.cholesky(H))",
        "Hessian of -2 log L taken as the information",
    ),
    M(
        "glmm-saturated-sign",
        "_core/_glmm.py",
        "value -= 2.0 * self.saturated_loglik()",
        "value += 2.0 * self.saturated_loglik()",
        "sign of the saturated log-likelihood (families with a dispersion)",
    ),
    M(
        "glmm-laplace-fisher-lmm",
        "_core/_glmm.py",
        "w = self.pw * dmu**2 / (fam.variance(mu) * fam.scale)",
        "w = self.pw * dmu**2 / fam.variance(mu)",
        "factor for vcov/condvar ignores the dispersion (Newton path)",
    ),
    # ------------------------------------------------------- _core/_families.py
    M(
        "fam-probit-mu-eta",
        "_core/_families.py",
        "np.maximum(stats.norm.pdf(eta), _EPS)",
        "np.maximum(stats.norm.pdf(eta) / 2.0, _EPS)",
        "probit derivative halved",
    ),
    M(
        "fam-cloglog-mu-eta",
        "_core/_families.py",
        "np.exp(eta - np.exp(eta))",
        "np.exp(-np.exp(eta))",
        "cloglog derivative without the exp(eta) factor",
    ),
    M(
        "fam-cauchit-inverse",
        "_core/_families.py",
        "0.5 + np.arctan(eta) / np.pi",
        "0.5 + np.arctan(eta) / (2.0 * np.pi)",
        "cauchit inverse link squeezed",
    ),
    M(
        "fam-sqrt-mu-eta",
        "_core/_families.py",
        "np.maximum(2.0 * eta, _EPS)",
        "np.maximum(eta, _EPS)",
        "sqrt link derivative without its factor 2",
    ),
    M(
        "fam-poisson-factorial",
        "_core/_families.py",
        "special.xlogy(y, mu) - mu - special.gammaln(y + 1)",
        "special.xlogy(y, mu) - mu - special.gammaln(y)",
        "log y! as lgamma(y)",
    ),
    M(
        "fam-nb-variance",
        "_core/_families.py",
        "return mu + mu**2 / self.param",
        "return mu + mu**2 * self.param",
        "negative binomial variance with theta instead of 1/theta",
    ),
    M(
        "fam-gamma-loglik",
        "_core/_families.py",
        "a * np.log(a * r) - a * r - np.log(y) - special.gammaln(a)",
        "a * np.log(a * r) - a * r - special.gammaln(a)",
        "Gamma log-density without -log y",
    ),
    M(
        "fam-ig-deviance",
        "_core/_families.py",
        "return np.asarray((y - mu) ** 2 / (y * mu**2))",
        "return np.asarray((y - mu) ** 2 / (y * mu))",
        "inverse Gaussian unit deviance with mu instead of mu^2",
    ),
    M(
        "fam-binomial-deviance",
        "_core/_families.py",
        "+ special.xlogy(1.0 - y, 1.0 - y)\n",
        "\n",
        "binomial unit deviance without the (1-y) log(1-y) term",
    ),
    M(
        "fam-bernoulli-mustart",
        "_core/_families.py",
        "return np.asarray((wt * y + 0.5) / (wt + 1.0))",
        "return np.asarray((wt * y + 0.5) / (wt + 2.0))",
        "Bernoulli starting means",
        equivalent="starting means of the GLM fit only: PIRLS and the optimizer "
        "converge to the same optimum",
    ),
    # ------------------------------------------------------- _core/_scaling.py
    M(
        "scal-objective-offset",
        "_core/_scaling.py",
        "off += 2.0 * d * math.log(self.y_scale)",
        "off += d * math.log(self.y_scale)",
        "objective on the user's scale: d log s_y instead of 2 d log s_y",
    ),
    M(
        "scal-reml-offset-sign",
        "_core/_scaling.py",
        "off -= 2.0 * float(np.sum(np.log(diag)))",
        "off += 2.0 * float(np.sum(np.log(diag)))",
        "REML objective: sign of log|T|",
    ),
    M(
        "scal-beta-shift",
        "_core/_scaling.py",
        "out[0] += self.y_shift / self.intercept_value",
        "out[0] += self.y_shift",
        "response centre added to the intercept without dividing by its value",
    ),
    M(
        "scal-vcov-transpose",
        "_core/_scaling.py",
        "V = Tk @ V @ Tk.T",
        "V = Tk.T @ V @ Tk",
        "covariance of beta mapped with T' instead of T",
    ),
    M(
        "scal-condvar-identity",
        "_core/_scaling.py",
        "return np.asarray(ts.G @ V @ ts.G.T)",
        "return np.asarray(V)",
        "conditional variances left on the internal columns",
    ),
    M(
        "scal-shear-v",
        "_core/_scaling.py",
        "M[icol, :] -= np.asarray(centre) / (v * sc)",
        "M[icol, :] -= np.asarray(centre) / sc",
        "centring against an intercept column whose value is not 1",
        equivalent="any centre is a reparametrization that T maps back exactly (the "
        "user's results are unchanged; only the conditioning of the internal columns "
        "differs); the response's shift divides by the intercept's value elsewhere",
    ),
    M(
        "scal-u-transpose",
        "_core/_scaling.py",
        "out = u @ Q.T",
        "out = u @ Q",
        "spherical random effects rotated by Q' instead of Q",
    ),
    M(
        "scal-b-scale",
        "_core/_scaling.py",
        "out = b if ts.identity else b @ ts.G.T\n        return out * self.y_scale if",
        "out = b if ts.identity else b @ ts.G\n        return out * self.y_scale if",
        "random effects mapped with G' instead of G",
    ),
    # --------------------------------------------------------- _core/_blocks.py
    M(
        "blk-values-transpose",
        "_core/_blocks.py",
        "prod = np.matmul(S.data[self.ia], T.data[self.ib].transpose(0, 2, 1))",
        "prod = np.matmul(S.data[self.ia], T.data[self.ib])",
        "block product S_a T_b instead of S_a T_b'",
    ),
    M(
        "blk-subtract-cols",
        "_core/_blocks.py",
        "c = (self.ucol[:, None] * self.kj + np.arange(self.kj))[:, None, :]",
        "c = (self.ucol[:, None] * self.ki + np.arange(self.kj))[:, None, :]",
        "dense update's column offsets with the row block size",
    ),
    # ----------------------------------------------------- _core/_predictive.py
    M(
        "pred-gauss-woodbury-sign",
        "_core/_predictive.py",
        "quad -= float(c @ fac.solve(c))",
        "quad += float(c @ fac.solve(c))",
        "sign of the Woodbury correction in the Gaussian density",
    ),
    M(
        "pred-laplace-half",
        "_core/_predictive.py",
        "val -= 0.5 * _SPDFactor(V, f.curvature(f.eta(u))).logdet()",
        "val -= _SPDFactor(V, f.curvature(f.eta(u))).logdet()",
        "Laplace log-determinant not halved",
    ),
    M(
        "pred-agq-z2",
        "_core/_predictive.py",
        "terms += w * np.exp(g(u + z * sd) - g0 + 0.5 * z * z)",
        "terms += w * np.exp(g(u + z * sd) - g0)",
        "AGQ of new groups without the z^2 / 2",
    ),
    M(
        "pred-curvature-sign",
        "_core/_predictive.py",
        "return np.asarray(W - self.wt * (self.y - mu)",
        "return np.asarray(W + self.wt * (self.y - mu)",
        "sign of the observed-information correction (new groups)",
    ),
    # --------------------------------------------------------------- _optim.py
    M(
        "opt-no-snap",
        "_optim.py",
        "if theta[i] == 0.0 or abs(theta[i]) >= SNAP_TOL:",
        "if True:",
        "numerically-zero diagonals of lambda never snapped to zero",
    ),
    M(
        "opt-no-polish",
        "_optim.py",
        "if polish.fmin < opt.fmin:",
        "if False:",
        "boundary trap detected but the unbounded polish discarded",
    ),
    M(
        "opt-glmm-no-joint",
        "_optim.py",
        "    if not fast:\n        p = beta.shape[0]",
        "    if False:\n        p = beta.shape[0]",
        "GLMM joint (beta, theta) stage skipped",
    ),
    M(
        "opt-no-recentre",
        "_optim.py",
        "if problem.recentre_response(r2):",
        "if False:",
        "response never recentred when r^2 is tiny beside y'y",
    ),
    M(
        "opt-glmm-no-flip",
        "_optim.py",
        "theta = problem.lmm.flip_theta(opt2.final[p:])",
        "theta = opt2.final[p:]",
        "GLMM theta not flipped to non-negative diagonals after the joint stage",
    ),
    # ------------------------------------------------------------- _results.py
    M(
        "res-corr-abs",
        "_results.py",
        "corr = cov / np.outer(sd, sd)",
        "corr = np.abs(cov) / np.outer(sd, sd)",
        "every correlation positive",
    ),
    M(
        "res-aicc",
        "_results.py",
        "aicc = aic + 2 * dof * (dof + 1) / denom",
        "aicc = aic + dof * (dof + 1) / denom",
        "AICc correction halved",
    ),
    M(
        "res-bic",
        "_results.py",
        "objective + dof * np.log(nobs)",
        "objective + dof * np.log(nobs - 1)",
        "BIC with log(n - 1)",
    ),
    M(
        "res-lmm-dof",
        "_results.py",
        "dof = problem.p + problem.ntheta + 1",
        "dof = problem.p + problem.ntheta",
        "LMM degrees of freedom without sigma",
    ),
    M(
        "res-glmm-loglik-logdet",
        "_results.py",
        "- (usq + lmm.logdet_re()) / 2",
        "- usq / 2",
        "GLMM log-likelihood without the log-determinant",
    ),
    M(
        "res-nlevels-zero-weights",
        "_results.py",
        "int(np.unique(t.refs[positive]).shape[0])",
        "t.nlevels",
        "levels seen only in zero-weight rows counted",
    ),
    M(
        "res-glmm-dof-dispersion",
        "_results.py",
        "dof = lmm.p + lmm.ntheta + int(family.has_dispersion)",
        "dof = lmm.p + lmm.ntheta",
        "GLMM degrees of freedom without the dispersion",
    ),
]


def _copy_tree(dest: Path) -> None:
    """What the tests need: the package, the tests, the data sets, the config."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "sklmixed", dest / "sklmixed", ignore=ignore)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=ignore)
    shutil.copytree(ROOT / "datasets", dest / "datasets")
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _run_tests(cwd: Path, tests: list[str], select: str) -> tuple[str, float, str]:
    """('killed' | 'survived' | 'timeout', seconds, the first failure or the summary)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    if select:
        cmd += ["-k", select]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", CI="true")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    summary = [ln for ln in lines if not set(ln) <= set(".sxX% [0-9]")]
    last = failed[0] if failed else (summary[-1] if summary else "")
    return ("survived" if proc.returncode == 0 else "killed"), seconds, last[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="mutant ids or id prefixes (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="test paths to run")
    parser.add_argument("-k", dest="select", default=DEFAULT_DESELECT, help="pytest -k expression")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTANTS if not args.ids or any(m.id.startswith(p) for p in args.ids)]
    if args.list:
        for m in chosen:
            flag = " (equivalent)" if m.equivalent else ""
            print(f"{m.id:28s} {m.file:22s} {m.what}{flag}")
        return 0

    counts = {"killed": 0, "survived": 0, "timeout": 0, "skipped": 0, "equivalent": 0}
    survivors: list[Mutant] = []
    with tempfile.TemporaryDirectory(prefix="sklmixed-mutants-") as tmp:
        work = Path(tmp)
        _copy_tree(work)
        for m in chosen:
            if m.equivalent:
                counts["equivalent"] += 1
                print(f"{m.id:28s} equivalent  {m.equivalent}", flush=True)
                continue
            path = work / "sklmixed" / m.file
            original = path.read_text()
            if original.count(m.old) != 1:
                counts["skipped"] += 1
                print(f"{m.id:28s} skipped     snippet found {original.count(m.old)} times")
                continue
            path.write_text(original.replace(m.old, m.new))
            try:
                first = FIRST.get(m.file, []) if args.tests == DEFAULT_TESTS else []
                tests = first + args.tests
                status, seconds, last = _run_tests(work, tests, args.select)
            finally:
                path.write_text(original)
            counts[status] += 1
            if status == "survived":
                survivors.append(m)
            print(f"{m.id:28s} {status:11s} {seconds:6.1f}s  {last}", flush=True)

    print()
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    for m in survivors:
        print(f"  survived: {m.id} ({m.file}): {m.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
