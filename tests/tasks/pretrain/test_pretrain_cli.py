"""`mambaout pretrain` end to end on a CPU (--tiny), the encoder loading into `train --pretrained` and
`create_model(..., pretrained=)`, and its one-line errors."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from mambaout.cli import main
from mambaout.registry import create_model
from mambaout.weights import read_state_dict


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, fashion_standin):
    return fashion_standin(str(tmp_path_factory.mktemp("fashion")), 64, 32)


def _pretrain(tmp, data_root, method, *extra):
    args = ["pretrain", "--method", method, "mambaout_test", "--tiny", "--device", "cpu", "--quiet"]
    args += ["--data-root", data_root, "--output", str(tmp), "--name", method, *extra]
    return main(args)


def test_pretrain_then_finetune(tmp_path, data_root, caplog):
    """FCMAE through the CLI (SimMIM's model and loss: test_masking.py; both methods also run in `lab ssl --tiny`)."""
    method = "fcmae"
    assert _pretrain(tmp_path, data_root, method) == 0
    run = tmp_path / method
    weights = str(run / "model.safetensors")
    state = read_state_dict(weights)
    assert any(k.startswith("decoder.") for k in state) and any(k.startswith("encoder.stages.") for k in state)
    with caplog.at_level(logging.INFO, logger="mambaout"):
        model = create_model("mambaout_test", pretrained=weights, num_classes=10, in_chans=1, stem_stride=1)
    assert "decoder dropped" in caplog.text and "head fresh" in caplog.text
    own = model.state_dict()
    for k, v in state.items():  # every encoder tensor arrived unchanged
        if k.startswith("encoder."):
            assert torch.equal(own[k.removeprefix("encoder.")], v), k
    rc = main(  # and `mambaout train --pretrained` fine-tunes from it
        ["train", "--preset", "fashion_mnist", "--model", "mambaout_test", "--pretrained", weights]
        + ["--data-root", data_root, "--device", "cpu", "--quiet", "--epochs", "1", "--batch-size", "16"]
        + ["--train-subset", "32", "--output", str(tmp_path), "--name", "ft", "--set", "data.val_subset=16"]
    )
    assert rc == 0 and os.path.isfile(tmp_path / "ft" / "model.safetensors")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mask-ratio", "1.0"], "model.mask_ratio must be in (0, 1)"),
        (["--mask-ratio", "0"], "model.mask_ratio must be in (0, 1)"),
        (["--img-size", "36"], "data.img_size 36 is not divisible by the patch size 8"),
        (["--mask-patch", "12"], "must be a multiple of mambaout_test's total stride 8"),
    ],
)
def test_bad_input_is_one_line(tmp_path, data_root, capsys, extra, message):
    assert _pretrain(tmp_path, data_root, "fcmae", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "fcmae")  # nothing written


def test_unsupported_family_is_one_line(tmp_path, data_root, capsys):
    rc = main(
        ["pretrain", "vit_tiny", "--tiny", "--device", "cpu", "--data-root", data_root, "--output", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "vit_tiny is not a hierarchical model" in err and len(err.splitlines()) == 1
