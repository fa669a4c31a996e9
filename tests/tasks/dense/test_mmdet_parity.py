"""Issue #18: settings that follow mmdet/mmseg (loss averaging, warm-up, box filter, class names)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mambaout.models.upernet import UperNet
from mambaout.tasks.dense.config import SegmentationHead


class _Backbone(nn.Module):
    channels = (4, 4, 4, 4)
    size_divisor = 32


def _batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    target[0, :2] = 255  # 8 of 32 pixels ignored
    target[1, 0, 0] = 255
    return logits, target


def _mmseg_loss(logits, target):
    # mmseg 1.x CrossEntropyLoss(avg_non_ignore=False): per-pixel CE (0 on ignored), mean over ALL pixels
    per_pixel = -F.log_softmax(logits, 1).gather(1, target.clamp(max=2).unsqueeze(1)).squeeze(1)
    per_pixel = torch.where(target == 255, torch.zeros_like(per_pixel), per_pixel)
    return per_pixel.sum() / target.numel(), per_pixel.sum() / (target != 255).sum()


def test_seg_loss_divides_by_all_pixels_by_default():
    assert SegmentationHead().avg_non_ignore is False
    logits, target = _batch()
    all_px, non_ignored = _mmseg_loss(logits, target)
    assert not torch.isclose(all_px, non_ignored)
    model = UperNet(_Backbone(), 3, channels=8, aux_channels=8)
    model.eval()  # decode head only
    out = model.losses(logits, None, target)
    torch.testing.assert_close(out["loss_seg"], all_px)
    # the auxiliary head uses the same definition
    model.train()
    feats = [None, None, torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1)), None]
    torch.manual_seed(2)
    out = model.losses(logits, feats, target)
    torch.manual_seed(2)
    aux = model.auxiliary_head(feats[2])
    torch.testing.assert_close(out["loss_aux"], 0.4 * _mmseg_loss(aux, target)[0])
    opt = UperNet(_Backbone(), 3, channels=8, aux_channels=8, aux=False, avg_non_ignore=True)
    torch.testing.assert_close(opt.losses(logits, None, target)["loss_seg"], non_ignored)


def test_head_kwargs_pass_avg_non_ignore():
    from mambaout.tasks.dense.config import SegmentationTask
    from mambaout.tasks.dense.segmentation import head_kwargs

    sec = SegmentationTask()
    assert head_kwargs(sec)["avg_non_ignore"] is False
    sec.head.avg_non_ignore = True
    assert head_kwargs(sec)["avg_non_ignore"] is True


def test_detection_warmup_follows_mmdet_swin_1x():
    from mambaout.engine import config as C
    from mambaout.tasks.dense.config import DenseConfig

    for name in ("coco_maskrcnn_1x", "voc_fasterrcnn_1x"):
        cfg = C.from_dict(DenseConfig, C.load_preset("detection", name))
        # mmdet: LinearLR(start_factor=0.001, by_epoch=False, begin=0, end=1000)
        assert cfg.sched.warmup_iters == 1000
        assert cfg.sched.warmup_lr == pytest.approx(0.001 * cfg.optim.lr)
    assert C.from_dict(DenseConfig, C.load_preset("detection", "synthetic_shapes")).sched.warmup_iters == 10


def test_boxes_under_one_pixel_are_dropped(tmp_path):
    import json

    from PIL import Image

    from mambaout.data.detection import CocoInstances

    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "img" / "a.png")
    poly = [[10, 10, 30, 10, 30, 30, 10, 30]]
    anns = [
        dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], segmentation=poly),
        dict(id=2, image_id=1, category_id=1, bbox=[10, 10, 0.5, 20], segmentation=poly),  # 0.5 px wide
        dict(id=3, image_id=1, category_id=1, bbox=[10, 10, 20, 0.5], segmentation=poly),  # 0.5 px high
        dict(id=4, image_id=1, category_id=1, bbox=[10, 10, 1, 1], segmentation=poly),  # 1 px: kept (mmdet: < 1)
    ]
    data = dict(
        images=[dict(id=1, file_name="a.png", width=64, height=48)],
        annotations=anns,
        categories=[dict(id=1, name="thing")],
    )
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = CocoInstances(str(tmp_path / "img"), str(tmp_path / "ann.json"), train=True)
    assert ds.skipped == {"small_box": 2}
    _, target = ds[0]
    assert len(target["boxes"]) == 2


def test_real_class_names(tmp_path):
    import json

    from PIL import Image

    from mambaout.data.detection import VOC_CLASSES, CocoInstances
    from mambaout.data.segmentation import ADE20K, ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_SEG_CLASSES

    assert len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    assert (ADE20K_CLASSES[0], ADE20K_CLASSES[2], ADE20K_CLASSES[149]) == ("wall", "sky", "flag")
    assert len(CITYSCAPES_CLASSES) == 19 and (CITYSCAPES_CLASSES[0], CITYSCAPES_CLASSES[18]) == ("road", "bicycle")
    assert len(VOC_CLASSES) == 20 and (VOC_CLASSES[0], VOC_CLASSES[19]) == ("aeroplane", "tvmonitor")
    assert VOC_SEG_CLASSES == ("background",) + VOC_CLASSES
    # the ADE20K reader names its 150 classes
    root = tmp_path / "ADEChallengeData2016"
    for d in ("images/training", "annotations/training"):
        (root / d).mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "images/training/a.jpg")
    Image.fromarray(torch.ones(4, 4, dtype=torch.uint8).numpy()).save(root / "annotations/training/a.png")
    assert ADE20K(str(root), "training").class_names[:3] == ["wall", "building", "sky"]
    # COCO names come from the annotation file's categories, in category-id order
    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "img" / "a.png")
    data = dict(
        images=[dict(id=1, file_name="a.png", width=64, height=48)],
        annotations=[dict(id=1, image_id=1, category_id=5, bbox=[1, 1, 20, 20], segmentation=[[1, 1, 21, 1, 21, 21]])],
        categories=[dict(id=5, name="zebra"), dict(id=2, name="aardvark")],
    )
    (tmp_path / "ann.json").write_text(json.dumps(data))
    assert CocoInstances(str(tmp_path / "img"), str(tmp_path / "ann.json")).class_names == ["aardvark", "zebra"]


def test_cityscapes_preset_does_not_reduce_zero_label(tmp_path):
    import numpy as np
    from PIL import Image

    from mambaout.engine import config as C
    from mambaout.tasks.dense.config import DenseConfig
    from mambaout.tasks.dense.segmentation import datasets

    cfg = C.from_dict(DenseConfig, C.load_preset("segmentation", "cityscapes_upernet_80k"))
    sec = cfg.tasks.segmentation
    assert sec.data.format == "cityscapes" and sec.data.reduce_zero_label is False
    img_dir, gt_dir = tmp_path / "leftImg8bit/train/aachen", tmp_path / "gtFine/train/aachen"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    Image.new("RGB", (4, 2)).save(img_dir / "aachen_000000_000019_leftImg8bit.png")
    ids = np.array([[7, 8, 26, 33], [0, 1, 255, 24]], np.uint8)  # road, sidewalk, car, bicycle; void; person
    Image.fromarray(ids).save(gt_dir / "aachen_000000_000019_gtFine_labelIds.png")
    sec.data.root, sec.data.val_split, sec.data.num_workers = str(tmp_path), "train", 0
    train_set, val_set = datasets(sec, 0)
    assert train_set.class_names[0] == "road" and val_set[0][1].tolist() == [[0, 1, 13, 18], [255, 255, 255, 11]]
