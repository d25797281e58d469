"""Caterpillar plot of the conditional modes."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from sklmixed import MixedLMRegressor, load_dataset  # noqa: E402
from sklmixed.plotting import plot_ranef  # noqa: E402


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
