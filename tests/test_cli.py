"""The command line: sklmixed fit DATA FORMULA, sklmixed datasets."""

from __future__ import annotations

import json
from pathlib import Path

from sklmixed import load_dataset
from sklmixed._cli import main

SEED = json.loads((Path(__file__).parent / "reference" / "seed_cases.json").read_text())


def test_fit_prints_the_summary(capsys):
    assert main(["fit", "dyestuff2", "yield ~ 1 + (1|batch)"]) == 0
    expected = next(c for c in SEED["cases"] if c["name"] == "fm3singular")["summary"]
    assert capsys.readouterr().out.strip() == expected


def test_fit_reml_from_a_csv_file(tmp_path, capsys):
    path = tmp_path / "dyestuff.csv"
    load_dataset("dyestuff").to_csv(path, index=False)
    assert main(["fit", str(path), "yield ~ 1 + (1|batch)", "--reml"]) == 0
    assert "REML criterion at convergence: 319.654276842" in capsys.readouterr().out


def test_glmm(capsys):
    args = ["fit", "contra", "use ~ 1 + age + urban + (1|dist)", "--family", "bernoulli", "--fast"]
    assert main(args) == 0
    assert "Distribution: Bernoulli{Float64}" in capsys.readouterr().out


def test_datasets(capsys):
    assert main(["datasets"]) == 0
    assert "sleepstudy" in capsys.readouterr().out.split()


def test_errors_are_one_line_with_exit_code_2(capsys):
    assert main(["fit", "nosuchdata", "y ~ 1 + (1|g)"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sklmixed: error:") and "nosuchdata" in err
    assert main(["fit", "sleepstudy", "reaction ~ 1 + (1|subject)"]) == 2
    err = capsys.readouterr().err
    assert "'subject' not found" in err and "Traceback" not in err
    assert main(["fit", "sleepstudy", "reaction ~ (1|"]) == 2
    assert "unbalanced parentheses" in capsys.readouterr().err
