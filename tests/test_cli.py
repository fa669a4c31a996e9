"""The command line: outputs, --json and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from mambaout.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_long_seq_prints_the_paper_numbers(capsys):
    code, out, _ = run(capsys, "long-seq")
    assert code == 0
    for text in ["196", "2304", "4608", "4000", "4096", "long", "short"]:
        assert text in out


def test_long_seq_json_custom(capsys):
    code, out, _ = run(capsys, "long-seq", "--img-size", "1024", "--patch", "16", "--dims", "192", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["tokens"] == 4096 and rows[0]["tau"] == 1152 and rows[0]["verdict"] == "long"


def test_complexity_matches_table(capsys):
    code, out, _ = run(capsys, "complexity", "mambaout_small", "--json")
    r = json.loads(out)
    assert code == 0 and abs(r["params_m"] - 48.488) < 0.01 and abs(r["macs_g"] - 8.96) < 0.09
    code, out, _ = run(capsys, "complexity", "mambaout_tiny", "--img-size", "288")
    assert code == 0 and "5184" in out  # 72*72 tokens in stage 1 at 288


def test_zoo_and_list(capsys):
    code, out, _ = run(capsys, "zoo", "mambaout_t*")
    assert code == 0 and "mambaout_tiny" in out and "82.7" in out
    code, out, _ = run(capsys, "list-models", "mambaout_*", "--json")
    assert code == 0 and any(m["name"] == "mambaout_base" for m in json.loads(out))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["complexity", "mambaout_tny"], "did you mean mambaout_tiny"),
        (["complexity", "mambaout_tiny", "--img-size", "100"], "not divisible by 32"),
        (["complexity", "mambaout_tiny", "--img-size", "-3"], "positive"),
        (["long-seq", "--patch", "x"], "invalid int value"),
        (["nonsense-command"], "invalid choice"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.strip().count("\n") == 0


def test_console_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "mambaout", "complexity", "mambaout_femto"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "7.305 M params" in proc.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["list-models", "mambaout_*", "--json"],
        ["complexity", "mambaout_femto", "--json"],
        ["long-seq", "--json"],
        ["zoo", "mambaout_femto", "--json"],
        ["complexity-dense", "mambaout_femto", "--task", "segmentation", "--img-size", "64", "--json"],
    ],
)
def test_json_is_alone_on_stdout(capsys, argv):
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out) is not None
