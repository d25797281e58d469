"""Fit the reference models with sklmixed and its peers; print median times and ratios.

Usage::

    python benchmarks/run.py [--models dyestuff2 sleepstudy ...] [--repeats N]
                             [--peers sklmixed lme4 mixedlm statsmodels] [--json out.json]
                             [--busy] [--busy-ratio]

Every peer fits the same model in-process: one warm-up fit, then N timed fits
(``time.perf_counter``; the Python peers take turns in each round so that the
machine's load falls on all alike; lme4 inside one Rscript process with
``Sys.time``); the
median is reported with the objective (-2 log L or the GLMM deviance) so that a
fast but wrong fit shows. A peer that is not installed, or cannot fit a model,
prints ``n/a`` and the reason. Ratios are peer time / sklmixed time: above 1 means
sklmixed is faster. The machine is shared and noisy: compare ratios from one run.

``--busy`` runs a process that spins on one core (``while True: pass``) beside
the timings, as a user's laptop always has something else running: a fit whose
BLAS thread pool waits for a taken core shows here. ``--busy-ratio`` times each
peer alone in child processes, idle and busy alternately, and prints busy / idle
per model (peers interleaved in one process slow each other down when a core is
taken: their thread pools spin after their own fits).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
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

from sklmixed import load_dataset  # noqa: E402

VERBAGG = "r2 ~ 1 + anger + gender + btype + situ + mode + (1|subj) + (1|item)"
CONTRA = "use ~ 1 + age + I(age**2) + livch + urban + (1|dist)"

# name: dataset, sklmixed formula, lme4 formula, kind, options, default repeats
MODELS = {
    "dyestuff2": ("dyestuff2", "yield ~ 1 + (1|batch)", "yield ~ 1 + (1|batch)", "lmm", {}, 50),
    "sleepstudy": (
        "sleepstudy",
        "reaction ~ 1 + days + (1 + days|subj)",
        "reaction ~ 1 + days + (1 + days|subj)",
        "lmm",
        {},
        30,
    ),
    "penicillin": (
        "penicillin",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        "lmm",
        {},
        30,
    ),
    "insteval": (
        "insteval",
        "y ~ 1 + service*dept + (1|s) + (1|d)",
        "y ~ 1 + service*dept + (1|s) + (1|d)",
        "lmm",
        {},
        3,
    ),
    "verbagg": ("verbagg", VERBAGG, VERBAGG.replace("r2 ~", "r2n ~"), "glmm", {}, 3),
    "verbagg_fast": (
        "verbagg",
        VERBAGG,
        VERBAGG.replace("r2 ~", "r2n ~"),
        "glmm",
        {"fast": True},
        5,
    ),
    "contra_nagq9": ("contra", CONTRA, CONTRA.replace("use ~", "usen ~"), "glmm", {"nagq": 9}, 5),
}


def _data(name: str) -> pd.DataFrame:
    df = load_dataset(name)
    if "r2" in df:
        df["r2n"] = (df["r2"] == "Y").astype(float)
    if "use" in df:
        df["usen"] = (df["use"] == "Y").astype(float)
    return df


def _time_interleaved(fits: dict, repeats: int) -> dict:
    """Median times of in-process fits, the peers taking turns in every round so
    that the machine's load falls on all of them alike; plus each last result."""
    results = {name: fit() for name, (fit, _) in fits.items()}  # warm-up
    times: dict = {name: [] for name in fits}
    names = list(fits)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            results[name] = fits[name][0]()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), fits[name][1](results[name])) for name in fits}


# ------------------------------------------------------------------- peers


def make_sklmixed(model):
    from sklmixed import MixedGLMClassifier, MixedLMRegressor

    dataset, formula, _, kind, options, _ = MODELS[model]
    df = _data(dataset)
    if kind == "lmm":

        def fit():
            return MixedLMRegressor(formula=formula).fit(df)
    else:

        def fit():
            return MixedGLMClassifier(formula=formula, **options).fit(df)

    return fit, lambda m: m.objective_


