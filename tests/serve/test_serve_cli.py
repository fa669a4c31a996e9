"""`mambaout serve` refuses bad arguments in one line before it starts anything."""

import socket

import pytest
import torch

from mambaout.cli import main
from mambaout.errors import UsageError
from mambaout.registry import create_model
from mambaout.serve.checkpoints import UNTRAINED, UNTRAINED_KWARGS, UNTRAINED_STRIDE
from mambaout.serve.cli import check_address


def test_bad_port_and_missing_checkpoint(capsys, tmp_path):
    assert main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --port 1..65535")
    assert main(["serve", "--no-discover", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "not found" in err and err.count("\n") == 1


def test_a_busy_port_is_one_line_before_anything_loads():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=rf"^cannot serve on 127\.0\.0\.1:{port} \(address already in use\)$"):
            check_address("127.0.0.1", port)
    check_address("localhost", port)  # free again: the probe binds and lets go


def test_untrained_stride_is_the_models():
    for name in UNTRAINED:
        with torch.device("meta"):  # the structure only: no weights are filled
            assert create_model(name, **UNTRAINED_KWARGS).size_divisor == UNTRAINED_STRIDE
