"""mIoU from one dataset-level confusion matrix (ignore 255, classes absent from both sides)."""

import pytest
import torch

from mambaout.tasks.dense.metrics import ConfusionMatrix, miou


def test_miou_hand_computed_with_ignore_and_absent_class():
    pred = torch.tensor([[0, 0, 1], [1, 2, 2]])
    target = torch.tensor([[0, 1, 1], [1, 255, 2]])
    # class 0: TP 1, FP 1 -> 1/2; class 1: TP 2, FN 1 -> 2/3; class 2: TP 1 (the 255 pixel is skipped) -> 1;
    # class 3 never appears -> NaN, left out of the mean
    r = ConfusionMatrix(4).update(pred, target).compute()
    assert r["IoU"][:3] == pytest.approx([0.5, 2 / 3, 1.0]) and r["IoU"][3] is None
    assert r["mIoU"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert r["aAcc"] == pytest.approx(4 / 5)


def test_miou_is_dataset_level_not_per_image_mean():
    # image A: 1 pixel of class 0 right; image B: 3 pixels of class 1, one predicted as 0
    preds = [torch.tensor([0]), torch.tensor([1, 1, 0])]
    targets = [torch.tensor([0]), torch.tensor([1, 1, 1])]
    # dataset level: class 0 TP 1, FP 1 -> 0.5; class 1 TP 2, FN 1 -> 2/3
    assert miou(preds, targets, 2) == pytest.approx((0.5 + 2 / 3) / 2)
    per_image = (1.0 + (0.0 + 2 / 3) / 2) / 2
    assert miou(preds, targets, 2) != pytest.approx(per_image)
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(2).update(torch.tensor([0]), torch.tensor([5]))
