"""Plots of the random effects: caterpillar and shrinkage plots.

matplotlib is an optional dependency: ``pip install "sklmixed[plot]"`` installs it.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from sklmixed.exceptions import DataError, ModelError, ParameterError

__all__ = ["plot_ranef", "plot_shrinkage", "within_group_estimates"]


def _pyplot(caller: str):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f'{caller} needs matplotlib: pip install "sklmixed[plot]"') from exc
    return plt


def plot_ranef(model, group=None, *, level: float = 0.95, ax=None):
    """Caterpillar plot: each level's conditional mode with a prediction interval.

    The intervals are mode +- z * sqrt(conditional variance) from ``condvar()``,
    as lme4's ``dotplot(ranef(m, condVar = TRUE))`` and MixedModels.jl's
    caterpillar plots draw them; levels are sorted by the first column's mode.

    Parameters
    ----------
    model : MixedLMRegressor, MixedGLMClassifier or MixedGLMRegressor
        A fitted model.
    group : str, optional
        Grouping factor (default: the first one); an integer column label of a
        ``groups=`` model works too.
    level : float, default=0.95
        Coverage of the intervals.
    ax : matplotlib Axes or array of Axes, optional
        One per random-effect column; created (sharing the y axis) when omitted.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One panel per random-effect column of ``group``; the level labels are on
        the first.

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
    plt = _pyplot("plot_ranef")
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


def within_group_estimates(model, data, group: str | None = None):
    """Each level's own least-squares estimates of its random effects.

    For every level of ``group``, the ordinary least-squares fit of the level's
    partial residuals (the response minus the fitted fixed effects and the
    conditional modes of the other grouping factors) on the term's columns: the
    random effects that level would get with no shrinkage towards the
    population. On the same scale as ``model.ranef_[group]``.

    Parameters
    ----------
    model : MixedLMRegressor
        A linear mixed model fitted with a formula.
    data : DataFrame
        The data the model was fitted on.
    group : str, optional
        Grouping factor, a key of ``model.ranef_``; the first one when omitted.

    Returns
    -------
    estimates : DataFrame
        Indexed and laid out as ``model.ranef_[group]``; NaN rows for levels
        whose columns are not estimable from their own data (fewer observations
        than columns, or a column constant within the level).

    Examples
    --------
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> from sklmixed.plotting import within_group_estimates
    >>> df = load_dataset("sleepstudy")
    >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    >>> within_group_estimates(m, df).shape
    (18, 2)
    """
    import pandas as pd

    from sklmixed.formula import build_design

    check_is_fitted(model, "ranef_")
    if getattr(model, "family_", None) is not None or not hasattr(model, "reml"):
        raise ModelError(
            "within-group least-squares estimates need a linear mixed model "
            f"(MixedLMRegressor); got {type(model).__name__}"
        )
    if model.formula is None:
        raise ModelError("within-group estimates need a model fitted with a formula")
    group = group or next(iter(model.ranef_))
    if group not in model.ranef_:
        raise ModelError(f"no grouping factor {group!r}; the model has {list(model.ranef_)}")
    design = build_design(model.formula, data, model.contrasts)
    if design.y is None:
        raise ModelError("the formula has no response; within-group estimates need one")
    y = np.asarray(design.y, dtype=float)
    resid = y - design.X @ np.where(np.isnan(model.stderror_), 0.0, model.coef_)
    target = None
    for term in design.reterms:
        modes = model.ranef_.get(term.name)
        if modes is None or list(modes.index) != list(term.levels):
            raise DataError(
                f"grouping factor {term.name!r} has other levels in data than in fit: "
                "pass the data the model was fitted on"
            )
        if term.name == group:
            target = term
        else:
            b = modes.to_numpy()
            resid = resid - np.einsum("nk,nk->n", term.z, b[term.refs])
    assert target is not None  # group is a key of ranef_, so a term of the formula
    k = target.z.shape[1]
    est = np.full((len(target.levels), k), np.nan)
    order = np.argsort(target.refs, kind="stable")
    starts = np.searchsorted(target.refs[order], np.arange(len(target.levels) + 1))
    for lev in range(len(target.levels)):  # one small least-squares fit per level
        rows = order[starts[lev] : starts[lev + 1]]
        coef, _, rank, _ = np.linalg.lstsq(target.z[rows], resid[rows], rcond=None)
        if rank == k:
            est[lev] = coef
    modes = model.ranef_[group]
    return pd.DataFrame(est, index=modes.index, columns=modes.columns)


