"""VOC mAP@0.5 (mmdet's eval_map) against a hand-computed example, 11-point (VOC2007) and area (VOC2010+)."""

import numpy as np
import pytest

from mambaout.tasks.dense.voc_map import average_precision, voc_map


def _gt():
    box = lambda i, x, y, w, h, c=1, d=0: dict(id=i, image_id=i // 10, category_id=c, bbox=[x, y, w, h], iscrowd=d)  # noqa: E731
    anns = [
        box(1, 0, 0, 10, 10),  # g1 (image 0)
        box(2, 50, 50, 10, 10, d=1),  # difficult (image 0)
        box(11, 0, 0, 20, 20),  # g2 (image 1)
        box(12, 60, 60, 10, 10),  # g3 (image 1), never found
        box(13, 30, 0, 10, 10, c=2),  # class 2 (image 1), never found
    ]
    images = [dict(id=i, file_name=f"{i}.jpg", width=100, height=100) for i in (0, 1)]
    return dict(images=images, annotations=anns, categories=[dict(id=c, name=str(c)) for c in (1, 2, 3)])


def _results():
    r = lambda img, b, s, c=1: dict(image_id=img, category_id=c, bbox=b, score=s)  # noqa: E731
    return [
        r(0, [0, 0, 10, 10], 0.9),  # hit g1
        r(0, [80, 80, 10, 10], 0.8),  # nothing there: false positive
        r(1, [1, 1, 19, 19], 0.7),  # IoU 0.9025 with g2: hit
        r(0, [0, 0, 10, 11], 0.6),  # g1 again: duplicate, false positive
        r(0, [50, 50, 10, 9], 0.5),  # the difficult box: ignored
        r(1, [0, 0, 5, 5], 0.4, c=3),  # class 3 has no ground truth: left out of the mean
    ]


def test_voc_map_hand_computed():
    # class 1: TP FP TP FP over 3 non-difficult boxes -> recall 1/3 1/3 2/3 2/3, precision 1 1/2 2/3 1/2
    area = voc_map(_gt(), _results(), mode="area")
    assert area["AP"][1] == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))  # 5/9: envelope 1 up to 1/3, 2/3 up to 2/3
    assert area["AP"][2] == 0.0 and area["AP"][3] is None
    assert area["mAP"] == pytest.approx((5 / 9 + 0) / 2)
    eleven = voc_map(_gt(), _results(), mode="11points")
    assert eleven["AP"][1] == pytest.approx((4 * 1 + 3 * (2 / 3)) / 11)  # r=0..0.3: 1; 0.4..0.6: 2/3; 0.7..1: 0
    assert eleven["mAP"] == pytest.approx(6 / 11 / 2)


def test_average_precision_perfect_and_modes():
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0]), "area") == pytest.approx(1.0)
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0]), "11points") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        average_precision(np.array([1.0]), np.array([1.0]), "101points")


def test_detection_evaluate_reports_voc_map_and_the_voc_preset_uses_it():
    import torch

    from mambaout.tasks.dense.detection import evaluate
    from mambaout.tasks.dense.task import resolve_config

    gt = _gt()

    class Data(torch.utils.data.Dataset):
        coco_gt, label_to_cat, masks = gt, {1: 1, 2: 2, 3: 3}, False

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(3, 8, 8), {"image_id": i}

    class Oracle(torch.nn.Module):  # predicts every non-difficult box of the image
        def forward(self, images):
            out = []
            for i in range(len(images)):
                objs = [a for a in gt["annotations"] if a["image_id"] == self.seen + i and not a["iscrowd"]]
                boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in objs)])
                out.append(
                    dict(
                        boxes=boxes, scores=torch.ones(len(objs)), labels=torch.tensor([a["category_id"] for a in objs])
                    )
                )
            self.seen += len(images)
            return out

    model = Oracle()
    model.seen = 0
    m = evaluate(model, Data(), torch.device("cpu"), batch_size=1, iou_types=("bbox",), voc_mode="area")
    assert m["voc_mAP"] == pytest.approx(1.0) and "bbox_AP" in m
    cfg = resolve_config("detection", "voc_fasterrcnn_1x")
    assert cfg.tasks.detection.eval.voc_mode == "11points" and cfg.train.best_metric == "voc_mAP"
    assert resolve_config("detection", "coco_maskrcnn_1x").tasks.detection.eval.voc_mode is None
