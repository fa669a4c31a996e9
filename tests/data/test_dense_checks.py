"""Bad dense data met up front, in one line: decompression bombs, COCO files without one usable object, and the
pre-pass (data/check.py) that reads every image header and label before a run and reports what it counted."""

import json
import logging
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mambaout.cli import main
from mambaout.data import detection as D
from mambaout.data.files import load_rgb
from mambaout.data.imagefolder import RobustImageFolder
from mambaout.data.shapes import write_ade_shapes, write_coco_shapes
from mambaout.errors import DatasetError
from mambaout.tasks.dense import detection, segmentation
from mambaout.tasks.dense.task import resolve_config

pytest.importorskip("pycocotools")


def _png(path, w, h, value=90):
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return str(path)


# --- decompression bombs --------------------------------------------------------------------------------


def test_predict_on_a_decompression_bomb_is_one_line(tmp_path, monkeypatch, capsys):
    bomb = _png(tmp_path / "bomb.png", 100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10000 pixels: over twice the limit
    assert main(["predict", str(tmp_path / "no_checkpoint.pt"), bomb]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bomb.png: not decoded" in err and "decompression bomb" in err


def test_decompression_bomb_warning_is_one_log_line_per_file(tmp_path, monkeypatch, caplog):
    big = _png(tmp_path / "big.png", 40, 40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: over the limit, under twice it
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="mambaout"):
        warnings.simplefilter("error")  # Python's own DecompressionBombWarning would raise here
        assert load_rgb(big).size == (40, 40) and load_rgb(big).size == (40, 40)
    assert [r.getMessage().count("decoded anyway") for r in caplog.records] == [1]


def test_imagefolder_skips_a_decompression_bomb(tmp_path, monkeypatch):
    for c in ("a", "b"):
        os.makedirs(tmp_path / "train" / c)
        _png(tmp_path / "train" / c / "ok.png", 4, 4)
    _png(tmp_path / "train" / "a" / "bomb.png", 100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    ds = RobustImageFolder(str(tmp_path), "train")
    assert ds.verify() == 1 and ds.bad_files == [str(tmp_path / "train" / "a" / "bomb.png")]


# --- COCO / VOC files without one usable object -----------------------------------------------------------


def _coco(tmp_path, annotations):
    os.makedirs(tmp_path / "img", exist_ok=True)
    _png(tmp_path / "img" / "1.png", 32, 24)
    ann = tmp_path / "instances.json"
    images = [dict(id=1, file_name="1.png", width=32, height=24)]
    ann.write_text(json.dumps(dict(images=images, annotations=annotations, categories=[dict(id=1, name="x")])))
    return str(tmp_path / "img"), str(ann)


def test_coco_file_without_a_usable_object_is_one_line(tmp_path):
    bad = [
        dict(id=1, image_id=1, category_id=1, bbox=[1, 1, 0, 5], segmentation=[[1, 1, 5, 1, 5, 5]]),
        dict(id=2, image_id=1, category_id=1, bbox="oops", segmentation=[[1, 1, 5, 1, 5, 5]]),
        dict(id=3, image_id=1, category_id=1, bbox=[1, 1, 5, 5]),  # no mask
    ]
    img_dir, ann = _coco(tmp_path, bad)
    msg = r"none of its 3 objects can be used \(1 degenerate_box, 1 malformed_box, 1 missing_mask\)"
    with pytest.raises(DatasetError, match=msg + ": nothing to train on"):
        D.CocoInstances(img_dir, ann, train=True)
    with pytest.raises(DatasetError, match="nothing to evaluate against"):
        D.CocoInstances(img_dir, ann, train=False)
    assert len(D.CocoInstances(img_dir, ann, masks=False)) == 1  # the boxes alone: one usable object
    img_dir, ann = _coco(tmp_path, [])
    with pytest.raises(DatasetError, match="instances.json: no objects in the annotations"):
        D.CocoInstances(img_dir, ann)


GOOD = dict(id=1, image_id=1, category_id=1, bbox=[1, 1, 5, 5], segmentation=[[1, 1, 5, 1, 5, 5]])
IMAGE = dict(id=1, file_name="1.png", width=32, height=24)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(categories=[dict(id="abc")]), "category id 'abc' is not an integer"),
        (dict(categories=[dict(id=None)]), "category id None is not an integer"),
        (dict(annotations={"a": 1}), "'annotations' must be a list"),
        (dict(images=[dict(IMAGE, id=[1])]), r"1 image_bad_entry, 1 unknown_image_id"),
        (dict(images=[dict(IMAGE, file_name=5)]), r"1 image_bad_entry, 1 unknown_image_id"),
        (dict(annotations=[dict(GOOD, image_id=[1])]), r"\(1 unknown_image_id\)"),
        (dict(annotations=[dict(GOOD, area="big")]), None),  # the box's area instead
    ],
)
def test_malformed_coco_entries_are_one_line_or_skipped(tmp_path, change, message):
    img_dir, ann = _coco(tmp_path, [GOOD])
    with open(ann) as f:
        data = json.load(f)
    data.update(change)
    with open(ann, "w") as f:
        json.dump(data, f)
    for train in (True, False):
        if message is None:
            ds = D.CocoInstances(img_dir, ann, train=train)
            assert ds[0][1]["area"].tolist() == [25.0]
        else:
            with pytest.raises(DatasetError, match=message):
                D.CocoInstances(img_dir, ann, train=train)


