"""Time profile confidence intervals: sklmixed's ``profile_confint`` against lme4's
``confint(m, method = "profile")``.

Usage::

    python benchmarks/profile.py [--models sleepstudy penicillin] [--repeats N] [--no-lme4]

Each model is fitted once; the profile intervals are then computed once as a
warm-up and N times timed (``time.perf_counter``; lme4 inside one Rscript process
with ``Sys.time``). Medians are printed with the ratio lme4 / sklmixed (above 1:
sklmixed is faster) and the largest relative difference between the two sets of
limits (lme4 interpolates a spline through its profile; see
tests/inference/test_profile.py for why they differ at the 1e-5 level). The
machine is shared and noisy: compare ratios from one run.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklmixed import MixedLMRegressor, load_dataset  # noqa: E402
from sklmixed.inference import profile_confint  # noqa: E402

# name: dataset, sklmixed formula, lme4 formula, REML
MODELS = {
    "sleepstudy": (
        "sleepstudy",
        "reaction ~ 1 + days + (1 + days|subj)",
        "reaction ~ 1 + days + (1 + days|subj)",
        False,
    ),
    "sleepstudy_reml": (
        "sleepstudy",
        "reaction ~ 1 + days + (1 + days|subj)",
        "reaction ~ 1 + days + (1 + days|subj)",
        True,
    ),
    "penicillin": (
        "penicillin",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        False,
    ),
}

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = TRUE)
m <- lmer(as.formula(args[2]), df, REML = as.logical(args[3]))
reps <- as.integer(args[4])
ci <- confint(m, method = "profile")  # warm-up
times <- numeric(reps)
for (i in seq_len(reps)) {
  t0 <- Sys.time()
  ci <- suppressWarnings(confint(m, method = "profile"))
  times[i] <- as.numeric(Sys.time() - t0, units = "secs")
}
cat(median(times), "\n")
write.csv(ci, args[5])
"""


def time_sklmixed(model, repeats):
    profile_confint(model)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ci = profile_confint(model)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ci


def time_lme4(dataset, formula, reml, repeats):
    if shutil.which("Rscript") is None:
        return None, None, "Rscript not found"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.csv"
        load_dataset(dataset).to_csv(data, index=False)
        script = Path(tmp) / "profile.R"
        script.write_text(R_SCRIPT)
        out = Path(tmp) / "ci.csv"
        proc = subprocess.run(
            ["Rscript", str(script), str(data), formula, str(reml).upper(), str(repeats), str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return None, None, proc.stderr.strip().splitlines()[-1:]
        seconds = float(proc.stdout.split()[0])
        rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
        limits = np.array([[float(v) for v in r[1:]] for r in rows])
        return seconds, limits, None


def _lme4_order(ci):
    """Our rows in lme4's order (.sig's in theta order, .sigma, fixed effects);
    for the models here, theta order is sd, corr, sd within each term."""
    fixed = [r for r in ci.index if not r.startswith(("sd(", "corr(")) and r != "sigma"]
    vc = [r for r in ci.index if r.startswith(("sd(", "corr("))]
    ordered = []
    terms: dict = {}
    for r in vc:
        terms.setdefault(r[r.index("(") + 1 : r.index(":")], []).append(r)
    for rows in terms.values():
        sds = [r for r in rows if r.startswith("sd(")]
        corrs = [r for r in rows if r.startswith("corr(")]
        if corrs and len(sds) == 2:
            ordered += [sds[0], corrs[0], sds[1]]
        else:
            ordered += sds + corrs
    return ci.loc[ordered + ["sigma"] + fixed].to_numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-lme4", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = {}
    print(f"{'model':<18}{'sklmixed':>12}{'lme4':>12}{'ratio':>9}{'max rel. diff':>15}")
    for name in args.models:
        dataset, formula, lme4_formula, reml = MODELS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MixedLMRegressor(formula=formula, reml=reml).fit(load_dataset(dataset))
        ours, ci = time_sklmixed(model, args.repeats)
        theirs, limits, why = (None, None, "skipped")
        if not args.no_lme4:
            theirs, limits, why = time_lme4(dataset, lme4_formula, reml, args.repeats)
        diff = ""
        if limits is not None and not reml:  # lme4 profiles a REML fit by ML
            ref = limits
            mine = _lme4_order(ci)
            diff = f"{np.max(np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-8)):.1e}"
        lme4_txt = f"{theirs:.3f} s" if theirs is not None else f"n/a ({why})"
        ratio = f"{theirs / ours:.1f}x" if theirs is not None else ""
        print(f"{name:<18}{ours:>10.3f} s{lme4_txt:>12}{ratio:>9}{diff:>15}")
        results[name] = {"sklmixed_s": ours, "lme4_s": theirs}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
