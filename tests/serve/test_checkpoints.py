"""Checkpoint discovery, the model bank, and one image through classify and look_inside."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from mambaout.errors import UsageError
from mambaout.registry import create_model
from mambaout.serve.checkpoints import ModelBank, discover
from mambaout.serve.classify import classify
from mambaout.serve.look_inside import look_inside
from mambaout.weights import save_safetensors


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def test_discover_one_per_run_folder_skipping_hidden_and_venvs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in (
        "runs/a/best.pt",
        "runs/a/model.safetensors",  # preferred over best.pt
        "runs/b/best.pt",
        "runs/demo/c/model.safetensors",
        ".venv/lib/model.safetensors",
        ".git/x/best.pt",
        "deep/1/2/3/4/best.pt",  # deeper than max_depth
    ):
        touch(tmp_path / rel)
    assert discover(str(tmp_path)) == [
        str(tmp_path / "runs" / "a" / "model.safetensors"),
        str(tmp_path / "runs" / "b" / "best.pt"),
        str(tmp_path / "runs" / "demo" / "c" / "model.safetensors"),
    ]
    os.chdir(tmp_path / "runs")  # the default root: the working folder, paths relative to it
    assert discover(max_depth=1) == [os.path.join("a", "model.safetensors"), os.path.join("b", "best.pt")]


def test_unknown_names_and_paths_are_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown model"):
        ModelBank(untrained=("no_such_model",))
    with pytest.raises(UsageError, match="not found"):
        ModelBank([str(tmp_path / "missing.pt")])
    bank = ModelBank(untrained=("mambaout_test",))
    with pytest.raises(UsageError, match="unknown model choice"):
        bank.get("/etc/passwd")  # a client's string is a label, never a path


@pytest.fixture(scope="module")
def trained_bank(tmp_path_factory):
    """A 'trained' mambaout_test as `mambaout train` saves it: 10 classes, one channel, 32x32."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(1)
    model = create_model("mambaout_test", num_classes=10, in_chans=1)
    meta = dict(model="mambaout_test", num_classes=10, in_chans=1, img_size=32)
    save_safetensors(model, str(folder / "model.safetensors"), meta)
    return ModelBank([str(folder / "model.safetensors")], untrained=("mambaout_femto",), img_size=32)


def test_checkpoint_loads_with_its_recorded_shape(trained_bank):
    (label,) = trained_bank.checkpoint_labels
    loaded = trained_bank.get(label)
    assert loaded.name == "mambaout_test" and loaded.trained
    assert (loaded.img_size, loaded.in_chans, loaded.classes[-1]) == (32, 1, "Ankle boot")
    assert trained_bank.get(label) is loaded  # cached


def test_classify_gives_top5_latency_and_an_overlay(trained_bank):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    loaded = trained_bank.get(trained_bank.checkpoint_labels[0])
    p = classify(loaded, image)
    assert len(p.top) == 5 and 0 < sum(p.top.values()) <= 1 + 1e-6
    assert list(p.top.values()) == sorted(p.top.values(), reverse=True)
    with torch.no_grad():  # the same probabilities as the model itself gives
        from mambaout.explain.inputs import prepare_image

        probs = loaded.model(prepare_image(image, 32, 1)).softmax(-1)[0]
    best = loaded.classes[int(probs.argmax())]
    assert p.top[best] == pytest.approx(float(probs.max()), rel=1e-5)
    assert p.latency_ms > 0 and p.overlay.dtype == np.uint8 and p.overlay.shape[2] == 3
    assert p.overlay.shape[0] >= 256  # enlarged for the page
    assert (p.cam_stage, p.cam_side) == (1, 4)  # stages of 8, 4, 2, 1 cells: the deepest with 4 or more


def test_look_inside_conv_footprint_is_local(trained_bank):
    loaded = trained_bank.get("mambaout_femto (untrained)")
    image = Image.new("L", (32, 32), 128)
    r = look_inside(loaded, image, (0.5, 0.5), stage=0)
    assert r.kind == "conv" and r.query == (16, 16) and r.stage == 0
    assert r.erf.shape == r.mixing.shape and r.erf.shape[0] >= 256
    assert set(r.erf_sides) == {0.2, 0.3, 0.5, 0.99}


def test_older_safetensors_take_the_size_from_the_runs_config(tmp_path):
    """A model.safetensors written before img_size was in its metadata: the run's config.yaml has it."""
    model = create_model("mambaout_test", num_classes=3)
    save_safetensors(model, str(tmp_path / "model.safetensors"), dict(model="mambaout_test", num_classes=3))
    (tmp_path / "config.yaml").write_text("model:\n  name: mambaout_test\ndata:\n  img_size: 48\n")
    loaded = ModelBank([str(tmp_path / "model.safetensors")], untrained=()).get(
        f"checkpoint: {tmp_path / 'model.safetensors'}"
    )
    assert (loaded.name, loaded.img_size, loaded.classes) == ("mambaout_test", 48, ["class 0", "class 1", "class 2"])
