"""A dense model starts from a backbone saved by this project's classification training (the paper's setup):
every trunk tensor arrives unchanged, the classifier is dropped, one log line says so."""

import os

import pytest
import torch

from mambaout.tasks.classification.task import resolve_config as cls_config
from mambaout.tasks.classification.task import train as cls_train
from mambaout.tasks.dense.task import build_model, resolve_config
from mambaout.weights import read_state_dict


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    sets = ["sched.epochs=1", "data.synthetic_train=16", "data.synthetic_val=16", f"train.output={out}"]
    return cls_train(cls_config("synthetic", [*sets, "train.name=run"]), quiet=True)["run_dir"]


@pytest.mark.parametrize("file", ["model.safetensors", "last.pt"])
def test_dense_model_loads_a_classification_run_backbone(cls_run, file, caplog):
    path = os.path.join(cls_run, file)
    trained = read_state_dict(path)
    trained = {k.removeprefix("model."): v for k, v in trained.items()}  # a no-op for both files
    sets = [f"backbone.pretrained={path}", "tasks.segmentation.num_classes=4"]
    with caplog.at_level("INFO", logger="mambaout"):
        model = build_model(resolve_config("segmentation", "synthetic_shapes", sets=sets))
    body = model.backbone.body.state_dict()
    head = {k for k in trained if k.startswith("head.")}
    assert head and set(body) == set(trained) - head  # every trunk key, nothing else
    assert all(torch.equal(v, trained[k]) for k, v in body.items())
    seg = model.heads["segmentation"]
    assert seg.backbone is model.backbone  # the head sees the loaded trunk, not a copy
    lines = [r.getMessage() for r in caplog.records if "loaded backbone weights" in r.getMessage()]
    assert lines == [
        f"loaded backbone weights from {path}: {len(body)} tensors, every one of the trunk's; "
        f"{len(head)} classifier tensors dropped"
    ]
