"""COCO AP through pycocotools: perfect predictions score 1, a known shift scores what it should."""

import pytest
import torch

pycocotools = pytest.importorskip("pycocotools")

from mambaout.tasks.dense.metrics import coco_evaluate, predictions_to_coco  # noqa: E402


def _gt(boxes):
    return dict(
        images=[dict(id=1, width=100, height=100)],
        annotations=[
            dict(
                id=i + 1,
                image_id=1,
                category_id=1,
                bbox=b,
                area=b[2] * b[3],
                iscrowd=0,
                segmentation=[[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0], b[1] + b[3]]],
            )
            for i, b in enumerate(boxes)
        ],
        categories=[dict(id=1, name="x")],
    )


def test_coco_ap_perfect_is_one_and_shifted_box_known():
    gt = _gt([[10, 10, 20, 20], [50, 50, 30, 30]])
    perfect = [dict(image_id=1, category_id=1, bbox=b, score=0.9) for b in ([10, 10, 20, 20], [50, 50, 30, 30])]
    r = coco_evaluate(gt, perfect, ("bbox",))
    assert r["bbox"]["AP"] == pytest.approx(1.0) and r["bbox"]["AP50"] == pytest.approx(1.0)
    # one GT, prediction shifted by 3 px: IoU = 340/460 = 0.739 -> matched at thresholds 0.50..0.70 (5 of 10)
    r = coco_evaluate(
        _gt([[10, 10, 20, 20]]), [dict(image_id=1, category_id=1, bbox=[13, 10, 20, 20], score=0.9)], ("bbox",)
    )
    assert r["bbox"]["AP"] == pytest.approx(0.5) and r["bbox"]["AP50"] == pytest.approx(1.0)
    assert r["bbox"]["AP75"] == pytest.approx(0.0)
    assert coco_evaluate(gt, [], ("bbox",))["bbox"]["AP"] == 0.0


def test_predictions_to_coco_masks_give_perfect_segm_ap():
    gt = _gt([[10, 10, 20, 20]])
    mask = torch.zeros(1, 1, 100, 100)
    mask[0, 0, 10:30, 10:30] = 0.9
    out = dict(
        boxes=torch.tensor([[10.0, 10, 30, 30]]), scores=torch.tensor([0.8]), labels=torch.tensor([1]), masks=mask
    )
    res = predictions_to_coco([out], [1], {1: 1})
    assert res[0]["bbox"] == [10.0, 10.0, 20.0, 20.0] and "counts" in res[0]["segmentation"]
    r = coco_evaluate(gt, res, ("bbox", "segm"))
    assert r["bbox"]["AP"] == pytest.approx(1.0) and r["segm"]["AP"] == pytest.approx(1.0)


def test_gt_objects_the_reader_skips_do_not_break_mask_ap():
    """The reader tolerates objects without a (usable) mask or box; COCO mask AP raised KeyError: 'segmentation'.
    An object without a usable mask is an ignore region in mask AP: predicting it is neither a hit nor a miss."""
    gt = _gt([[10, 10, 20, 20], [50, 50, 30, 30], [60, 5, 20, 20]])
    del gt["annotations"][1]["segmentation"]  # no mask
    gt["annotations"][2]["segmentation"] = [[60, 5, 70, 5]]  # a polygon of 2 points
    gt["annotations"] += [
        dict(id=9, image_id=1, category_id=1, bbox="oops", segmentation=[[1, 1, 9, 1, 9, 9]]),  # unusable box
        dict(id=10, image_id=1, category_id=1, bbox=[1, 1, 0, 5]),  # degenerate box, no area, no mask
        dict(id=11, image_id=7, category_id=1, bbox=[1, 1, 5, 5]),  # an image the file does not list
    ]
    masks = torch.zeros(3, 1, 100, 100)
    for k, (x, y, w, h) in enumerate(([10, 10, 20, 20], [50, 50, 30, 30], [60, 5, 20, 20])):
        masks[k, 0, y : y + h, x : x + w] = 0.9
    out = dict(
        boxes=torch.tensor([[10.0, 10, 30, 30], [50, 50, 80, 80], [60, 5, 80, 25]]),
        scores=torch.tensor([0.9, 0.8, 0.7]),
        labels=torch.tensor([1, 1, 1]),
        masks=masks,
    )
    r = coco_evaluate(gt, predictions_to_coco([out], [1], {1: 1}), ("bbox", "segm"))
    assert r["bbox"]["AP"] == pytest.approx(1.0)  # the three usable boxes, all found
    assert r["segm"]["AP"] == pytest.approx(1.0)  # one usable mask, found; the other two predictions ignored
    # without the ignore regions the two mask-less predictions would be false positives above the true one's
    lone = dict(boxes=out["boxes"][1:], scores=out["scores"][1:], labels=out["labels"][1:], masks=masks[1:])
    assert coco_evaluate(gt, predictions_to_coco([lone], [1], {1: 1}), ("segm",))["segm"]["AP"] == pytest.approx(0.0)
