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
        ("insteval_crossed.py", "share of the variance between instructors"),
        ("choose_random_effects.py", "random slopes help new subjects: True"),
    ],
)
def test_example_runs(script, expected, capsys, monkeypatch, tmp_path):
    # the large example runs on a subsample here; plots go to a temporary folder
    monkeypatch.setenv("SKLMIXED_EXAMPLE_ROWS", "8000")
    monkeypatch.setenv("SKLMIXED_EXAMPLE_OUTPUT", str(tmp_path))
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert expected in capsys.readouterr().out
