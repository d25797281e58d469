"""Fit the crossed synthetic (a million ratings, 6040 users x 3706 items) with sklmixed
and mixedlm, each in its own child process; print wall time, objective and peak RSS.

Usage::

    python benchmarks/crossed_1m.py                      # 1M rows, both peers
    python benchmarks/crossed_1m.py --rows 200000        # the first 200k rows
    python benchmarks/crossed_1m.py --data ratings.arrow --peers sklmixed

The data are MovieLens-1M-like: power-law user activity and item popularity,
``y = 3.5 + 0.2 x + u_user + v_item + e``; the generator below is deterministic
(same seed, same draws as the project's shared ``make_synth.py``), and ``--rows``
takes the first rows of the million. With ``--data`` an Arrow IPC (Feather) file with
columns user, item, x, y is read instead. The model is ML
``y ~ 1 + x + (1|user) + (1|item)``.

Each peer runs in a fresh Python process that reads the data, fits once and reports
the fit's wall time (``time.perf_counter``, the data loading excluded) and its peak
resident memory (``resource.getrusage``: the child's own maximum RSS, which includes
the data frame; the parent's RUSAGE_CHILDREN figure is printed beside it). The
machine's load average is printed before and after: on a shared machine only the
ratio of two peers in the same run means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "y ~ 1 + x + (1|user) + (1|item)"
PEERS = ["sklmixed", "mixedlm"]


def draws(n=1_000_000, n_users=6040, n_items=3706, seed=20261124):
    """The synthetic's draws as arrays: user and item codes, x and y."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pu = rng.pareto(1.2, n_users) + 1
    pu /= pu.sum()
    pi = rng.pareto(0.9, n_items) + 1
    pi /= pi.sum()
    users = rng.choice(n_users, size=n, p=pu)
    items = rng.choice(n_items, size=n, p=pi)
    u = rng.normal(0, 0.45, n_users)
    v = rng.normal(0, 0.6, n_items)
    x = rng.normal(0, 1, n)
    y = 3.5 + 0.2 * x + u[users] + v[items] + rng.normal(0, 0.9, n)
    return users, items, x, y


def make(n=1_000_000, n_users=6040, n_items=3706, seed=20261124):
    """The synthetic ratings: n rows, power-law user activity and item popularity."""
    import pandas as pd

    users, items, x, y = draws(n, n_users, n_items, seed)
    return pd.DataFrame(
        {
            "user": pd.Series(users).map(lambda i: f"U{i:05d}"),
            "item": pd.Series(items).map(lambda i: f"M{i:05d}"),
            "x": x,
            "y": y,
        }
    )


def write_synth(path: str, rows: int) -> None:
    """At least ``rows`` (and a million) rows of the synthetic as an Arrow IPC file
    (zstd), the file the benchmarks read their first rows from."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.Table.from_pandas(make(max(rows, 1_000_000)), preserve_index=False)
    feather.write_feather(table, path, compression="zstd")


def read_first_rows(path: str, rows: int):
    """The first ``rows`` rows of an Arrow IPC file as a DataFrame, reading only the
    record batches that hold them (the whole million would add ~90 MB to the peak
    memory of a fit of 200k rows, for either peer)."""
    import pyarrow as pa

    reader = pa.ipc.open_file(path)
    batches, have = [], 0
    for i in range(reader.num_record_batches):
        if have >= rows:
            break
        batch = reader.get_batch(i)
        batches.append(batch)
        have += batch.num_rows
    table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, rows)
    return table.to_pandas()


def _child(peer: str, path: str, rows: int) -> None:
    """Read the data, fit once, print one JSON line (runs in the child process)."""
    df = read_first_rows(path, rows)
    if peer == "sklmixed":
        sys.path.insert(0, str(ROOT))
        from sklmixed import MixedLMRegressor

        t0 = time.perf_counter()
        m = MixedLMRegressor(formula=FORMULA).fit(df)
        elapsed = time.perf_counter() - t0
        objective = float(m.objective_)
        optsum = m.optsum_
        feval = optsum.get("feval") if isinstance(optsum, dict) else getattr(optsum, "feval", None)
    else:
        import mixedlm

        t0 = time.perf_counter()
        m = mixedlm.lmer(FORMULA, df, REML=False)
        elapsed = time.perf_counter() - t0
        objective = float(m.deviance)
        feval = None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "peer": peer,
                "rows": len(df),
                "seconds": elapsed,
                "objective": objective,
                "feval": feval,
                "peak_rss_mb": rss / 1024,
            }
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="first rows to fit")
    parser.add_argument("--data", help="Arrow IPC file with user, item, x, y (default: generate)")
    parser.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--child", nargs=3, metavar=("PEER", "PATH", "ROWS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if path is None:
            path = str(Path(tmp) / "synth.arrow")
            write_synth(path, args.rows)
        print(f"model: {FORMULA}, first {args.rows} rows, ML")
        print(f"load average before: {os.getloadavg()}")
        results = []
        for peer in args.peers:
            if peer == "mixedlm":
                try:
                    import mixedlm  # noqa: F401
                except ImportError:
                    print("mixedlm: n/a (not installed)")
                    continue
            cmd = [sys.executable, __file__, "--child", peer, path, str(args.rows)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                print(f"{peer}: failed\n{proc.stderr[-2000:]}")
                continue
            res = json.loads(lines[-1])
            res["max_rss_children_mb"] = children
            res["load_after"] = os.getloadavg()
            results.append(res)
            feval = f", {res['feval']} evaluations" if res.get("feval") else ""
            print(
                f"{peer:9s} {res['seconds']:8.2f} s   objective {res['objective']:.6f}   "
                f"peak RSS {res['peak_rss_mb'] / 1024:.2f} GB{feval}   "
                f"(load average {res['load_after'][0]:.1f})"
            )
        times = {r["peer"]: r["seconds"] for r in results}
        if len(times) == 2:
            print(f"time ratio sklmixed / mixedlm: {times['sklmixed'] / times['mixedlm']:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
