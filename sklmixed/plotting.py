"""Caterpillar plots of the conditional modes (matplotlib, an optional dependency).

``pip install "sklmixed[plot]"`` installs matplotlib.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import ModelError, ParameterError

__all__ = ["plot_ranef"]


def plot_ranef(model, group=None, *, level: float = 0.95, ax=None):
    """Caterpillar plot: each level's conditional mode with a prediction interval.

    The intervals are mode +- z * sqrt(conditional variance) from ``condvar()``,
    as lme4's ``dotplot(ranef(m, condVar = TRUE))`` and MixedModels.jl's
    caterpillar plots draw them; levels are sorted by the first column's mode.

    Parameters
    ----------
    model : MixedLMRegressor or a GLMM estimator, fitted
    group : str, optional
        Grouping factor (default: the first one); an integer column label of a
        ``groups=`` model works too.
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
    if not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ParameterError(f"level must be between 0 and 1; got {level!r}")
    if not model.ranef_:
        raise ModelError(
            "the model has no random-effects terms, so there are no conditional modes "
            "to plot (its formula has no '(... | g)' term, or groups=None)"
        )
    group = next(iter(model.ranef_)) if group is None else group
    if group not in model.ranef_ and str(group) in model.ranef_:  # an integer column label
        group = str(group)
    if group not in model.ranef_:
        raise ModelError(f"no grouping factor {group!r}; the model has {list(model.ranef_)}")
    modes = model.ranef_[group]
    blocks = model.condvar()[group]
    sd = np.sqrt(np.maximum(np.diagonal(blocks, axis1=1, axis2=2), 0.0))
    z = norm.ppf(0.5 + level / 2)
    order = np.argsort(modes.iloc[:, 0].to_numpy())
    k = modes.shape[1]
    if ax is None:
        _, ax = plt.subplots(1, k, sharey=True, figsize=(3 * k + 1, 0.18 * len(modes) + 1.2))
    axes = np.atleast_1d(ax).ravel()
    if axes.shape[0] != k:
        raise ParameterError(
            f"ax must hold one Axes per random-effect column of {group!r} ({k}: "
            f"{list(modes.columns)}); got {axes.shape[0]}"
        )
    labels = [str(v) for v in modes.index[order]]
    y = np.arange(len(order))
    for j, a in enumerate(axes):
        a.errorbar(modes.iloc[order, j], y, xerr=z * sd[order, j], fmt="o", ms=3, lw=1)
        a.axvline(0.0, color="grey", lw=0.8)
        a.set_title(str(modes.columns[j]))
        a.set_yticks(y)
        # Every axis labels its own ticks: with the shared y axis of the default
        # layout an empty label list on one axis would wipe the labels of all.
        a.set_yticklabels(labels)
        if j > 0:
            a.tick_params(axis="y", labelleft=False)
    axes[0].set_ylabel(group)
    return axes
