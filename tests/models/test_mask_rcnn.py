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


def _tiny_rcnn(num_classes=4):
    from mambaout.models.mask_rcnn import build_mask_rcnn

    torch.manual_seed(0)
    return build_mask_rcnn(
        "mambaout_test", num_classes, min_size=64, max_size=64, fpn_channels=16, box_channels=256, mask_channels=8
    )


def test_mask_rcnn_initialised_as_mmdet():
    """FPN xavier-uniform, shared FCs xavier-uniform, fc_cls N(0, 0.01), fc_reg N(0, 0.001), biases 0 (item 5)."""
    import math

    model = _tiny_rcnn(num_classes=81)
    for name, m in model.backbone.fpn.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_in, fan_out = (m.weight[0].numel(), m.weight.shape[0] * m.weight[0, 0].numel())
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert 0.9 * bound < m.weight.abs().max().item() <= bound, name
            assert torch.count_nonzero(m.bias) == 0
    fc6 = model.roi_heads.box_head.fc6
    bound = math.sqrt(6 / (fc6.in_features + fc6.out_features))
    assert 0.95 * bound < fc6.weight.abs().max().item() <= bound and torch.count_nonzero(fc6.bias) == 0
    pred = model.roi_heads.box_predictor
    assert abs(pred.cls_score.weight.std().item() - 0.01) < 0.001
    assert abs(pred.bbox_pred.weight.std().item() - 0.001) < 0.0001
    mask = model.roi_heads.mask_predictor
    assert all(
        torch.count_nonzero(p) == 0 for n, p in [*pred.named_parameters(), *mask.named_parameters()] if "bias" in n
    )
    rpn = model.rpn.head.cls_logits.weight  # torchvision's RPN head is mmdet's already
    assert abs(rpn.std().item() - 0.01) < 0.002


def test_rpn_assigner_has_mmdet_low_quality_floor():
    """MaxIoUAssigner(pos 0.7, neg 0.3, min_pos_iou 0.3, match_low_quality, gt_max_assign_all); R-CNN 0.5/0.5."""
    from mambaout.models.mask_rcnn import MaxIoUMatcher

    model = _tiny_rcnn()
    m = model.rpn.proposal_matcher
    assert isinstance(m, MaxIoUMatcher) and (m.high_threshold, m.low_threshold, m.min_pos_iou) == (0.7, 0.3, 0.3)
    assert _tiny_rcnn().rpn._post_nms_top_n == dict(training=1000, testing=1000)  # mmdet rpn_proposal max_per_img
    assert model.rpn._pre_nms_top_n == dict(training=2000, testing=1000)
    r = model.roi_heads.proposal_matcher
    assert (r.high_threshold, r.low_threshold, r.allow_low_quality_matches) == (0.5, 0.5, False)
    # gt 0's best anchor (IoU 0.2) is under the floor: that anchor stays negative (torchvision: positive)
    assert m(torch.tensor([[0.2, 0.0], [0.0, 0.5]])).tolist() == [-1, 1]
    # anchor 0 is gt 0's best (0.4 >= 0.3) though its own best is gt 1 (0.5): mmdet gives it to gt 0
    assert m(torch.tensor([[0.4, 0.0], [0.5, 0.8]])).tolist() == [0, 1]
    # ties at a gt's best IoU all become positive; IoU >= 0.7 positive, 0.3-0.7 ignored (-2), < 0.3 negative (-1)
    q = torch.tensor([[0.45, 0.45, 0.1, 0.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.9, 0.0, 0.5]])
    assert m(q).tolist() == [0, 0, -1, 1, -1, -2]


def test_mask_targets_cropped_and_resized_per_roi():
    """mmdet BitmapMasks.crop_and_resize: RoIAlign aligned, adaptive sampling, binarised at 0.5 (item 7)."""
    from torchvision.models.detection import roi_heads as tv

    from mambaout.models import mask_rcnn as R

    gt = torch.zeros(2, 64, 64)
    gt[0, :, :32] = 1  # left half
    gt[1, 16:48, 16:48] = 1
    boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [16.0, 16.0, 48.0, 48.0], [8.0, 8.0, 40.0, 40.0]])
    t = R.mmdet_mask_targets(gt, boxes, torch.tensor([0, 1, 1]), 28)
    assert set(t.unique().tolist()) <= {0.0, 1.0}
    left = torch.zeros(28, 28)
    left[:, :14] = 1
    assert torch.equal(t[0], left) and torch.equal(t[1], torch.ones(28, 28))
    quarter = torch.zeros(28, 28)  # box 8..40 over the square 16..48: the bottom-right 3/4 of each side
    quarter[7:, 7:] = 1
    assert torch.equal(t[2], quarter)
    soft = tv.project_masks_on_boxes(gt, boxes, torch.tensor([0, 1, 1]), 28)  # torchvision: soft targets
    assert not torch.equal(soft, t)

    model = _tiny_rcnn()
    assert isinstance(model.roi_heads, R.MmdetRoIHeads)
    calls, saved, original = [], R.mmdet_mask_targets, tv.project_masks_on_boxes
    R.mmdet_mask_targets = lambda *a: (calls.append(1), saved(*a))[1]
    try:
        img = torch.rand(3, 64, 64)
        target = dict(boxes=torch.tensor([[16.0, 16.0, 48.0, 48.0]]), labels=torch.tensor([1]), masks=gt[1:].byte())
        model.train()
        losses = model([img], [target])
    finally:
        R.mmdet_mask_targets = saved
    assert calls and tv.project_masks_on_boxes is original and torch.isfinite(losses["loss_mask"])
