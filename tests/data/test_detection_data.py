"""COCO instances and VOC XML read as they are on disk; malformed objects skipped and counted, bad files named."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mambaout.data import detection as D
from mambaout.data.masks import _decode_counts_string, decode_segmentation
from mambaout.data.shapes import _rle
from mambaout.errors import MambaoutError

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as cocomask  # noqa: E402


def _img(path, w=64, h=48):
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def _coco(tmp_path, annotations, images=None, categories=None):
    (tmp_path / "img").mkdir(exist_ok=True)
    images = images or [
        dict(id=1, file_name="a.png", width=64, height=48),
        dict(id=2, file_name="b.png", width=64, height=48),
        dict(id=3, file_name="c.png", width=64, height=48),
    ]
    for im in images:
        _img(tmp_path / "img" / im["file_name"], im["width"], im["height"])
    data = dict(
        images=images,
        annotations=annotations,
        categories=categories or [dict(id=3, name="cat"), dict(id=17, name="dog")],
    )
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    return str(tmp_path / "img"), str(path)


def _rect_mask(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _compressed_rle(mask):
    r = cocomask.encode(np.asfortranarray(mask))
    return dict(size=r["size"], counts=r["counts"].decode())


def test_coco_polygons_rle_crowd_and_malformed(tmp_path):
    m = _rect_mask(48, 64, 30, 10, 50, 30)
    unc = _rle(m)  # uncompressed RLE (column-major runs), as the generated datasets write it
    anns = [
        dict(
            id=1, image_id=1, category_id=3, bbox=[5, 5, 20, 20], iscrowd=0, segmentation=[[5, 5, 25, 5, 25, 25, 5, 25]]
        ),  # polygon
        dict(id=2, image_id=1, category_id=17, bbox=[30, 10, 20, 20], iscrowd=0, segmentation=unc),  # RLE
        dict(
            id=3, image_id=1, category_id=17, bbox=[30, 10, 20, 20], iscrowd=1, segmentation=_compressed_rle(m)
        ),  # crowd: dropped for training
        dict(
            id=4,
            image_id=2,
            category_id=3,
            bbox=[1, 1, 10, 10],
            iscrowd=0,
            segmentation=_compressed_rle(_rect_mask(48, 64, 1, 1, 11, 11)),
        ),  # compressed RLE
        dict(id=5, image_id=2, category_id=99, bbox=[1, 1, 10, 10], segmentation=[[1, 1, 9, 1, 9, 9]]),  # unknown cat
        dict(id=6, image_id=2, category_id=3, bbox=[100, 100, 10, 10], segmentation=[[1, 1, 9, 1, 9, 9]]),  # outside
        dict(id=7, image_id=2, category_id=3, bbox=[1, 1, 0, 10], segmentation=[[1, 1, 9, 1, 9, 9]]),  # degenerate
        dict(id=8, image_id=2, category_id=3, segmentation=[[1, 1, 9, 1, 9, 9]]),  # no bbox
        dict(id=9, image_id=2, category_id=3, bbox=[1, 1, 5, 5], segmentation=[[1, 1, 2]]),  # bad polygon
        dict(
            id=10, image_id=2, category_id=3, bbox=[1, 1, 5, 5], segmentation=dict(size=[48, 64], counts=[3072])
        ),  # empty
        dict(
            id=11, image_id=2, category_id=3, bbox=[1, 1, 5, 5], segmentation=dict(size=[10, 10], counts=[100])
        ),  # size
        dict(id=12, image_id=2, category_id=3, bbox=[1, 1, 5, 5]),  # no mask
        dict(id=13, image_id=42, category_id=3, bbox=[1, 1, 5, 5], segmentation=[[1, 1, 5, 1, 5, 5]]),  # unknown image
    ]  # image 3 has no objects: dropped for training
    img_dir, ann = _coco(tmp_path, anns)
    ds = D.CocoInstances(img_dir, ann, train=True)
    assert len(ds) == 2 and ds.num_classes == 3
    assert ds.label_to_cat == {1: 3, 2: 17}
    assert ds.skipped == {
        "crowd": 1,
        "unknown_category": 1,
        "box_outside_image": 1,
        "degenerate_box": 1,
        "missing_keys": 1,
        "bad_mask": 2,
        "empty_mask": 1,
        "missing_mask": 1,
        "unknown_image_id": 1,
        "empty_image": 1,
    }
    img, t = ds[0]
    assert img.shape == (3, 48, 64) and img.dtype == torch.float32
    assert t["labels"].tolist() == [1, 2] and t["masks"].shape == (2, 48, 64)
    assert torch.equal(t["masks"][1], torch.from_numpy(m))
    assert t["masks"][0, 10, 10] == 1 and t["masks"][0, 40, 40] == 0
    assert ds[1][1]["masks"][0].sum() == 100
    val = D.CocoInstances(img_dir, ann, train=False)  # eval keeps crowd objects and empty images
    assert len(val) == 3 and val.records[0][1][2]["crowd"]


def test_rle_string_decoder_matches_pycocotools():
    rng = np.random.default_rng(0)
    m = (rng.random((37, 23)) > 0.6).astype(np.uint8)
    rle = _compressed_rle(m)
    runs = _decode_counts_string(rle["counts"])
    assert sum(runs) == 37 * 23
    assert np.array_equal(decode_segmentation(rle, 37, 23), m)


def test_coco_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(D.DatasetError, match="bad.json.*not valid JSON"):
        D.CocoInstances(str(tmp_path), str(bad))
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(MambaoutError, match="bad.json.*not a COCO instances file"):
        D.CocoInstances(str(tmp_path), str(bad))
    img_dir, ann = _coco(
        tmp_path, [dict(id=1, image_id=1, category_id=3, bbox=[1, 1, 5, 5], segmentation=[[1, 1, 5, 1, 5, 5]])]
    )
    os.remove(os.path.join(img_dir, "a.png"))
    ds = D.CocoInstances(img_dir, ann)
    with pytest.raises(D.DatasetError, match="a.png.*not found"):
        ds[0]


def _voc(tmp_path, objects_xml, size=(64, 48)):
    root = tmp_path / "VOC2007"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    _img(root / "JPEGImages" / "000001.jpg", *size)
    (root / "Annotations" / "000001.xml").write_text(
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"{objects_xml}</annotation>"
    )
    (root / "ImageSets/Main/train.txt").write_text("000001\n")
    return str(root)


def _obj(name, box, difficult=0):
    b = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{b}</bndbox></object>"


def test_voc_xml(tmp_path):
    root = _voc(
        tmp_path,
        _obj("dog", (1, 1, 20, 30))
        + _obj("cat", (5, 5, 10, 10), 1)
        + _obj("unicorn", (1, 1, 5, 5))
        + _obj("car", (70, 60, 80, 70))
        + "<object><name>car</name></object>",
    )
    ds = D.VOCDetection(root, "train", train=True)
    assert len(ds) == 1 and ds.num_classes == 21
    _, t = ds[0]
    assert t["labels"].tolist() == [D.VOC_CLASSES.index("dog") + 1]
    assert t["boxes"].tolist() == [[0.0, 0.0, 20.0, 30.0]]
    assert ds.skipped == {"difficult": 1, "unknown_category": 1, "box_outside_image": 1, "missing_keys": 1}
    ev = D.VOCDetection(root, "train", train=False)
    assert [a["iscrowd"] for a in ev.coco_gt["annotations"]] == [0, 1]
    (tmp_path / "VOC2007/Annotations/000001.xml").write_text("<annotation><size>")
    with pytest.raises(D.DatasetError, match="000001.xml.*malformed"):
        D.VOCDetection(root, "train")
