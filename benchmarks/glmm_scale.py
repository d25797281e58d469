"""Fit a crossed Bernoulli GLMM on the first rows of the crossed synthetic with
sklmixed and mixedlm, each fit in its own child process; print the median wall time,
the median peak RSS and the deviance of each.

Usage::

    python benchmarks/glmm_scale.py --rows 50000 --method laplace --repeats 3
    python benchmarks/glmm_scale.py --rows 200000 --method fast --peers sklmixed
    python benchmarks/glmm_scale.py --rows 50000 --profile prof.out   # cProfile, sklmixed

The data are those of ``crossed_1m.py`` (the same deterministic generator; ``--rows``
takes the first rows of the million, ``--data`` reads an Arrow IPC file with columns
user, item, x, y instead). The response is ``b = y > 3.5`` and the model
``b ~ 1 + x + (1|user) + (1|item)``, family Bernoulli (logit link), fitted by the
Laplace approximation (``--method laplace``: sklmixed's default, mixedlm's
``nAGQ=1``) or with the fixed effects from PIRLS (``--method fast``: sklmixed's
``fast=True``, mixedlm's ``nAGQ=0``).

Every fit runs in a fresh Python process that reads the data, fits once and reports
the fit's wall time (``time.perf_counter``, data loading excluded) and its peak
resident memory (``resource.getrusage(RUSAGE_SELF)``: the child's maximum RSS, data
frame and imports included; only the file's record batches that hold the fitted rows
are read), with the CPU time of the fit (``time.process_time``:
on a loaded machine the wall time measures the load as much as the fit; both peers
factor their large blocks with one thread). The peers' repetitions are interleaved so that the
machine's load falls on both alike; on a shared machine only the ratio of two peers
in the same run means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This directory holds a profile.py, which would shadow the standard library's that
# cProfile imports: take it off the path, and load the generator by its file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

FORMULA = "b ~ 1 + x + (1|user) + (1|item)"
PEERS = ["sklmixed", "mixedlm"]


def _crossed_1m():
    """The module ``crossed_1m.py``, which writes the crossed synthetic."""
    import importlib.util

    source = ROOT / "benchmarks" / "crossed_1m.py"
    spec = importlib.util.spec_from_file_location("crossed_1m", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: str, rows: int):
    df = _crossed_1m().read_first_rows(path, rows)
    # the Bernoulli response: ratings above the mean of the generator (3.5)
    return df.assign(b=(df["y"] > 3.5).astype(float))


def _fit(peer: str, df, method: str):
    """Fit once; return (deviance, number of evaluations or None)."""
    if peer == "sklmixed":
        sys.path.insert(0, str(ROOT))
        from sklmixed import MixedGLMClassifier

        m = MixedGLMClassifier(formula=FORMULA, fast=method == "fast").fit(df)
        optsum = m.optsum_
        feval = optsum.get("feval") if isinstance(optsum, dict) else getattr(optsum, "feval", None)
        return float(m.objective_), feval
    import mixedlm

    nagq = 0 if method == "fast" else 1
    m = mixedlm.glmer(FORMULA, df, family=mixedlm.families.Binomial(), nAGQ=nagq)
    return float(m.deviance), None


def _child(peer: str, path: str, rows: int, method: str, profile: str | None) -> None:
    """Read the data, fit once, print one JSON line (runs in the child process)."""
    df = _load(path, rows)
    t0 = time.perf_counter()
    c0 = time.process_time()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        deviance, feval = prof.runcall(_fit, peer, df, method)
        prof.dump_stats(profile)
    else:
        deviance, feval = _fit(peer, df, method)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "peer": peer,
                "rows": len(df),
                "method": method,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "deviance": deviance,
                "feval": feval,
                "peak_rss_mb": rss / 1024,
            }
        )
    )


def _run_child(peer: str, path: str, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", peer, path, str(args.rows), args.method]
    if args.profile:
        cmd.append(args.profile)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{peer}: failed\n{proc.stderr[-2000:]}")
        return None
    res: dict = json.loads(lines[-1])
    print(
        f"  {peer:9s} {res['seconds']:8.2f} s ({res['cpu_seconds']:.2f} s CPU)   "
        f"deviance {res['deviance']:.4f}   "
        f"peak RSS {res['peak_rss_mb'] / 1024:.3f} GB"
        + (f"   {res['feval']} evaluations" if res.get("feval") else "")
        + f"   (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return res


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="first rows to fit")
    parser.add_argument("--method", choices=["laplace", "fast"], default="laplace")
    parser.add_argument("--repeats", type=int, default=1, help="fits per peer (medians)")
    parser.add_argument("--data", help="Arrow IPC file with user, item, x, y (default: generate)")
    parser.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    parser.add_argument("--profile", help="write sklmixed's cProfile statistics to this file")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        peer, path, rows, method = args.child[:4]
        _child(peer, path, int(rows), method, args.child[4] if len(args.child) > 4 else None)
        return 0
    if args.profile:
        args.peers = ["sklmixed"]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if path is None:
            path = str(Path(tmp) / "synth.arrow")
            _crossed_1m().write_synth(path, args.rows)
        print(f"model: {FORMULA} (Bernoulli), first {args.rows} rows, method {args.method}")
        print(f"load average before: {os.getloadavg()}")
        results: dict[str, list[dict]] = {peer: [] for peer in args.peers}
        for r in range(args.repeats):
            # interleaved, the first peer alternating
            order = args.peers[r % len(args.peers) :] + args.peers[: r % len(args.peers)]
            for peer in order:
                if peer == "mixedlm":
                    try:
                        import mixedlm  # noqa: F401
                    except ImportError:
                        print("mixedlm: n/a (not installed)")
                        continue
                res = _run_child(peer, path, args)
                if res is not None:
                    results[peer].append(res)
        summary = {}
        for peer, runs in results.items():
            if not runs:
                continue
            summary[peer] = {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                "deviance": runs[-1]["deviance"],
                "runs": len(runs),
            }
            s = summary[peer]
            print(
                f"{peer:9s} median {s['seconds']:8.2f} s ({s['cpu_seconds']:.2f} s CPU)   "
                f"peak RSS {s['peak_rss_mb'] / 1024:.3f} GB   "
                f"deviance {s['deviance']:.4f}   ({s['runs']} fits)"
            )
        if len(summary) == 2:
            ratio = summary["sklmixed"]["seconds"] / summary["mixedlm"]["seconds"]
            cpu = summary["sklmixed"]["cpu_seconds"] / summary["mixedlm"]["cpu_seconds"]
            print(f"time ratio sklmixed / mixedlm: {ratio:.3f} (CPU time: {cpu:.3f})")
        print(f"load average after: {os.getloadavg()}")
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
