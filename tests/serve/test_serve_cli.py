"""`mambaout serve` refuses bad arguments in one line before it starts anything."""

from mambaout.cli import main


def test_bad_port_and_missing_checkpoint(capsys, tmp_path):
    assert main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --port 1..65535")
    assert main(["serve", "--no-discover", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "not found" in err and err.count("\n") == 1
