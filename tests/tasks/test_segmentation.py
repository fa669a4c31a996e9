"""Segmentation: ADE20K / VOC / Cityscapes readers, mIoU hand cases, UperNet semantics and steps."""

import numpy as np
import pytest
import torch
from PIL import Image

from mambaout.data import segmentation as D
from mambaout.data.dense_transforms import segmentation_transforms
from mambaout.models.upernet import FCNHead, UPerHead, build_upernet, predict_logits, slide_inference
from mambaout.tasks.dense.metrics import ConfusionMatrix, miou


def _rgb(path, h=32, w=48):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


# --- metric ---------------------------------------------------------------------------------------


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


# --- datasets -------------------------------------------------------------------------------------


def test_ade20k_reduce_zero_label_and_bad_values(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for d in ("images/training", "annotations/training"):
        (root / d).mkdir(parents=True)
    _rgb(root / "images/training/ADE_train_1.jpg", 4, 4)
    lab = np.array([[0, 1, 2, 150], [150, 0, 1, 1], [3, 3, 3, 3], [0, 0, 0, 0]], np.uint8)
    Image.fromarray(lab).save(root / "annotations/training/ADE_train_1.png")
    ds = D.ADE20K(str(root), "training")
    _, y = ds[0]
    assert y[0].tolist() == [255, 0, 1, 149] and y[3].tolist() == [255] * 4 and ds.num_classes == 150
    lab[0, 0] = 200
    Image.fromarray(lab).save(root / "annotations/training/ADE_train_1.png")
    with pytest.raises(D.DatasetError, match=r"ADE_train_1.png.*\[200\] out of range"):
        ds[0]
    ign = D.ADE20K(str(root), "training", on_bad_label="ignore")
    assert ign[0][1][0, 0] == 255 and ign.skipped["out_of_range_pixels"] == 1
    (root / "images/training/ADE_train_2.jpg").write_bytes(b"")
    with pytest.raises(D.DatasetError, match="ADE_train_2.png.*not found"):
        D.ADE20K(str(root), "training")


def _voc_seg(tmp_path, label, palette=True):
    root = tmp_path / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    _rgb(root / "JPEGImages/2007_000001.jpg", *label.shape)
    img = Image.fromarray(label)
    if palette:
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        img = Image.fromarray(label, mode="L").convert("P")
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    else:
        img = Image.fromarray(np.stack([label] * 3, -1))
    img.save(root / "SegmentationClass/2007_000001.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n")
    return str(root)


def test_voc_palette_png_read_as_indices(tmp_path):
    label = np.array([[0, 15, 255], [20, 1, 0]], np.uint8)
    root = _voc_seg(tmp_path, label)
    _, y = D.VOCSegmentation(root, "train")[0]
    assert y.tolist() == label.astype(int).tolist()
    root = _voc_seg(tmp_path / "rgb", label, palette=False)
    with pytest.raises(D.DatasetError, match="palette"):
        D.VOCSegmentation(root, "train")[0]
    root = _voc_seg(tmp_path / "bad", np.array([[0, 21]], np.uint8))
    with pytest.raises(D.DatasetError, match=r"\[21\] out of range for 21 classes"):
        D.VOCSegmentation(root, "train")[0]


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    img_dir, gt_dir = tmp_path / "leftImg8bit/train/aachen", tmp_path / "gtFine/train/aachen"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    _rgb(img_dir / "aachen_000000_000019_leftImg8bit.png", 2, 4)
    ids = np.array([[7, 8, 26, 33], [0, 1, 255, 24]], np.uint8)
    Image.fromarray(ids).save(gt_dir / "aachen_000000_000019_gtFine_labelIds.png")
    ds = D.Cityscapes(str(tmp_path), "train")
    assert ds[0][1].tolist() == [[0, 1, 13, 18], [255, 255, 255, 11]]
    ids[0, 0] = 40
    Image.fromarray(ids).save(gt_dir / "aachen_000000_000019_gtFine_labelIds.png")
    with pytest.raises(D.DatasetError, match=r"labelIds.png.*\[40\] out of range"):
        ds[0]


def test_train_and_test_transforms_shapes():
    img, lab = torch.rand(3, 40, 60), torch.randint(0, 3, (40, 60))
    tf = segmentation_transforms(True, crop_size=(32, 32), scale=(64, 32), ratio_range=(0.5, 2.0))
    for _ in range(5):
        x, y = tf(img, lab)
        assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 1, 2, 255}
    x, y = segmentation_transforms(False, test_scale=(30, 20))(img, lab)
    assert x.shape == (3, 20, 30) and y.shape == (40, 60)


# --- model ----------------------------------------------------------------------------------------


def test_uperhead_mmseg_layout():
    head = UPerHead([16, 32, 48, 64], 5, channels=24)
    assert len(head.ppm.branches) == 4 and [b[0].output_size for b in head.ppm.branches] == [1, 2, 3, 6]
    assert head.bottleneck[0].in_channels == 64 + 4 * 24 and head.fpn_bottleneck[0].in_channels == 4 * 24
    assert all(
        isinstance(m[1], torch.nn.BatchNorm2d) and m[0].bias is None
        for m in [head.bottleneck, *head.lateral_convs, *head.fpn_convs, head.fpn_bottleneck]
    )
    feats = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip([16, 32, 48, 64], [4, 8, 16, 32])]
    assert head(feats).shape == (2, 5, 16, 16)
    aux = FCNHead(48, 5, 8)
    assert aux(feats[2]).shape == (2, 5, 4, 4) and aux.convs[0].kernel_size == (3, 3)


def test_upernet_losses_inference_and_syncbn():
    model = build_upernet("mambaout_test", num_classes=4, channels=16, aux_channels=8)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    y[0, :4] = 255
    loss = model(x, y)
    assert set(loss) == {"loss_seg", "loss_aux", "loss"}
    assert torch.allclose(loss["loss"], loss["loss_seg"] + loss["loss_aux"])
    loss["loss"].backward()
    model.eval()
    assert model(x).shape == (2, 4, 64, 64) and "loss_aux" not in model(x, y)
    # sliding window over a non-multiple size, multi-scale + flip give probabilities at the input size
    z = torch.randn(1, 3, 70, 90)
    assert slide_inference(model, z, (64, 64), (48, 48)).shape == (1, 4, 70, 90)
    p = predict_logits(model, z, "slide", (64, 64), (48, 48), scales=(0.75, 1.0), flip=True)
    assert p.shape == (1, 4, 70, 90) and torch.allclose(p.sum(1), torch.full((1, 70, 90), 4.0), atol=1e-4)
    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.modules())
