"""``sklmixed fit DATA FORMULA``: fit a model from the command line, print its summary.

DATA is a bundled data set name (``sklmixed datasets`` lists them) or a path to a
CSV, Parquet, Arrow or Feather file, or to a folder of Parquet or Arrow files.
A folder, or a file with ``--out-of-core``, is read as a ``pyarrow.dataset`` in
record batches: a linear mixed model is fitted from its cross-products without
holding the rows (GLMMs read it into memory). Every error (of the data, the formula, the
options) ends the program with exit status 2 and one line on stderr; warnings of
the fit are printed one line each.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import pandas as pd

from sklmixed.exceptions import DataError, MissingColumnError


class _UsageError(Exception):
    """A command line that argparse rejects (reported like every other error)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and exits; the CLI reports one line instead.
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _read(data: str) -> pd.DataFrame:
    from sklmixed.datasets import list_datasets, load_dataset

    if data in list_datasets():
        return load_dataset(data)
    path = Path(data)
    if not path.is_file():
        raise DataError(
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
    raise DataError(f"cannot read {data!r}: use a .csv, .parquet, .arrow or .feather file")


_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
}


def _dataset(data: str):
    """A path to a Parquet/Arrow file or folder as a ``pyarrow.dataset.Dataset``."""
    import pyarrow.dataset as pads

    path = Path(data)
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    formats = {_FORMATS.get(f.suffix.lower()) for f in files if f.is_file()}
    formats.discard(None)
    if not path.exists():
        raise DataError(f"{data!r} is neither a bundled data set nor an existing file or folder")
    if len(formats) != 1:
        found = "no" if not formats else "both Parquet and Arrow"
        raise DataError(
            f"cannot read {data!r} in batches: it holds {found} files of one format "
            "(.parquet or .arrow/.feather)"
        )
    return pads.dataset(str(path), format=formats.pop())


def _contrasts(items: list[str]) -> dict:
    out = {}
    for item in items:
        col, _, coding = item.partition("=")
        if not col or not coding:
            raise _UsageError(f"--contrasts takes column=coding, got {item!r}")
        out[col] = coding
    return out


def _weights(df: pd.DataFrame, column: str | None):
    """The prior weights (binomial: numbers of trials) from a column of the data."""
    if column is None:
        return None
    if column not in df.columns:
        raise MissingColumnError(
            f"--weights: column {column!r} not found in the data; available columns: "
            f"{', '.join(map(str, df.columns[:30]))}"
        )
    return df[column]


def _fit(args) -> str:
    from sklmixed import MixedGLMClassifier, MixedGLMRegressor, MixedLMRegressor

    if args.batch_size is not None and args.batch_size < 1:
        raise _UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    contrasts = _contrasts(args.contrasts) or None
    if args.out_of_core or Path(args.data).is_dir():
        from sklmixed.estimators._sources import DEFAULT_BATCH_SIZE, DatasetSource

        dataset = _dataset(args.data)
        if args.family is None:
            if args.weights is not None and args.weights not in dataset.schema.names:
                _weights(pd.DataFrame(columns=dataset.schema.names), args.weights)
            source = DatasetSource(dataset, args.batch_size or DEFAULT_BATCH_SIZE)
            model = MixedLMRegressor(formula=args.formula, reml=args.reml, contrasts=contrasts)
            model.fit(source, sample_weight=args.weights)
            return str(model.summary())
        if args.out_of_core:
            raise _UsageError("--out-of-core fits linear mixed models only (without --family)")
        df = dataset.to_table().to_pandas()
    else:
        df = _read(args.data)
    weights = _weights(df, args.weights)
    if args.family is None:
        if args.link is not None or args.nagq != 1 or args.fast:
            raise _UsageError("--link, --nagq and --fast need --family (a GLMM)")
        model = MixedLMRegressor(formula=args.formula, reml=args.reml, contrasts=contrasts)
    else:
        if args.reml:
            raise _UsageError("--reml applies to linear mixed models, not with --family")
        cls = MixedGLMClassifier if args.family == "bernoulli" else MixedGLMRegressor
        model = cls(
            formula=args.formula,
            family=args.family,
            link=args.link,
            nagq=args.nagq,
            fast=args.fast,
            contrasts=contrasts,
        )
    model.fit(df, sample_weight=weights)
    return str(model.summary())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(message: str) -> str:
    """A (possibly multi-line) message on one line.

    The formula errors show the formula with a caret under the fault on the
    next lines; that becomes "at column k of: <formula>". Terminal colour codes
    (formulaic's highlighting) are removed.
    """
    lines = [ln.rstrip() for ln in _ANSI.sub("", message).splitlines() if ln.strip()]
    if not lines:
        return ""
    out, i = [lines[0].strip()], 1
    while i < len(lines):
        text = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.strip() and set(nxt.strip()) <= {"^", "~"}:
            indent = len(text) - len(text.lstrip())
            col = len(nxt) - len(nxt.lstrip()) - indent + 1
            out.append(f"at column {col} of: {text.strip()}")
            i += 2
        else:
            out.append(text.strip())
            i += 1
    return "; ".join(out)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"sklmixed: warning: {one_line(str(message))}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sklmixed", description="Fit mixed-effects models and print their summary."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print the MixedModels.jl summary")
    fit.add_argument(
        "data", help="bundled data set name, a .csv/.parquet/.arrow file or a folder of them"
    )
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
        "--weights",
        metavar="COLUMN",
        help="column of prior weights; for the binomial family the numbers of trials "
        "(the response is then the proportion of successes), as MixedModels.jl's wts",
    )
    fit.add_argument(
        "--contrasts",
        nargs="*",
        default=[],
        metavar="COL=CODING",
        help="mark columns categorical: dummy, effects or helmert",
    )
    fit.add_argument(
        "--out-of-core",
        action="store_true",
        help="LMM: read the Parquet/Arrow file in record batches and fit from the data's "
        "cross-products (a folder is always read so)",
    )
    fit.add_argument(
        "--batch-size", type=int, metavar="ROWS", help="rows per record batch (out of core)"
    )
    sub.add_parser("datasets", help="list the bundled data sets")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after an error)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "datasets":
            from sklmixed.datasets import list_datasets

            print("\n".join(list_datasets()))
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            print(_fit(args))
        return 0
    except Exception as exc:  # every error: one line and status 2, never a traceback
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        known = isinstance(exc, (ValueError, KeyError, TypeError, OSError, _UsageError))
        if not known:  # an unexpected failure: say what kind
            msg = f"{type(exc).__name__}: {msg}"
        print(f"sklmixed: error: {one_line(msg)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
