"""ADE20K, VOC and Cityscapes labels read as they are on disk; the mmseg transforms."""

import numpy as np
import pytest
import torch
from PIL import Image

from mambaout.data import segmentation as D
from mambaout.data.dense_transforms import segmentation_transforms


def _rgb(path, h=32, w=48):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


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
    (tmp_path / "leftImg8bit/train/README").write_text("a stray file beside the cities: not a city folder")
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
