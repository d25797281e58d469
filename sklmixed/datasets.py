"""The data sets of the MixedModels.jl documentation, shipped with the package.

They are the Arrow files of MixedModels.jl's ``dataset`` function (lme4's data
with MixedModels.jl's column names and string level codes) and reproduce the
reference page's numbers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow.ipc as ipc

from sklmixed.exceptions import DataError

__all__ = ["list_datasets", "load_dataset"]


def _data_dir():
    """The folder of Arrow files: inside an installed wheel (``sklmixed/_data``) or,
    when running from a source tree, the repository's top-level ``datasets/``."""
    try:
        packaged = resources.files("sklmixed") / "_data"
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual loaders
        pass
    return Path(__file__).resolve().parent.parent / "datasets"


def list_datasets() -> list[str]:
    """Names of the bundled data sets.

    Returns
    -------
    names : list of str
        Sorted: the data sets of the MixedModels.jl documentation (contra,
        dyestuff, dyestuff2, insteval, pastes, penicillin, sleepstudy, verbagg).

    Examples
    --------
    >>> list_datasets()[:3]
    ['contra', 'dyestuff', 'dyestuff2']
    """
    return sorted(
        p.name[: -len(".arrow")] for p in _data_dir().iterdir() if p.name.endswith(".arrow")
    )


def load_dataset(name: str) -> pd.DataFrame:
    """A bundled data set as a new pandas DataFrame.

    Parameters
    ----------
    name : str
        One of ``list_datasets()``: ``"sleepstudy"``, ``"dyestuff"``, ...

    Returns
    -------
    data : DataFrame
        A new DataFrame on every call (changing it does not change the next
        one), with MixedModels.jl's column names; grouping factors are strings.

    Raises
    ------
    ValueError
        For a name that is not a bundled data set; the message lists them.

    Examples
    --------
    >>> load_dataset("dyestuff").shape
    (30, 2)
    >>> load_dataset("sleepstudy").columns.tolist()
    ['subj', 'days', 'reaction']
    """
    names = list_datasets()
    if name not in names:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(names)}")
    with (_data_dir() / f"{name}.arrow").open("rb") as fh:
        table = ipc.open_file(fh).read_all()
    return table.to_pandas()