def make_mixedlm(model):
    import mixedlm

    dataset, _, formula, kind, options, _ = MODELS[model]
    df = _data(dataset)
    if kind == "lmm":

        def fit():
            return mixedlm.lmer(formula, df, REML=False)
    else:
        nagq = 0 if options.get("fast") else options.get("nagq", 1)

        def fit():
            return mixedlm.glmer(formula, df, family=mixedlm.families.Binomial(), nAGQ=nagq)

    return fit, lambda m: float(m.deviance)


def make_statsmodels(model):
    import statsmodels.formula.api as smf

    dataset, formula, _, kind, _, _ = MODELS[model]
    if kind != "lmm":
        raise NotImplementedError("statsmodels has no Laplace/AGQ GLMM")
    df = _data(dataset)
    if model == "insteval":
        raise NotImplementedError("crossed factors with 2972 x 1128 levels: impractical")
    if model == "penicillin":
        df = df.assign(one=1)

        def fit():
            return smf.mixedlm(
                "diameter ~ 1",
                df,
                groups="one",
                re_formula="0",
                vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"},
            ).fit(reml=False)
    elif model == "sleepstudy":

        def fit():
            return smf.mixedlm("reaction ~ days", df, groups="subj", re_formula="~days").fit(
                reml=False
            )
    else:  # 'yield' is a Python keyword, which patsy cannot parse: rename it
        df = df.rename(columns={"yield": "yld"})

        def fit():
            # statsmodels re-enables its convergence warnings inside fit: mute its stderr
            with contextlib.redirect_stderr(io.StringIO()):
                return smf.mixedlm("yld ~ 1", df, groups="batch").fit(reml=False)

    return fit, lambda m: -2 * float(m.llf)


_R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = TRUE)
form <- as.formula(args[2]); kind <- args[3]; nagq <- as.integer(args[4]); n <- as.integer(args[5])
fit <- function() {
  if (kind == "lmm") lmer(form, df, REML = FALSE)
  else glmer(form, df, family = binomial, nAGQ = nagq)
}
m <- fit()
times <- numeric(n)
for (i in seq_len(n)) {
  t0 <- Sys.time(); m <- fit(); times[i] <- as.numeric(Sys.time() - t0, units = "secs")
}
# -2 log L for nAGQ <= 1 (lme4's deviance() of a GLMM omits the penalty and log
# determinant); for nAGQ > 1 lme4's logLik is already minus half the AGQ deviance
obj <- if (kind == "lmm") deviance(m) else -2 * as.numeric(logLik(m))
cat(sprintf('{"median": %.9f, "objective": %.10f}\n', median(times), obj))
"""


def run_lme4(model, repeats):
    if shutil.which("Rscript") is None:
        raise RuntimeError("Rscript not found")
    dataset, _, formula, kind, options, _ = MODELS[model]
    df = _data(dataset)
    if "I(age**2)" in formula:
        formula = formula.replace("I(age**2)", "I(age^2)")
    nagq = 0 if options.get("fast") else options.get("nagq", 1)
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "data.csv", Path(tmp) / "bench.R"
        df.to_csv(csv, index=False)
        script.write_text(_R_SCRIPT)
        out = subprocess.run(
            ["Rscript", str(script), str(csv), formula, kind, str(nagq), str(repeats)],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "Rscript failed")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["median"], res["objective"]


# Python peers are timed in one process, taking turns; lme4 in its own R process.
PY_PEERS = {"sklmixed": make_sklmixed, "mixedlm": make_mixedlm, "statsmodels": make_statsmodels}
PEERS = ["sklmixed", "lme4", "mixedlm", "statsmodels"]


def _versions() -> dict:
    out = {"nproc": os.cpu_count()}
    for mod in ("sklmixed", "mixedlm", "statsmodels", "numpy", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - not installed
            out[mod] = None
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = [(i.get("internal_api"), i.get("num_threads")) for i in threadpool_info()]
    except Exception:  # noqa: BLE001
        pass
    if shutil.which("Rscript"):
        r = subprocess.run(
            ["Rscript", "-e", "cat(as.character(packageVersion('lme4')))"],
            capture_output=True,
            text=True,
            check=False,
        )
        out["lme4"] = r.stdout.strip() or None
    return out


@contextlib.contextmanager
def _one_core_busy(enabled: bool):
    """A child process spinning on one core for the duration (``--busy``)."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _why(exc: Exception) -> str:
    return str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__


