"""One backbone, three heads, trained jointly with per-task loss weights."""

import pytest
import torch

from mambaout.data.shapes import write_ade_shapes, write_coco_shapes
from mambaout.models.dense_backbone import DenseBackbone
from mambaout.models.multitask import MultiTaskModel
from mambaout.tasks.dense import resolve_config, train


def test_weighted_losses_share_the_backbone():
    bb = DenseBackbone("mambaout_test")
    model = MultiTaskModel(
        bb,
        {"classification": {"num_classes": 3}, "segmentation": {"num_classes": 4, "channels": 8, "aux_channels": 8}},
        {"classification": 0.5, "segmentation": 2.0},
    )
    assert model.heads["segmentation"].backbone is bb
    x = torch.randn(2, 3, 64, 64)
    out = model({"classification": (x, torch.tensor([0, 2])), "segmentation": (x, torch.randint(0, 4, (2, 64, 64)))})
    assert torch.allclose(out["loss"], 0.5 * out["loss_classification"] + 2.0 * out["loss_segmentation"])
    out["loss"].backward()
    assert bb.body.stem.conv1.weight.grad is not None
    with pytest.raises(ValueError):
        MultiTaskModel(bb, {"depth": {}})


def test_multitask_preset_runs(tmp_path):
    pytest.importorskip("pycocotools")
    coco = write_coco_shapes(str(tmp_path / "coco"), 2, 2, (64, 64))
    ade = write_ade_shapes(str(tmp_path / "ade"), 2, 2, (64, 64))
    cfg = resolve_config(
        "multitask",
        "synthetic_cls_seg_det",
        sets=[
            f"tasks.segmentation.data.root={ade}",
            f"tasks.detection.data.root={coco}",
            "tasks.classification.data.num_samples=16",
            "tasks.classification.data.num_val=8",
            f"train.output={tmp_path}",
            "train.name=mt",
            "sched.max_iters=2",
        ],
        device="cpu",
    )
    s = train(cfg, quiet=True)
    ev = s["final"]
    assert s["steps"] == 2
    assert {"val_classification/top1", "val_segmentation/mIoU", "val_detection/bbox_AP"} <= set(ev)
    assert {"train_loss_classification", "train_loss_segmentation", "train_loss_detection"} <= set(ev)
