"""Caterpillar plots of the conditional modes (matplotlib, an optional dependency).

``pip install "sklmixed[plot]"`` installs matplotlib.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

__all__ = ["plot_ranef"]


def plot_ranef(model, group: str | None = None, *, level: float = 0.95, ax=None):
    """Caterpillar plot: each level's conditional mode with a prediction interval.

    The intervals are mode +- z * sqrt(conditional variance) from ``condvar()``,
    as lme4's ``dotplot(ranef(m, condVar = TRUE))`` and MixedModels.jl's
    caterpillar plots draw them; levels are sorted by the first column's mode.

    Parameters
    ----------
    model : MixedLMRegressor or a GLMM estimator, fitted
    group : str, optional
        Grouping factor (default: the first one).
    level : float, default=0.95
        Coverage of the intervals.
    ax : matplotlib Axes or array of Axes, optional
        One per random-effect column; created when omitted.

    Returns
    -------
    axes : ndarray of matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> from sklmixed.plotting import plot_ranef
    >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
    ...     load_dataset("sleepstudy"))
    >>> plot_ranef(m).shape
    (2,)
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('plot_ranef needs matplotlib: pip install "sklmixed[plot]"') from exc
    check_is_fitted(model, "ranef_")
    group = group or next(iter(model.ranef_))
    if group not in model.ranef_:
        raise ValueError(f"no grouping factor {group!r}; the model has {list(model.ranef_)}")
    modes = model.ranef_[group]
    blocks = model.condvar()[group]
    sd = np.sqrt(np.maximum(np.diagonal(blocks, axis1=1, axis2=2), 0.0))
    z = norm.ppf(0.5 + level / 2)
    order = np.argsort(modes.iloc[:, 0].to_numpy())
    k = modes.shape[1]
    if ax is None:
        _, ax = plt.subplots(1, k, sharey=True, figsize=(3 * k + 1, 0.18 * len(modes) + 1.2))
    axes = np.atleast_1d(ax)
    labels = [str(v) for v in modes.index[order]]
    y = np.arange(len(order))
    for j, a in enumerate(axes):
        a.errorbar(modes.iloc[order, j], y, xerr=z * sd[order, j], fmt="o", ms=3, lw=1)
        a.axvline(0.0, color="grey", lw=0.8)
        a.set_title(str(modes.columns[j]))
        a.set_yticks(y)
        a.set_yticklabels(labels if j == 0 else [])
    axes[0].set_ylabel(group)
    return axes
