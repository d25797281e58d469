"""The command line: sklmixed fit DATA FORMULA, sklmixed datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sklmixed import load_dataset
from sklmixed._cli import main, one_line

HERE = Path(__file__).parent
SEED = json.loads((HERE / "reference" / "seed_cases.json").read_text())
LME4 = json.loads((HERE / "reference" / "lme4" / "lme4_reference.json").read_text())["models"]
CBPP = str(HERE / "reference" / "lme4" / "data" / "cbpp.csv")


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


SLEEP = "reaction ~ 1 + days + (1|subj)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "nosuchdata", SLEEP], "'nosuchdata' is neither a bundled data set"),
        (["fit", "missing/file.csv", SLEEP], "'missing/file.csv' is neither"),
        (["fit", "sleepstudy", "reaction ~ 1 + dayz + (1|subj)"], "'dayz' not found"),
        (["fit", "sleepstudy", "reaction ~ 1 + (1|subject)"], "'subject' not found"),
        (["fit", "sleepstudy", "reaction ~ 1 + (1|"], "never closed; at column 16 of: reaction"),
        (["fit", "sleepstudy", "reaction ~ 1 + days +* (1|subj)"], "cannot parse"),
        (["fit", "sleepstudy", SLEEP, "--family", "poison"], "invalid choice: 'poison'"),
        (["fit", "sleepstudy", SLEEP, "--familly", "poisson"], "unrecognized arguments"),
        (["fit", "sleepstudy", SLEEP, "--nagq", "x"], "invalid int value"),
        (["fit", "sleepstudy", SLEEP, "--weights", "w"], "--weights: column 'w' not found"),
        (["fit", "sleepstudy", SLEEP, "--link", "logit"], "need --family"),
        (["fit", "sleepstudy", SLEEP, "--family", "poisson", "--link", "logit"], "'logit' is not"),
        (["fit", "sleepstudy", SLEEP, "--contrasts", "days"], "column=coding"),
        (["fit", "sleepstudy", SLEEP, "--contrasts", "days=poly"], "contrasts['days']"),
        (["fit", "sleepstudy"], "required: formula"),
        (["fitt"], "invalid choice: 'fitt'"),
        ([], "required: command"),
    ],
)
def test_every_error_is_one_line_with_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.startswith("sklmixed: error: ") and err.endswith("\n") and err.count("\n") == 1
    assert message in err and "Traceback" not in err and "\x1b[" not in err


def test_a_file_that_cannot_be_read(tmp_path, capsys):
    bad = tmp_path / "data.csv"
    bad.write_bytes(b"a,b\n1,2,3,4\n\x00\x01")
    assert main(["fit", str(bad), "a ~ 1 + (1|b)"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    assert main(["fit", str(other), "a ~ 1"]) == 2
    assert "use a .csv" in capsys.readouterr().err


def test_warnings_of_the_fit_are_one_line_each(capsys):
    assert main(["fit", "dyestuff2", "yield ~ 1 + (1|batch)"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("sklmixed: warning: boundary (singular) fit") and err.count("\n") == 1


def test_one_line_keeps_the_place_of_a_caret():
    text = "unbalanced parentheses\n  y ~ (1|g\n      ^"
    assert one_line(text) == "unbalanced parentheses; at column 5 of: y ~ (1|g"


def _printed_table(out: str) -> dict:
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\(Intercept\)|period: P\d)\s+(\S+)\s+(\S+)", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


def test_weights_give_a_binomial_fit_with_trials_as_lme4(capsys):
    """cbpp: proportions of incidence with the herd sizes as numbers of trials, the
    lme4 reference model cbind(incidence, size - incidence) ~ period + (1 | herd)."""
    args = ["fit", CBPP, "prop ~ 1 + period + (1|herd)", "--family", "binomial"]
    assert main([*args, "--weights", "size"]) == 0
    out = capsys.readouterr().out
    ref = LME4["cbpp_nagq1"]
    assert "Distribution: Binomial{Float64}" in out and "Number of obs: 56;" in out
    table = _printed_table(out)
    names = ["(Intercept)", "period: P2", "period: P3", "period: P4"]
    coef = np.array([table[n][0] for n in names])
    se = np.array([table[n][1] for n in names])
    # the tolerances of tests/estimators/test_lme4_reference.py: fixed effects within
    # 1% of a standard error, standard errors to 0.2% (both printed to 6 digits)
    np.testing.assert_array_less(np.abs(coef - ref["fixef"]), 0.01 * np.array(ref["stderror"]))
    np.testing.assert_allclose(se, ref["stderror"], rtol=2e-3)
    sd = float(re.search(r"herd\s+\(Intercept\)\s+\S+\s+(\S+)", out).group(1))
    assert sd == pytest.approx(ref["varcorr"]["herd"]["sd"], rel=2e-3)
    loglik = float(out.split("BIC")[1].split()[0])  # logLik, lme4's with constants
    assert loglik == pytest.approx(ref["loglik"], abs=1e-3)
    # without the trials every proportion would be one trial: a different model
    assert main(args) == 0
    assert _printed_table(capsys.readouterr().out) != table


def test_a_folder_of_parquet_files_is_fitted_out_of_core(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sklmixed import load_dataset

    table = pa.Table.from_pandas(load_dataset("sleepstudy"), preserve_index=False)
    pq.write_table(table.slice(0, 100), tmp_path / "part0.parquet")
    pq.write_table(table.slice(100), tmp_path / "part1.parquet")
    formula = "reaction ~ 1 + days + (1 + days|subj)"
    assert main(["fit", str(tmp_path), formula, "--batch-size", "17"]) == 0
    streamed = capsys.readouterr().out
    assert main(["fit", "sleepstudy", formula]) == 0
    assert streamed == capsys.readouterr().out
    assert main(["fit", str(tmp_path), "reaction ~ 1 + dayz + (1|subj)"]) == 2
    assert "column 'dayz' not found" in capsys.readouterr().err


def test_an_arrow_file_out_of_core(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.feather as feather

    from sklmixed import load_dataset

    path = tmp_path / "pen.arrow"
    feather.write_feather(
        pa.Table.from_pandas(load_dataset("penicillin"), preserve_index=False), str(path)
    )
    formula = "diameter ~ 1 + (1|plate) + (1|sample)"
    assert main(["fit", str(path), formula, "--out-of-core", "--batch-size", "10"]) == 0
    streamed = capsys.readouterr().out
    assert main(["fit", "penicillin", formula]) == 0
    assert streamed == capsys.readouterr().out
