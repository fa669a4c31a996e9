"""``mambaout data make-shapes``: the generated set in the COCO / ADE20K layouts the readers and presets use."""

import json
import os

import pytest

from mambaout.cli import main
from mambaout.data.detection import CocoInstances
from mambaout.data.segmentation import ADE20K
from mambaout.tasks.dense.task import resolve_config


def test_make_shapes_writes_coco_layout_the_preset_reads(tmp_path, capsys):
    root = str(tmp_path / "coco")
    argv = ["data", "make-shapes", "--task", "detection", root, "--train", "3", "--val", "2", "--size", "48", "64"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layout"] == "COCO" and out["classes"] == ["rectangle", "ellipse", "triangle"]
    cfg = resolve_config("detection", "synthetic_shapes", flags={"tasks.detection.data.root": root})
    d = cfg.tasks.detection.data
    train = CocoInstances(os.path.join(root, d.train_images), os.path.join(root, d.train_ann))
    val = CocoInstances(os.path.join(root, d.val_images), os.path.join(root, d.val_ann), train=False)
    assert len(train) == 3 and len(val) == 2 and train.class_names == out["classes"]
    image, target = train[0]
    assert image.shape == (3, 48, 64) and target["masks"].shape[1:] == (48, 64)
    assert main(argv) == 2  # not empty any more: refused, nothing overwritten
    assert "not empty" in capsys.readouterr().err


def test_make_shapes_writes_ade20k_layout(tmp_path, capsys):
    root = str(tmp_path / "ade")
    assert main(["data", "make-shapes", "--task", "segmentation", root, "--train", "2", "--val", "1"]) == 0
    assert "train-seg --preset synthetic_shapes --data-root" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.join(root, "images", "training"))) == ["ADE_000000.jpg", "ADE_000001.jpg"]
    ds = ADE20K(root, "validation", reduce_zero_label=False, num_classes=4)
    assert len(ds) == 1


@pytest.mark.parametrize("extra", [["--train", "0"], ["--size", "8"], ["--size", "1", "2", "3"]])
def test_make_shapes_bad_arguments(tmp_path, extra, capsys):
    assert main(["data", "make-shapes", "--task", "detection", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: make-shapes:") and err.count("\n") == 1
