"""Caterpillar and shrinkage plots of the random effects."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from sklmixed import MixedGLMClassifier, MixedLMRegressor, load_dataset  # noqa: E402
from sklmixed.exceptions import ModelError, ParameterError  # noqa: E402
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


def _tick_labels(ax):
    ax.figure.canvas.draw()  # tick labels are resolved at drawing time
    return [t.get_text() for t in ax.get_yticklabels() if t.get_visible()]


def test_every_level_is_labelled_when_a_term_has_several_columns():
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days|subj)").fit(
        load_dataset("sleepstudy")
    )
    modes = m.ranef_["subj"]
    expected = [str(v) for v in modes.index[np.argsort(modes["(Intercept)"].to_numpy())]]
    axes = plot_ranef(m)
    assert _tick_labels(axes[0]) == expected
    for a in axes:  # every axis has a tick per level, at the level's row
        np.testing.assert_array_equal(a.get_yticks(), np.arange(18))
        assert [t.get_text() for t in a.get_yticklabels()] in (expected, [])
    assert not axes[1].yaxis.get_tick_params()["labelleft"]  # shared: labels once
    # axes that the caller made (not shared): the first labelled, the others not
    import matplotlib.pyplot as plt

    _, own = plt.subplots(1, 2)
    own = plot_ranef(m, ax=own)
    assert _tick_labels(own[0]) == expected and _tick_labels(own[1]) == []
    np.testing.assert_array_equal(own[1].get_yticks(), np.arange(18))
    with pytest.raises(ParameterError, match="one Axes per random-effect column"):
        plot_ranef(m, ax=plt.subplots(1, 3)[1])
    with pytest.raises(ParameterError, match="level must be between 0 and 1"):
        plot_ranef(m, level=95)
    plt.close("all")


@pytest.mark.filterwarnings("ignore::sklmixed.exceptions.SingularFitWarning")
def test_three_columns_and_the_second_grouping_factor():
    df = load_dataset("sleepstudy").assign(half=lambda d: np.where(d["days"] < 5, "a", "b"))
    df["d2"] = df["days"] ** 2 / 10
    m = MixedLMRegressor(formula="reaction ~ 1 + days + (1 + days + d2|subj) + (1|half)").fit(df)
    axes = plot_ranef(m, "subj")
    assert axes.shape == (3,) and len(_tick_labels(axes[0])) == 18
    assert sorted(_tick_labels(plot_ranef(m, "half")[0])) == ["a", "b"]


def test_a_model_without_random_effects_has_nothing_to_plot():
    m = MixedLMRegressor(formula="reaction ~ 1 + days").fit(load_dataset("sleepstudy"))
    with pytest.raises(ModelError, match="no random-effects terms"):
        plot_ranef(m)
    X = np.random.default_rng(0).normal(size=(10, 2))
    clf = MixedGLMClassifier().fit(X, [0, 1] * 5)
    with pytest.raises(ModelError, match="no random-effects terms"):
        plot_ranef(clf)


def test_integer_grouping_column_key():
    df = load_dataset("sleepstudy")
    X = pd.DataFrame({0: df["subj"], 1: df["days"]})
    m = MixedLMRegressor(groups=0).fit(X, df["reaction"])
    assert plot_ranef(m, 0).shape == (1,)
    assert len(_tick_labels(plot_ranef(m)[0])) == 18


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
    with pytest.raises(ModelError, match="MixedLMRegressor"):
        plot_shrinkage(clf, load_dataset("verbagg"))
