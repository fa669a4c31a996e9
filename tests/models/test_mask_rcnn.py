"""Mask R-CNN over a zoo backbone: losses, gradients into the backbone, COCO evaluation."""

import pytest
import torch

from mambaout.data import detection as D

pycocotools = pytest.importorskip("pycocotools")


def test_mask_rcnn_train_and_eval_step(tmp_path):
    from mambaout.data.shapes import write_coco_shapes
    from mambaout.models.mask_rcnn import build_mask_rcnn
    from mambaout.tasks.dense.detection import evaluate as evaluate_detection

    root = write_coco_shapes(str(tmp_path / "coco"), 2, 2, (64, 64))
    tr = D.CocoInstances(f"{root}/train", f"{root}/annotations/instances_train.json")
    va = D.CocoInstances(f"{root}/val", f"{root}/annotations/instances_val.json", train=False)
    model = build_mask_rcnn(
        "mambaout_test",
        tr.num_classes,
        min_size=64,
        max_size=64,
        fpn_channels=16,
        box_channels=32,
        mask_channels=8,
        rpn_post_nms_top_n_train=20,
        rpn_post_nms_top_n_test=20,
        box_batch_size_per_image=16,
        rpn_batch_size_per_image=32,
        box_detections_per_img=5,
    )
    images, targets = D.detection_collate([tr[0], tr[1]])
    losses = model(list(images), list(targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert model.backbone.body.body.stem.conv1.weight.grad is not None
    metrics = evaluate_detection(model, va, torch.device("cpu"), batch_size=2)
    assert {"bbox_AP", "segm_AP", "bbox_AP50"} <= set(metrics)
    assert 0.0 <= metrics["bbox_AP"] <= 1.0
