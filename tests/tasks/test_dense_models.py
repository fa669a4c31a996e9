"""Whole detectors/segmentors: params and MACs vs the paper, backbone LayerNorms, classification checkpoints."""

import json

import pytest
import torch

from mambaout.cli import main
from mambaout.errors import CheckpointError, InputError, UnknownModelError
from mambaout.models.dense_backbone import DenseBackbone
from mambaout.registry import create_model
from mambaout.tasks.dense.complexity import PAPER, build_dense, dense_complexity
from mambaout.weights import save_safetensors


@pytest.mark.parametrize("task", ["detection", "segmentation"])
@pytest.mark.parametrize("name", ["mambaout_tiny", "mambaout_small", "mambaout_base"])
def test_params_and_macs_match_paper(name, task):
    r = dense_complexity(name, task)  # meta device: shapes only
    params, macs = PAPER[task][name]
    assert r["params_m"] == pytest.approx(params, rel=0.03)
    assert r["macs_g"] == pytest.approx(macs, rel=0.03)  # our counting convention, see docs/dense.md
    assert (r["height"], r["width"]) == ((800, 1280) if task == "detection" else (512, 2048))


def test_dense_backbone_has_stage_layernorms_and_strides():
    bb = DenseBackbone("mambaout_test")
    assert bb.channels == [16, 32, 48, 64] and bb.strides == [4, 8, 16, 32]
    assert all(isinstance(n, torch.nn.LayerNorm) for n in bb.norms)
    feats = bb(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 16, 24), (1, 32, 8, 12), (1, 48, 4, 6), (1, 64, 2, 3)]
    # normalised over channels at every position
    assert torch.allclose(feats[0].mean(1), torch.zeros(1, 16, 24), atol=1e-4)
    assert all(isinstance(n, torch.nn.Identity) for n in DenseBackbone("mambaout_test", stage_norm=False).norms)


def test_classification_checkpoint_loads_without_its_head(tmp_path):
    cls = create_model("mambaout_test", num_classes=10)
    path = str(tmp_path / "cls.safetensors")
    save_safetensors(cls, path)
    bb = DenseBackbone("mambaout_test", pretrained=path)
    assert torch.equal(bb.body.stem.conv1.weight, cls.stem.conv1.weight)
    det = build_dense("mambaout_test", "detection", num_classes=3, device="cpu", pretrained=path)
    assert torch.equal(det.backbone.body.body.stages[2].blocks[0].fc1.weight, cls.stages[2].blocks[0].fc1.weight)
    other = create_model("mambaout_femto")
    save_safetensors(other, str(tmp_path / "femto.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit"):
        DenseBackbone("mambaout_test", pretrained=str(tmp_path / "femto.safetensors"))


def test_complexity_errors_and_cli(capsys):
    with pytest.raises(UnknownModelError):
        dense_complexity("mambaout_tinyy", "detection")
    with pytest.raises(InputError, match="multiples of 32"):
        dense_complexity("mambaout_tiny", "segmentation", (500, 500))
    assert main(["complexity-dense", "mambaout_tiny", "--task", "segmentation", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["paper"] == {"params_m": 54, "macs_g": 938} and r["macs_by_part_g"]["backbone"] > 90
    assert main(["complexity-dense", "mambaout_test", "--img-size", "128", "256"]) == 0
    assert "Mask R-CNN + FPN on mambaout_test at 128x256" in capsys.readouterr().out
    assert main(["complexity-dense", "mambaout_tiny", "--img-size", "100"]) == 2


def test_detection_cpu_mode_counts_real_forward():
    r = dense_complexity("mambaout_test", "detection", (64, 64), num_classes=3, mode="cpu")
    meta = dense_complexity("mambaout_test", "detection", (64, 64), num_classes=3)
    assert 0 < r["macs_g"] and r["params_m"] == pytest.approx(meta["params_m"])