def test_coco_image_larger_than_any_decodable_file_is_skipped(tmp_path):
    """A 10^9 x 10^9 image entry made pycocotools rasterise its polygon on that canvas: a segfault."""
    import subprocess
    import sys

    img_dir, ann = _coco(tmp_path, [GOOD])
    with open(ann) as f:
        data = json.load(f)
    data["images"][0].update(width=10**9, height=10**9)
    with open(ann, "w") as f:
        json.dump(data, f)
    code = f"from mambaout.data.detection import CocoInstances\nCocoInstances({img_dir!r}, {ann!r})"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "image_too_large" in r.stderr and "none of its 1 objects" in r.stderr


def test_voc_split_without_a_usable_object_is_one_line(tmp_path):
    for d in ("Annotations", "ImageSets/Main"):
        os.makedirs(tmp_path / d)
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    obj = (
        "<object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
    )
    (tmp_path / "Annotations/a.xml").write_text(
        f"<annotation><size><width>16</width><height>16</height></size>{obj}</annotation>"
    )
    with pytest.raises(DatasetError, match=r"train.txt: none of its 1 objects can be used \(1 unknown_category\)"):
        D.VOCDetection(str(tmp_path), "train")


def test_train_det_on_a_coco_file_without_a_usable_object(tmp_path, capsys):
    root = write_coco_shapes(str(tmp_path / "coco"), 2, 1, (32, 32))
    path = os.path.join(root, "annotations", "instances_train.json")
    with open(path) as f:
        coco = json.load(f)
    for a in coco["annotations"]:
        a["bbox"] = [0, 0, -1, -1]
    with open(path, "w") as f:
        json.dump(coco, f)
    args = ["train-det", "--preset", "synthetic_shapes", "--device", "cpu", "--quiet", "--data-root", root]
    assert main([*args, "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "instances_train.json: none of its" in err and "nothing to train on" in err


# --- the pre-pass -------------------------------------------------------------------------------------


def _seg_section(root, *sets):
    cfg = resolve_config("segmentation", "synthetic_shapes", [f"tasks.segmentation.data.root={root}", *sets])
    return cfg.tasks.segmentation


@pytest.fixture
def ade(tmp_path):
    return write_ade_shapes(str(tmp_path / "ade"), 4, 2, (16, 24))


def test_prepass_stops_on_out_of_range_labels_before_any_step(ade):
    lab = os.path.join(ade, "annotations", "training", "ADE_000002.png")
    arr = np.asarray(Image.open(lab)).copy()
    arr[:3, :5] = 9  # 4 classes: 0..3 (and 255) are valid
    Image.fromarray(arr, mode="L").save(lab)
    with pytest.raises(DatasetError) as e:
        segmentation.datasets(_seg_section(ade), 0)  # before: only the step that drew this image failed
    msg = str(e.value)
    assert msg.startswith(lab + ": label values [9] out of range for 4 classes")
    assert "(1 of the 4 label files hold values out of range" in msg and "on_bad_label=ignore" in msg
    train, _ = segmentation.datasets(_seg_section(ade, "tasks.segmentation.data.on_bad_label=ignore"), 0)
    counts = train.check_report.counts()
    assert counts["images"] == 4 and counts["labels_out_of_range"] == 1 and counts["out_of_range_pixels"] == 15


def test_prepass_stops_on_unreadable_images_and_mis_sized_labels(ade):
    with open(os.path.join(ade, "images", "training", "ADE_000003.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    lab = os.path.join(ade, "annotations", "training", "ADE_000000.png")
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(lab)  # the image is 24x16
    with pytest.raises(DatasetError) as e:
        segmentation.datasets(_seg_section(ade), 0)
    msg = str(e.value)
    assert msg.startswith(lab + ": label is 5x5 but the image is 24x16")
    assert "(2 of the 4 images cannot be used" in msg and "the log names 1 more" in msg


def test_detection_prepass_finds_missing_and_mis_sized_images(tmp_path, caplog):
    root = write_coco_shapes(str(tmp_path / "coco"), 3, 1, (32, 32))
    os.remove(os.path.join(root, "train", "000001.png"))
    _png(os.path.join(root, "train", "000002.png"), 20, 32)
    sec = resolve_config("detection", "synthetic_shapes", [f"tasks.detection.data.root={root}"]).tasks.detection
    with caplog.at_level(logging.ERROR, logger="mambaout"), pytest.raises(DatasetError) as e:
        detection.datasets(sec, 0)
    msg = str(e.value)
    assert msg.startswith(os.path.join(root, "train", "000001.png") + ": image file not found")
    assert "(2 of the 3 images cannot be used" in msg
    assert "000002.png: image is 20x32 but the annotations say 32x32" in caplog.text


def test_run_summary_and_log_report_the_prepass_counts(ade, tmp_path, capsys):
    lab = os.path.join(ade, "annotations", "training", "ADE_000001.png")
    arr = np.asarray(Image.open(lab)).copy()
    arr[0, :7] = 200
    Image.fromarray(arr, mode="L").save(lab)
    sets = [
        "tasks.segmentation.data.on_bad_label=ignore",
        "tasks.segmentation.head.channels=8",
        "tasks.segmentation.head.aux_channels=8",
        "tasks.segmentation.data.crop_size=[32, 32]",
        "tasks.segmentation.data.scale=[64, 64]",
        "tasks.segmentation.eval.crop=[32, 32]",
        "tasks.segmentation.eval.stride=[32, 32]",
        "train.batch_size=2",
        "sched.max_iters=1",
        "sched.warmup_iters=0",
        "train.name=checked",
    ]
    args = ["train-seg", "--preset", "synthetic_shapes", "--device", "cpu", "--quiet", "--json", "--data-root", ade]
    assert main([*args, "--output", str(tmp_path), *[a for s in sets for a in ("--set", s)]]) == 0
    summary = json.loads(capsys.readouterr().out)
    checked = summary["data_check"]
    assert checked["segmentation/train"]["out_of_range_pixels"] == 7
    assert checked["segmentation/val"] == dict(
        images=2, unusable_files=0, labels_out_of_range=0, out_of_range_pixels=0, skipped_objects={}
    )
    log = open(os.path.join(tmp_path, "checked", "train.log")).read()
    assert "segmentation train set: 4 images checked; 1 label files with values out of range: 7 pixels" in log
