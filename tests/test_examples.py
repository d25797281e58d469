"""The scripts in examples/ (the documentation's gallery) run and print what they promise."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> a line it must print (or, for the plot-only ones, the number of figures)
EXPECTED = {
    "01_random_slopes.py": "Linear mixed model fit by maximum likelihood",
    "02_shrinkage.py": 1,
    "03_crossed_penicillin.py": " diameter ~ 1 + (1 | plate) + (1 | sample)",
    "04_crossed_insteval.py": "share of the variance between instructors",
    "05_bernoulli_glmm.py": "deviance increase with fast=True",
    "06_predict_new_groups.py": "new subjects get the population line: True",
    "07_choose_random_effects.py": "random slopes help new subjects: True",
    "08_inference.py": "zeta crosses +-1.96 at the profile limits: True",
    "09_out_of_core.py": "same fixed effects out of core and in memory: True",
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script, capsys):
    plt.close("all")
    try:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
        expected = EXPECTED[script]
        if isinstance(expected, int):
            assert len(plt.get_fignums()) == expected
        else:
            assert expected in capsys.readouterr().out
    finally:
        plt.close("all")