def _fmt(seconds):
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e3:9.2f} ms" if seconds < 1 else f"{seconds:9.3f} s "


def main(argv=None) -> int:
    warnings.simplefilter("ignore")  # peers' convergence chatter; objectives are printed
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--repeats", type=int, default=None, help="timed fits per model")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--busy", action="store_true", help="keep one core busy with another process"
    )
    parser.add_argument(
        "--busy-ratio",
        action="store_true",
        help="time each peer alone, idle then with one core busy; print the ratios",
    )
    args = parser.parse_args(argv)
    if args.busy_ratio:
        _busy_ratios(args)
        return 0
    info = _versions()
    info["busy"] = args.busy
    print("machine and versions:", json.dumps(info))
    with _one_core_busy(args.busy):
        results = _run(args)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
    return 0


def _busy_ratios(args) -> None:
    """Each peer in a child process of its own, idle and then with one core busy
    (``--busy``), alternately twice; print the median times and busy / idle.

    Alone, because the peers' thread pools spin after their own fits: interleaved
    in one process, mixedlm's fits of sleepstudy took 88 ms instead of 4 ms with a
    core busy, and whichever peer came next paid for the other's threads too.
    """
    for peer in args.peers:
        times: dict = {False: {}, True: {}}
        for busy in (False, True, False, True):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "times.json"
                cmd = [sys.executable, __file__, "--peers", peer, "--json", str(out)]
                cmd += ["--models", *args.models]
                cmd += ["--repeats", str(args.repeats)] if args.repeats else []
                cmd += ["--busy"] if busy else []
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                results = json.loads(out.read_text())["results"]
            for model in args.models:
                median = results[model].get(peer, {}).get("median")
                if median is not None:
                    times[busy].setdefault(model, []).append(median)
        print(f"\n{peer}: idle, one core busy, busy / idle (each the median of two runs)")
        for model in args.models:
            idle, busy_t = times[False].get(model), times[True].get(model)
            if not idle or not busy_t:
                print(f"  {model:14s} n/a")
                continue
            a, b = statistics.median(idle), statistics.median(busy_t)
            print(f"  {model:14s} {_fmt(a)} {_fmt(b)}  {b / a:5.2f}x")


def _run(args) -> dict:
    results: dict = {}
    for model in args.models:
        repeats = args.repeats or MODELS[model][5]
        results[model] = {}
        fits = {}
        for peer in args.peers:
            try:
                with warnings.catch_warnings():  # peers re-enable their own warnings
                    warnings.simplefilter("ignore")
                    if peer == "lme4":
                        median, objective = run_lme4(model, repeats)
                        results[model][peer] = {"median": median, "objective": objective}
                    else:
                        fits[peer] = PY_PEERS[peer](model)
                        fits[peer][0]()  # a peer that cannot fit is reported, not timed
            except Exception as exc:  # noqa: BLE001 - report and carry on
                fits.pop(peer, None)
                results[model][peer] = {"median": None, "objective": None, "reason": _why(exc)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for peer, (median, objective) in _time_interleaved(fits, repeats).items():
                results[model][peer] = {"median": median, "objective": objective}
        results[model] = {p: results[model][p] for p in args.peers if p in results[model]}
        ours = results[model].get("sklmixed", {}).get("median")
        print(f"\n{model} ({repeats} timed fits)")
        for peer, r in results[model].items():
            ratio = ""
            if r["median"] is not None and ours and peer != "sklmixed":
                ratio = f"  {r['median'] / ours:7.2f}x sklmixed's time"
            obj = f"  objective {r['objective']:.6f}" if r["objective"] is not None else ""
            reason = f"  ({r['reason']})" if r.get("reason") else ""
            print(f"  {peer:12s} {_fmt(r['median'])}{obj}{ratio}{reason}")
    return results


if __name__ == "__main__":
    sys.exit(main())
