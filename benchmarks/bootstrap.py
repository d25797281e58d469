"""Time a parametric bootstrap of the sleepstudy model with sklmixed and its peers.

Usage::

    python benchmarks/bootstrap.py [--n-boot 500] [--repeats 5] [--peers sklmixed mixedlm lme4]

The model is ``reaction ~ 1 + days + (1 + days|subj)`` fitted by maximum likelihood.
Each peer draws ``n_boot`` responses from the fitted model and refits it to each:
sklmixed's ``model.bootstrap``, mixedlm's ``bootMer`` and lme4's ``bootMer`` (through
Rscript, timed inside R). The Python peers take turns in each round (one warm-up
round first) so that the machine's load falls on both alike; the median over the
rounds is printed with the ratio peer time / sklmixed time (above 1: sklmixed is
faster), the median CPU time of the process (``time.process_time``: on a machine
that other jobs keep busy, wall time overstates what the run costs) and, as a check
that the runs did the same work, the mean of the replicates' residual SD. Missing
peers print ``n/a``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklmixed import MixedLMRegressor, load_dataset  # noqa: E402

FORMULA = "reaction ~ 1 + days + (1 + days|subj)"


def sklmixed_runner(df, n_boot):
    model = MixedLMRegressor(formula=FORMULA).fit(df)
    seed = iter(range(10**6))

    def run():
        boot = model.bootstrap(n_boot=n_boot, random_state=next(seed))
        return float(boot.replicates["sigma"].mean())

    return run


def mixedlm_runner(df, n_boot):
    import mixedlm

    model = mixedlm.lmer(FORMULA, df, REML=False)
    seed = iter(range(10**6))

    def run():
        res = mixedlm.bootMer(model, nsim=n_boot, seed=next(seed))
        return float(res.sigma_samples.mean())

    return run


LME4_SCRIPT = """
suppressMessages(library(lme4))
d <- read.csv("{csv}")
m <- lmer(reaction ~ 1 + days + (1 + days | subj), d, REML = FALSE)
f <- function(x) sigma(x)
invisible(bootMer(m, f, nsim = 20, seed = 1))
times <- c()
for (r in 1:{repeats}) {{
  t0 <- Sys.time()
  b <- bootMer(m, f, nsim = {n_boot}, seed = r)
  times <- c(times, as.numeric(difftime(Sys.time(), t0, units = "secs")))
}}
cat(median(times), mean(b$t), "\\n")
"""


def lme4_time(df, n_boot, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "sleep.csv"
        df.to_csv(csv, index=False)
        script = LME4_SCRIPT.format(csv=csv.as_posix(), n_boot=n_boot, repeats=repeats)
        try:
            out = subprocess.run(
                ["Rscript", "-e", script], capture_output=True, text=True, timeout=3600
            )
        except FileNotFoundError:
            return None, "Rscript not found"
        if out.returncode != 0:
            return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
        seconds, sigma = map(float, out.stdout.split())
        return seconds, sigma


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peers", nargs="+", default=["sklmixed", "mixedlm", "lme4"])
    args = parser.parse_args(argv)
    df = load_dataset("sleepstudy")

    runners = {"sklmixed": sklmixed_runner(df, args.n_boot)}
    notes = {}
    if "mixedlm" in args.peers:
        try:
            runners["mixedlm"] = mixedlm_runner(df, args.n_boot)
        except ImportError:
            notes["mixedlm"] = "n/a (pip install mixedlm)"
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    sigmas = {}
    for round_ in range(args.repeats + 1):  # round 0 is the warm-up
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            sigmas[name] = run()
            if round_:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    medians = {name: statistics.median(v) for name, v in times.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpu.items()}
    if "lme4" in args.peers:
        seconds, sigma = lme4_time(df, args.n_boot, args.repeats)
        if seconds is None:
            notes["lme4"] = f"n/a ({sigma})"
        else:
            medians["lme4"], sigmas["lme4"] = seconds, sigma

    base = medians["sklmixed"]
    print(f"parametric bootstrap, {args.n_boot} replicates of sleepstudy `{FORMULA}` (ML)")
    print(f"medians of {args.repeats} rounds\n")
    print(f"{'peer':10s} {'time':>9s} {'ratio':>7s} {'CPU time':>9s} {'mean sigma':>11s}")
    for name in ["sklmixed", "mixedlm", "lme4"]:
        if name in medians:
            ratio = medians[name] / base
            c = f"{cpu_medians[name]:8.3f}s" if name in cpu_medians else f"{'-':>9s}"
            print(f"{name:10s} {medians[name]:8.3f}s {ratio:6.2f}x {c} {sigmas[name]:11.4f}")
        elif name in notes:
            print(f"{name:10s} {notes[name]}")


if __name__ == "__main__":
    main()
