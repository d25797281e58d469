"""The scripts in examples/ run and print what they promise."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "script, expected",
    [
        ("sleepstudy_random_slopes.py", "predicted reaction on day 5 for a new subject"),
        ("verbagg_glmm.py", "deviance increase with fast=True"),
    ],
)
def test_example_runs(script, expected, capsys):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert expected in capsys.readouterr().out
