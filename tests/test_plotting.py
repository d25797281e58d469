"""Caterpillar and shrinkage plots of the random effects."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset  # noqa: E402
from sklmixed.plotting import plot_ranef, plot_shrinkage, within_group_estimates  # noqa: E402


def test_caterpillar_plot_intervals_from_condvar():
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        load_dataset("sleepstudy")
    )
    axes = plot_ranef(m, level=0.95)
    assert [a.get_title() for a in axes] == ["(Intercept)", "days"]
    bars = axes[1].containers[0]
    x, y = bars.lines[0].get_data()
    order = np.argsort(m.ranef_["subj"]["(Intercept)"].to_numpy())
    np.testing.assert_allclose(
        np.asarray(x, dtype=float), m.ranef_["subj"]["days"].to_numpy()[order]
    )
    assert len(y) == 18
    with pytest.raises(ValueError, match="no grouping factor 'nope'"):
        plot_ranef(m, "nope")


def test_caterpillar_labels_survive_a_second_column():
    # The panels share the y axis: blanking the second panel's labels must not
    # blank the first's.
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        load_dataset("sleepstudy")
    )
    axes = plot_ranef(m)
    axes[0].figure.canvas.draw()
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    order = np.argsort(m.ranef_["subj"]["(Intercept)"].to_numpy())
    assert labels == [str(s) for s in m.ranef_["subj"].index[order]]
    assert not any(t.get_visible() and t.get_text() for t in axes[1].get_yticklabels())


def test_within_group_estimates_are_each_subjects_own_regression():
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    own = within_group_estimates(m, df)
    assert own.index.equals(m.ranef_["subj"].index)
    for subj, rows in df.groupby("subj", observed=True):
        slope, intercept = np.polyfit(rows["days"], rows["reaction"], 1)
        np.testing.assert_allclose(
            own.loc[subj].to_numpy(), [intercept - m.coef_[0], slope - m.coef_[1]], atol=1e-8
        )


def test_within_group_estimates_remove_the_other_factor():
    # crossed factors: the plates' own estimates are the plate means of the data
    # minus the intercept and the samples' conditional modes
    df = load_dataset("penicillin")
    m = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(df)
    own = within_group_estimates(m, df, "plate")
    partial = df["diameter"] - m.coef_[0] - m.ranef_["sample"].loc[df["sample"]].to_numpy()[:, 0]
    expected = partial.groupby(df["plate"]).mean()
    np.testing.assert_allclose(own["(Intercept)"].to_numpy(), expected.loc[own.index].to_numpy())


def test_shrinkage_plot_draws_arrows_from_own_estimates_to_modes():
    df = load_dataset("sleepstudy")
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(df)
    axes = plot_shrinkage(m, df)
    assert axes.shape == (1,)
    ax = axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("(Intercept)", "days")
    own, modes = ax.collections[0].get_offsets(), ax.collections[1].get_offsets()
    np.testing.assert_allclose(modes, m.ranef_["subj"].to_numpy())
    np.testing.assert_allclose(own, within_group_estimates(m, df).to_numpy())
    # the modes are shrunk: closer to the population (the origin) on average
    assert np.linalg.norm(modes, axis=1).mean() < np.linalg.norm(own, axis=1).mean()
    assert len(ax.texts) == 18  # one arrow per subject


def test_shrinkage_plot_of_a_scalar_term_and_bad_input():
    df = load_dataset("penicillin")
    m = MixedLMRegressor(formula="diameter ~ 1 + (1|plate) + (1|sample)").fit(df)
    axes = plot_shrinkage(m, df, "sample")
    assert [t.get_text() for t in axes[0].get_yticklabels()] != []
    assert len(axes[0].texts) == 6
    with pytest.raises(ValueError, match="no grouping factor 'nope'"):
        plot_shrinkage(m, df, "nope")
    with pytest.raises(ValueError, match="pass the data the model was fitted on"):
        plot_shrinkage(m, df[df["plate"] != "a"], "sample")
    clf = MixedGLMClassifier(formula="r2 ~ 1 + (1|item)", fast=True).fit(load_dataset("verbagg"))
    with pytest.raises(TypeError, match="MixedLMRegressor"):
        plot_shrinkage(clf, load_dataset("verbagg"))
