"""`mambaout classify`: top-k for image files and folders, preprocessed as the run's evaluation."""

import csv
import json
import os

import pytest

from mambaout import cli
from mambaout.data.fashion_mnist import CLASSES, FashionMNIST
from mambaout.errors import CheckpointError, UsageError
from mambaout.tasks.classification import resolve_config, train
from mambaout.tasks.classification.predict import run_predict


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory, fashion_standin):
    """A Fashion-MNIST run (the stand-in: a bright square per class) and its test split written as PNGs,
    one in a sub-folder, plus a broken file."""
    tmp = tmp_path_factory.mktemp("predict")
    root = fashion_standin(str(tmp / "fm"), n_train=256, n_test=24)
    cfg = resolve_config(
        "fashion_mnist",
        [f"data.root={root}", f"train.output={tmp}", "train.name=run", "model.name=mambaout_test"]
        + ["data.train_subset=null", "data.val_subset=null", "train.batch_size=32", "sched.epochs=2"],
        device="cpu",
    )
    summary = train(cfg, quiet=True)
    images = tmp / "images"
    os.makedirs(images / "sub")
    labels = {}
    for i, (img, y) in enumerate(FashionMNIST(root, "test")):
        path = images / ("sub" if i % 3 == 0 else "") / f"{i:02d}.png"
        img.save(path)
        labels[str(path)] = int(y)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    return summary["run_dir"], str(images), labels


def test_predictions_are_the_evaluations(fm_run, capsys):
    """Every decoded test image gets the class the run's evaluation gives it: the share of right top-1s over
    the PNGs equals `mambaout eval`'s top-1 on the same split; the broken file is skipped and named."""
    run, images, labels = fm_run
    assert cli.main(["eval", "--run", run, "--json", "--quiet"]) == 0
    top1 = json.loads(capsys.readouterr().out)["top1"]
    csv_path = os.path.join(os.path.dirname(images), "pred.csv")
    assert cli.main(["classify", images, "--run", run, "--topk", "3", "--csv", csv_path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == len(labels) and res["skipped"] == [os.path.join(images, "broken.png")]
    right = sum(r["top1_index"] == labels[r["image"]] for r in res["rows"])
    assert 100.0 * right / len(labels) == pytest.approx(top1)
    assert 50.0 < top1  # a model that learned something, so the agreement is not chance
    for r in res["rows"]:
        probs = [r[f"top{k}_prob"] for k in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        assert r["top1"] == CLASSES[r["top1_index"]]
    with open(csv_path) as f:
        assert [row["image"] for row in csv.DictReader(f)] == [r["image"] for r in res["rows"]]


def test_files_and_table(fm_run, capsys):
    run, images, labels = fm_run
    one = next(iter(labels))
    assert cli.main(["classify", one, one, "--run", run, "--topk", "20"]) == 0  # k is capped at the classes
    out = capsys.readouterr().out
    assert out.count(os.path.basename(one)) == 2 and "top-10" in out and "top-11" not in out


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["classify", "/nonexistent.png"], UsageError, "no such file or folder"),
        (["classify", "{images}/sub", "--topk", "0"], UsageError, "--topk must be >= 1"),
        (["classify", "{empty}"], UsageError, "no image files in it"),
        (["classify", "{images}/sub"], CheckpointError, "no weights: pass --checkpoint, --run or --weights"),
    ],
)
def test_bad_requests(fm_run, tmp_path, argv, error, message):
    run, images, _ = fm_run
    os.makedirs(tmp_path / "empty")
    argv = [a.format(images=images, empty=tmp_path / "empty") for a in argv]
    with pytest.raises(error, match=message):
        run_predict(cli.build_parser().parse_args(argv))
