"""Checkpoint reading/loading: formats, wrappers, classifier replacement and every kind of bad file."""

import logging
import os
import pickle
import random

import pytest
import torch

import mambaout
from mambaout.errors import CheckpointError
from mambaout.weights import read_state_dict, save_safetensors


@pytest.fixture
def weights():
    return mambaout.create_model("mambaout_test", num_classes=10).state_dict()


@pytest.mark.parametrize("wrap", [None, "model", "state_dict"])
def test_wrapped_or_raw_state_dicts_load(weights, tmp_path, wrap):
    path = tmp_path / "ck.pth"
    torch.save({wrap: weights, "epoch": 3} if wrap else weights, path)
    model = mambaout.create_model("mambaout_test", num_classes=10, pretrained=str(path))
    assert torch.equal(model.state_dict()["head.fc.weight"], weights["head.fc.weight"])


def test_ddp_prefix_is_stripped(weights, tmp_path):
    path = tmp_path / "ddp.pth"
    torch.save({"module." + k: v for k, v in weights.items()}, path)
    mambaout.create_model("mambaout_test", num_classes=10, pretrained=str(path))


def test_safetensors_round_trip(weights, tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors(weights, str(path))
    assert set(read_state_dict(str(path))) == set(weights)


def test_other_num_classes_replaces_classifier_and_says_so(weights, tmp_path, caplog):
    path = tmp_path / "ck.pth"
    torch.save(weights, path)
    with caplog.at_level(logging.WARNING, logger="mambaout"):
        model = mambaout.create_model("mambaout_test", num_classes=4, pretrained=str(path))
    assert "replacing the classifier" in caplog.text and "10 classes" in caplog.text
    assert model.head.fc.weight.shape == (4, 256)
    assert torch.equal(model.state_dict()["stem.conv1.weight"], weights["stem.conv1.weight"])


def test_classifier_warning_only_when_class_counts_differ(weights, tmp_path, caplog):
    path = tmp_path / "ck.pth"
    torch.save(weights, path)
    with caplog.at_level(logging.INFO, logger="mambaout"):
        mambaout.create_model("mambaout_test", num_classes=10, pretrained=str(path))  # the same count
        headless = mambaout.create_model("mambaout_test", num_classes=0, pretrained=str(path))  # no classifier
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "replacing" not in caplog.text and "the model has none" in caplog.text
    assert torch.equal(headless.state_dict()["stem.conv1.weight"], weights["stem.conv1.weight"])


def test_wrong_model_lists_missing_unexpected_and_shapes(weights, tmp_path):
    path = tmp_path / "ck.pth"
    torch.save(weights, path)
    with pytest.raises(CheckpointError) as err:
        mambaout.create_model("mambaout_femto", pretrained=str(path))
    msg = str(err.value)
    assert "does not fit mambaout_femto" in msg and "missing keys" in msg and "shape mismatches" in msg
    assert "\n" not in msg
    partial = dict(weights)
    partial.pop("stages.2.blocks.1.fc1.weight")
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(stages.2.blocks.1.fc1.weight\); 1 unexpected"):
        mambaout.create_model("mambaout_test", num_classes=10, pretrained=str(path))


def test_garbage_truncated_and_empty_files(weights, tmp_path):
    garbage = tmp_path / "garbage.pth"
    rng = random.Random(0)  # seeded: the same 30 files every run
    for size in [1, 10, 100, 1000, 5000] * 6:  # random bytes fail the unpickler in many different ways
        garbage.write_bytes(rng.randbytes(size))
        # about 1 in 1000 random files reads as a pickle that names a global: refused as such
        with pytest.raises(CheckpointError, match="not a checkpoint|refused, it asks to load"):
            read_state_dict(str(garbage))
    good = tmp_path / "good.pth"
    torch.save(weights, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(str(truncated))
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_state_dict(str(bad_st))
    no_tensors = tmp_path / "notensors.pth"
    torch.save({"epoch": 1, "lr": 0.1}, no_tensors)
    with pytest.raises(CheckpointError, match="no tensors"):
        read_state_dict(str(no_tensors))
    with pytest.raises(CheckpointError, match="no such file"):
        read_state_dict(str(tmp_path / "missing.pth"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch", "raw_pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"model": {"w": torch.zeros(1)}, "x": _Exploit(marker)}
    if container == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    expected = "refused, it asks to load posix.system" if container == "torch" else "a plain Python pickle"
    with pytest.raises(CheckpointError, match=expected) as err:
        mambaout.create_model("mambaout_test", pretrained=str(path))
    assert not marker.exists() and "weights_only" not in str(err.value)


def test_no_classifier_warning_for_another_width(weights, tmp_path, caplog):
    """Same class count, another width (another model): no 'replacing the classifier' before the mismatch error."""
    path = tmp_path / "ck.pth"
    torch.save(mambaout.create_model("mambaout_femto", num_classes=10).state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="mambaout"), pytest.raises(CheckpointError, match="head.fc.weight"):
        mambaout.create_model("mambaout_tiny", num_classes=10, pretrained=str(path))
    assert "classifier" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mambaout"):
        mambaout.create_model("mambaout_femto", num_classes=10, pretrained=str(path))
    assert caplog.text == ""