def plot_shrinkage(model, data, group: str | None = None, *, ax=None):
    """Shrinkage plot: conditional modes against within-group estimates.

    For each level of ``group`` an arrow runs from the level's own least-squares
    estimate of its random effects (``within_group_estimates``, open circle)
    to its conditional mode (``model.ranef_``, filled circle), as in
    MixedModels.jl's ``shrinkageplot``: how far the model pulls each level
    towards the population (the origin). A term with two or more columns gets
    one panel per pair of columns; a scalar term one panel with the levels on
    the vertical axis.

    Parameters
    ----------
    model : MixedLMRegressor
        A linear mixed model fitted with a formula.
    data : DataFrame
        The data the model was fitted on.
    group : str, optional
        Grouping factor, a key of ``model.ranef_``; the first one when omitted.
    ax : matplotlib Axes or array of Axes, optional
        One per panel (k (k - 1) / 2 for k columns, one for a scalar term);
        created when omitted.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        The panels; in each, the first collection holds the within-group
        estimates and the second the conditional modes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklmixed import MixedLMRegressor, load_dataset
    >>> from sklmixed.plotting import plot_shrinkage
    >>> df = load_dataset("sleepstudy")
    >>> m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    >>> plot_shrinkage(m, df).shape
    (1,)
    """
    plt = _pyplot("plot_shrinkage")
    own = within_group_estimates(model, data, group)
    modes = model.ranef_[own.index.name if group is None else group]
    names = [str(c) for c in modes.columns]
    k = len(names)
    pairs = [(i, j) for j in range(k) for i in range(j + 1, k)] if k > 1 else [(0, 0)]
    if ax is None:
        n = len(pairs)
        height = 4.0 if k > 1 else 0.18 * len(modes) + 1.2
        fig, ax = plt.subplots(1, n, figsize=(4.2 * n, height), squeeze=False)
        fig.set_layout_engine("tight")
    axes = np.atleast_1d(ax).ravel()
    a_own, a_mode = own.to_numpy(), modes.to_numpy()
    for a, (i, j) in zip(axes, pairs):
        if k > 1:  # column j across, column i up
            x0, y0, x1, y1 = a_own[:, j], a_own[:, i], a_mode[:, j], a_mode[:, i]
            a.set_xlabel(names[j])
            a.set_ylabel(names[i])
            a.axhline(0.0, color="grey", lw=0.8)
        else:  # one column: the levels up the page, sorted by their own estimate
            order = np.argsort(np.nan_to_num(a_own[:, 0], nan=np.inf))
            levels = np.arange(len(order), dtype=float)
            x0, x1 = a_own[order, 0], a_mode[order, 0]
            y0 = y1 = levels
            a.set_yticks(levels, [str(v) for v in modes.index[order]])
            a.set_xlabel(names[0])
            a.set_ylabel(str(modes.index.name or ""))
        a.axvline(0.0, color="grey", lw=0.8)
        a.scatter(x0, y0, s=18, facecolors="none", edgecolors="C0", label="within-group")
        a.scatter(x1, y1, s=18, color="C1", label="conditional mode")
        for xa, ya, xb, yb in zip(x0, y0, x1, y1):
            if np.isfinite([xa, ya]).all():
                a.annotate(
                    "",
                    xy=(xb, yb),
                    xytext=(xa, ya),
                    arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.7},
                )
    axes[0].legend(loc="best", fontsize="small")
    return axes
