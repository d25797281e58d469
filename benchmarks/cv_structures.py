"""Time choosing a random-effects structure by cross-validation; count warm-start savings.

Usage::

    python benchmarks/cv_structures.py [--repeats N] [--n-jobs J] [--blas-threads T]

1. ``GridSearchCV`` over the three sleepstudy structures ``(1|subj)``,
   ``zerocorr(1 + days|subj)`` and ``(1 + days|subj)`` with ``GroupKFold(5)`` and
   the ``marginal_loglik`` scorer (15 fits and scores, then the refit of the best):
   one warm-up search, then N timed ones; the median and the range are printed,
   with R^2-scored search times alongside for the cost of the scorer itself.
2. Optimizer evaluations summed over the five folds' fits of each structure, with
   ``warm_start=False`` and with ``warm_start=True`` (one estimator refitted fold
   after fold). ``GridSearchCV`` clones its estimator for every fit, so a warm
   start cannot carry from one fold to the next inside it; a loop over folds that
   refits one estimator, as here, is where ``warm_start`` applies.

``--blas-threads 1`` limits BLAS to one thread (threadpoolctl): the matrices of
a sleepstudy fit are tiny, and a BLAS thread pool competing with other processes
on a busy machine can make each small call orders of magnitude slower. The
machine is shared and noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.model_selection import GridSearchCV, GroupKFold  # noqa: E402

from sklmixed import MixedLMRegressor, load_dataset, marginal_loglik  # noqa: E402
from sklmixed.exceptions import SingularFitWarning  # noqa: E402

STRUCTURES = [
    "reaction ~ 1 + days + (1|subj)",
    "reaction ~ 1 + days + zerocorr(1 + days|subj)",
    "reaction ~ 1 + days + (1 + days|subj)",
]


def search(df, scoring, n_jobs):
    return GridSearchCV(
        MixedLMRegressor(),
        {"formula": STRUCTURES},
        cv=GroupKFold(5),
        scoring=scoring,
        n_jobs=n_jobs,
    ).fit(df, df["reaction"], groups=df["subj"])


def time_searches(df, scoring, n_jobs, repeats):
    search(df, scoring, n_jobs)  # warm-up (imports, worker start-up)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = search(df, scoring, n_jobs)
        times.append(time.perf_counter() - t0)
    return times, result


def warm_start_evaluations(df):
    folds = list(GroupKFold(5).split(df, groups=df["subj"]))
    rows = []
    for formula in STRUCTURES:
        counts = {}
        for warm in (False, True):
            model = MixedLMRegressor(formula=formula, warm_start=warm)
            counts[warm] = sum(model.fit(df.iloc[train]).optsum_["feval"] for train, _ in folds)
        rows.append((formula, counts[False], counts[True]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args(argv)

    limit = contextlib.nullcontext()
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")
    df = load_dataset("sleepstudy")
    warnings.simplefilter("ignore", SingularFitWarning)
    with limit:
        ll_times, result = time_searches(df, marginal_loglik, args.n_jobs, args.repeats)
        r2_times, _ = time_searches(df, None, args.n_jobs, args.repeats)
        evaluations = warm_start_evaluations(df)

    print(
        f"GridSearchCV, 3 structures x GroupKFold(5) on sleepstudy, n_jobs={args.n_jobs}, "
        f"BLAS threads {args.blas_threads or 'default'}, {args.repeats} runs:"
    )
    for name, times in [("marginal_loglik", ll_times), ("R^2 (default)", r2_times)]:
        print(
            f"  {name:16s} median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f})"
        )
    print("  mean held-out marginal log-likelihood per observation:")
    for formula, score in zip(STRUCTURES, result.cv_results_["mean_test_score"]):
        print(f"    {score:8.4f}  {formula}")
    print(f"  best: {result.best_params_['formula']}")
    print("optimizer evaluations over the five folds (one estimator refitted fold by fold):")
    print(f"  {'cold':>6s} {'warm':>6s}  saving  structure")
    total_cold = total_warm = 0
    for formula, cold, warm in evaluations:
        total_cold, total_warm = total_cold + cold, total_warm + warm
        print(f"  {cold:6d} {warm:6d}  {1 - warm / cold:6.0%}  {formula}")
    print(f"  {total_cold:6d} {total_warm:6d}  {1 - total_warm / total_cold:6.0%}  total")


if __name__ == "__main__":
    main()
