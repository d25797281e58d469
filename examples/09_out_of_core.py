"""
# Ratings that do not fit in memory: a Parquet folder, fitted in record batches

Ratings of items by users, with user and item effects crossed: the shape of
MovieLens, of clicks by advertiser and publisher, of any two-sided market. A linear
mixed model sees such data only through the cross-products A = [Z X y]' W [Z X y],
whose size is set by the numbers of users, items and columns, not by the number of
ratings. So a `pyarrow.dataset.Dataset` is fitted batch by batch, and the rows are
never all in memory.

This page writes **100,000** synthetic ratings (power-law user activity and item
popularity, 3000 users by 1500 items) to a folder of Parquet files so that the
documentation build stays short. The benchmarks' version (`benchmarks/out_of_core.py`:
6040 users by 3706 items, as MovieLens) fitted ten million ratings from a Parquet
folder in 7.5 minutes with 0.94 GB of peak memory on a busy 2-core machine, most of
it the user-by-item block of the Cholesky factor, which stops growing once every
pair of levels can meet. Set `N_ROWS`, `N_USERS` and `N_ITEMS` to try it.
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from sklmixed import DatasetSource, MixedLMRegressor

N_ROWS = 100_000
N_USERS, N_ITEMS = 3000, 1500
PART_ROWS = 25_000  # rows per Parquet file


def write_ratings(folder: Path, n: int, seed: int = 20261124) -> None:
    """n ratings y = 3.5 + 0.2 x + user effect + item effect + noise, in parts."""
    rng = np.random.default_rng(seed)
    n_users, n_items = N_USERS, N_ITEMS
    pu = rng.pareto(1.2, n_users) + 1
    pi = rng.pareto(0.9, n_items) + 1
    u = rng.normal(0, 0.45, n_users)
    v = rng.normal(0, 0.6, n_items)
    for part, start in enumerate(range(0, n, PART_ROWS)):
        m = min(PART_ROWS, n - start)
        users = rng.choice(n_users, size=m, p=pu / pu.sum())
        items = rng.choice(n_items, size=m, p=pi / pi.sum())
        x = rng.normal(0, 1, m)
        y = 3.5 + 0.2 * x + u[users] + v[items] + rng.normal(0, 0.9, m)
        table = pa.table(
            {
                "user": pa.array(np.char.add("U", users.astype(str))),
                "item": pa.array(np.char.add("M", items.astype(str))),
                "x": x,
                "y": y,
            }
        )
        pq.write_table(table, folder / f"part-{part:04d}.parquet")


folder = Path(tempfile.mkdtemp())
write_ratings(folder, N_ROWS)
print(sorted(p.name for p in folder.iterdir())[:3], "...")

# %%
# Open the folder as a Dataset and fit it. `DatasetSource` chooses the number of
# rows per record batch (65,536 by default): it changes the peak memory and
# nothing else. The fit reads the batches three times (levels, column moments,
# cross-products) and the optimizer then works on the cross-products alone.

data = ds.dataset(folder, format="parquet")
model = MixedLMRegressor(formula="y ~ 1 + x + (1|user) + (1|item)")
start = time.perf_counter()
model.fit(DatasetSource(data, batch_size=20_000))
print(f"fitted {N_ROWS:,} rows in {time.perf_counter() - start:.1f} s")
print(model.summary())

# %%
# The estimates are those of the same rows fitted in memory (the objective to
# 1e-9, relative, the estimates to 1e-6; the test suite checks it), which this
# page can afford to show at 100,000 rows:

in_memory = MixedLMRegressor(formula=model.formula).fit(data.to_table().to_pandas())
print(f"objective out of core {model.objective_:.6f}, in memory {in_memory.objective_:.6f}")
same = np.allclose(model.coef_, in_memory.coef_, rtol=1e-6)
print(f"same fixed effects out of core and in memory: {same}")

# %%
# Predictions stream too: `predict` reads a Dataset in batches and returns an
# array in the Dataset's row order. (Fitted values and residuals of the training
# rows, leverage, `simulate` and `bootstrap` need the rows: fit in memory for them.)

pred = model.predict(data)
print(pred[:5].round(3))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peak resident memory of this process so far: {peak:.0f} MB")
