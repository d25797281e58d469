"""``sklmixed fit DATA FORMULA``: fit a model from the command line, print its summary.

DATA is a bundled data set name (``sklmixed datasets`` lists them) or a path to a
CSV, Parquet, Arrow or Feather file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def _read(data: str) -> pd.DataFrame:
    from sklmixed.datasets import list_datasets, load_dataset

    if data in list_datasets():
        return load_dataset(data)
    path = Path(data)
    if not path.exists():
        raise ValueError(
            f"{data!r} is neither a bundled data set ({', '.join(list_datasets())}) "
            "nor an existing file"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".arrow", ".feather", ".ipc"):
        return pd.read_feather(path)
    raise ValueError(f"cannot read {data!r}: use a .csv, .parquet, .arrow or .feather file")


def _contrasts(items: list[str]) -> dict:
    out = {}
    for item in items:
        col, _, coding = item.partition("=")
        if not col or not coding:
            raise ValueError(f"--contrasts takes column=coding, got {item!r}")
        out[col] = coding
    return out


def _fit(args) -> str:
    from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor

    df = _read(args.data)
    contrasts = _contrasts(args.contrasts) or None
    if args.family is None:
        model = MixedLMRegressor(formula=args.formula, reml=args.reml, contrasts=contrasts)
    else:
        cls = MixedGLMClassifier if args.family == "bernoulli" else MixedGLMRegressor
        model = cls(
            formula=args.formula,
            family=args.family,
            link=args.link,
            nagq=args.nagq,
            fast=args.fast,
            contrasts=contrasts,
        )
    model.fit(df)
    return str(model.summary())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sklmixed", description="Fit mixed-effects models and print their summary."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print the MixedModels.jl summary")
    fit.add_argument("data", help="bundled data set name or a .csv/.parquet/.arrow file")
    fit.add_argument("formula", help='e.g. "reaction ~ 1 + days + (1 + days|subj)"')
    fit.add_argument("--reml", action="store_true", help="fit an LMM by REML")
    fit.add_argument(
        "--family",
        choices=[
            "bernoulli",
            "binomial",
            "poisson",
            "negative_binomial",
            "gamma",
            "inverse_gaussian",
        ],
        help="fit a GLMM of this family",
    )
    fit.add_argument("--link", help="link function (default: the family's canonical link)")
    fit.add_argument("--nagq", type=int, default=1, help="adaptive Gauss-Hermite points")
    fit.add_argument("--fast", action="store_true", help="GLMM: beta from PIRLS (faster)")
    fit.add_argument(
        "--contrasts",
        nargs="*",
        default=[],
        metavar="COL=CODING",
        help="mark columns categorical: dummy, effects or helmert",
    )
    sub.add_parser("datasets", help="list the bundled data sets")
    args = parser.parse_args(argv)
    try:
        if args.command == "datasets":
            from sklmixed.datasets import list_datasets

            print("\n".join(list_datasets()))
            return 0
        print(_fit(args))
        return 0
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"sklmixed: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
