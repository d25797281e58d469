"""Fit the crossed synthetic out of core from a folder of Parquet files; print the
wall time of each pass and of the fit, the estimates, and the peak RSS.

Usage::

    python benchmarks/out_of_core.py                        # 10M rows
    python benchmarks/out_of_core.py --rows 1000000 --in-memory   # also in memory
    python benchmarks/out_of_core.py --folder ratings/ --batch-size 131072

The data are those of ``crossed_1m.py`` (the same generator, seed and draws; with
``--rows`` above a million the generator simply draws more rows), written as a
folder of Parquet files of a million rows each (kept with ``--folder``, reused when
the folder exists). The model is ML ``y ~ 1 + x + (1|user) + (1|item)``.

The fit runs in a fresh Python process that opens the folder with
``pyarrow.dataset.dataset(folder, format="parquet")`` and hands the Dataset to
``MixedLMRegressor.fit``, which reads it in record batches of ``--batch-size`` rows;
its peak resident memory is the child's own ``resource.getrusage`` maximum RSS
(interpreter and libraries included). ``--in-memory`` fits the same rows read into
a DataFrame in a second child, for the same-run ratio of times (on a shared machine
only ratios of one run mean anything).
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
PART_ROWS = 1_000_000


def write_folder(folder: Path, n: int) -> None:
    """The synthetic's n rows as Parquet files of PART_ROWS rows (crossed_1m's draws)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crossed_1m import draws

    n_users, n_items = 6040, 3706  # crossed_1m.make's defaults
    users, items, x, y = draws(n, n_users, n_items)
    ulab = np.array([f"U{i:05d}" for i in range(n_users)], dtype=object)
    ilab = np.array([f"M{i:05d}" for i in range(n_items)], dtype=object)
    folder.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, PART_ROWS)):
        sl = slice(start, min(start + PART_ROWS, n))
        part = pd.DataFrame(
            {"user": ulab[users[sl]], "item": ilab[items[sl]], "x": x[sl], "y": y[sl]}
        )
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), folder / f"part{k:04d}.parquet"
        )


def _child(mode: str, folder: str, batch_size: int) -> None:
    """Fit once and print one JSON line (runs in the child process)."""
    sys.path.insert(0, str(ROOT))
    import pyarrow.dataset as pads

    from sklmixed import MixedLMRegressor
    from sklmixed.estimators._sources import DatasetSource

    data = pads.dataset(folder, format="parquet")
    t0 = time.perf_counter()
    if mode == "in-memory":
        df = data.to_table().to_pandas()
        t0 = time.perf_counter()  # the reading excluded, as in crossed_1m.py
        m = MixedLMRegressor(formula=FORMULA).fit(df)
    else:
        m = MixedLMRegressor(formula=FORMULA).fit(DatasetSource(data, batch_size))
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "mode": mode,
                "rows": int(m.nobs_),
                "seconds": elapsed,
                "objective": float(m.objective_),
                "coef": [float(c) for c in m.coef_],
                "theta": [float(t) for t in m.theta_],
                "sigma": float(m.sigma_),
                "feval": m.optsum_.get("feval"),
                "peak_rss_mb": rss / 1024,
            }
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--folder", help="Parquet folder (written if it does not exist)")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--in-memory", action="store_true", help="also fit in memory")
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "FOLDER", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "synth"
        if not folder.exists():
            t0 = time.perf_counter()
            write_folder(folder, args.rows)
            print(f"wrote {args.rows} rows to {folder} in {time.perf_counter() - t0:.1f} s")
        print(f"model: {FORMULA}, ML, batches of {args.batch_size} rows")
        print(f"load average before: {os.getloadavg()}")
        modes = ["out-of-core"] + (["in-memory"] if args.in_memory else [])
        for mode in modes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(folder), str(args.batch_size)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"{mode}: failed\n{out.stderr[-2000:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{mode:12s} rows {res['rows']}  {res['seconds']:.1f} s  "
                f"peak RSS {res['peak_rss_mb']:.0f} MB  objective {res['objective']:.6f}  "
                f"feval {res['feval']}"
            )
            print(f"{'':12s} coef {res['coef']}  theta {res['theta']}  sigma {res['sigma']:.6f}")
        print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
