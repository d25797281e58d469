"""Time the offset and dispersion-family models against glmmTMB (and lme4).

Usage::

    python benchmarks/families.py [--models owls_nbinom2 gamma_log ...] [--repeats N]
                                  [--peers sklmixed glmmTMB lme4] [--json out.json]

The models are those of ``tests/reference/lme4/families_reference.json`` (data in
``tests/reference/lme4/data``): Poisson with an offset and the negative binomial on
glmmTMB's Owls data, the Gamma with log and inverse links and with a random slope,
and the inverse Gaussian (which glmmTMB does not have). Each peer fits in-process:
one warm-up fit, then N timed fits, and the median is reported with -2 log L so that
a fast but different fit shows. sklmixed runs in this process (``time.perf_counter``);
glmmTMB and lme4 each in one Rscript process (``Sys.time``), in the same run. lme4's
peer is ``glmer`` for the Poisson model and ``glmer.nb`` for the negative binomial
(an outer optimization of the shape around glmer fits); its Gamma and inverse
Gaussian GLMMs do not estimate the dispersion by maximum likelihood, so are left out.
Ratios are peer time / sklmixed time: above 1 means sklmixed is faster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklmixed import MixedGLMRegressor  # noqa: E402

REFDIR = ROOT / "tests" / "reference" / "lme4"
REF = json.loads((REFDIR / "families_reference.json").read_text())["models"]
# the inverse Gaussian's "exact" reference is the same model as invgauss_log
MODELS = [name for name in REF if name != "invgauss_log_exact"]
PEERS = ["sklmixed", "glmmTMB", "lme4"]

_R_FAMILY = {
    ("poisson", "log"): "poisson",
    ("negative_binomial", "log"): "nbinom2",
    ("gamma", "log"): 'Gamma(link = "log")',
    ("gamma", "inverse"): 'Gamma(link = "inverse")',
}

_R_SCRIPT = r"""
suppressMessages({library(lme4); library(glmmTMB)})
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = TRUE)
form <- as.formula(args[2]); peer <- args[3]; family <- eval(parse(text = args[4]))
n <- as.integer(args[5])
fit <- function() {
  if (peer == "glmmTMB") {
    if (identical(args[4], 'Gamma(link = "inverse")')) {
      # glmmTMB starts at beta = 0 (an infinite mean for this link): start at the GLM
      start <- coef(glm(nobars(form), data = df, family = Gamma))
      glmmTMB(form, df, family = family, start = list(beta = start))
    } else glmmTMB(form, df, family = family)
  } else if (identical(args[4], "nbinom2")) glmer.nb(form, df)
  else glmer(form, df, family = family)
}
m <- suppressWarnings(fit())
times <- numeric(n)
for (i in seq_len(n)) {
  t0 <- Sys.time(); m <- suppressWarnings(fit())
  times[i] <- as.numeric(Sys.time() - t0, units = "secs")
}
cat(sprintf('{"median": %.9f, "objective": %.10f}\n', median(times), -2 * as.numeric(logLik(m))))
"""


def r_formula(name: str) -> str:
    ref = REF[name]
    return ref.get("r_formula") or ref["sklmixed_formula"].replace("(1 + x|g)", "(x | g)")


def run_r(name: str, peer: str, repeats: int) -> tuple[float, float]:
    if shutil.which("Rscript") is None:
        raise RuntimeError("Rscript not found")
    ref = REF[name]
    family = _R_FAMILY.get((ref["family"], ref["link"]))
    if family is None:
        raise NotImplementedError(f"{peer} has no {ref['family']} family with ML dispersion")
    if peer == "lme4" and ref["family"] not in ("poisson", "negative_binomial"):
        raise NotImplementedError("glmer's Gamma GLMM does not estimate the dispersion by ML")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.R"
        script.write_text(_R_SCRIPT)
        out = subprocess.run(
            [
                "Rscript",
                str(script),
                str(REFDIR / "data" / ref["data"]),
                r_formula(name),
                peer,
                family,
                str(repeats),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "Rscript failed")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["median"], res["objective"]


def run_sklmixed(name: str, repeats: int) -> tuple[float, float]:
    ref = REF[name]
    df = pd.read_csv(REFDIR / "data" / ref["data"])

    def fit():
        return MixedGLMRegressor(
            formula=ref["sklmixed_formula"], family=ref["family"], link=ref["link"]
        ).fit(df)

    model = fit()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), -2.0 * model.loglik_


def _fmt(seconds):
    if seconds is None:
        return "      n/a   "
    return f"{seconds * 1e3:9.1f} ms" if seconds < 1 else f"{seconds:9.3f} s "


def main(argv=None) -> int:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS, choices=MODELS)
    parser.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    parser.add_argument("--repeats", type=int, default=7, help="timed fits per model")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results: dict = {}
    for name in args.models:
        results[name] = {}
        for peer in args.peers:
            try:
                if peer == "sklmixed":
                    median, objective = run_sklmixed(name, args.repeats)
                else:
                    median, objective = run_r(name, peer, args.repeats)
                results[name][peer] = {"median": median, "objective": objective}
            except Exception as exc:  # noqa: BLE001 - report and carry on
                why = str(exc).splitlines()[0][:70] if str(exc) else type(exc).__name__
                results[name][peer] = {"median": None, "objective": None, "reason": why}
        ours = results[name].get("sklmixed", {}).get("median")
        print(
            f"\n{name}: {REF[name]['sklmixed_formula']} ({REF[name]['family']}, "
            f"{REF[name]['link']}; {args.repeats} timed fits)"
        )
        for peer, r in results[name].items():
            ratio = ""
            if r["median"] is not None and ours and peer != "sklmixed":
                ratio = f"  {r['median'] / ours:6.2f}x sklmixed's time"
            obj = f"  -2 logL {r['objective']:.4f}" if r["objective"] is not None else ""
            reason = f"  ({r['reason']})" if r.get("reason") else ""
            print(f"  {peer:9s} {_fmt(r['median'])}{obj}{ratio}{reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
