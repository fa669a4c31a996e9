"""`mambaout explain erf`: PNG + JSON, --json alone on stdout, checkpoints of a real run, one-line errors."""

import json
import os

import pytest
import torch

from mambaout import cli
from mambaout.errors import CheckpointError, UsageError
from mambaout.explain.inputs import load_images, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fashion(tmp_path_factory, fashion_standin):
    return fashion_standin(str(tmp_path_factory.mktemp("fashion")), n_train=8, n_test=8)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real one-step classification run of mambaout_test on 1-channel synthetic images (4 classes)."""
    from mambaout.tasks.classification.task import resolve_config, train

    out = tmp_path_factory.mktemp("runs")
    sets = [
        f"train.output={out}",
        "train.name=run",
        "sched.epochs=1",
        "data.synthetic_train=16",
        "data.synthetic_val=16",
        "model.in_chans=1",
        "data.mean=[0.5]",
        "data.std=[0.125]",
    ]
    return train(resolve_config("synthetic", sets), quiet=True)["run_dir"]


def _erf_argv(fashion, out, *extra):
    return ["explain", "erf", "mambaout_test", "--data-root", fashion, "--num-images", "2", "--img-size", "32"] + [
        "-o",
        str(out),
        *extra,
    ]


def _one_line_error(capsys, argv, *words):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for w in words:
        assert w in lines[0]
    assert captured.out == ""


def test_erf_writes_png_and_json_and_json_alone_on_stdout(fashion, tmp_path, capsys):
    out = tmp_path / "erf"
    assert cli.main(_erf_argv(fashion, out, "--in-chans", "1", "--json")) == 0
    printed = json.loads(capsys.readouterr().out)  # the whole stdout is one JSON document
    saved = json.loads((out / "erf.json").read_text())
    assert printed == saved
    assert saved["model"] == "mambaout_test" and saved["stage"] == 3 and saved["num_images"] == 2
    assert set(saved["table"]) == {"0.2", "0.3", "0.5", "0.99"}
    assert all(0 < v <= 1 for v in saved["table"].values())
    assert (out / "erf.png").read_bytes()[:8] == PNG and saved["png"] == str(out / "erf.png")
    # an untrained model is seeded: a second run gives the same numbers
    assert cli.main(_erf_argv(fashion, tmp_path / "again", "--in-chans", "1", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["table"] == saved["table"]


def test_erf_readable_summary_without_json(fashion, tmp_path, capsys):
    assert cli.main(_erf_argv(fashion, tmp_path, "--in-chans", "1", "--stage", "0")) == 0
    out = capsys.readouterr().out
    assert "ERF of mambaout_test stage 0 over 2 images" in out and "99%" in out


@pytest.mark.parametrize("stage", ["4", "-5"])
def test_bad_stage_is_one_line(fashion, tmp_path, capsys, stage):
    _one_line_error(capsys, _erf_argv(fashion, tmp_path, "--in-chans", "1", "--stage", stage), "out of range", "0..3")


@pytest.mark.parametrize("content", [b"not an image", None])
def test_unreadable_image_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    argv = ["explain", "erf", "mambaout_test", "--image", str(path), "--img-size", "32", "-o", str(tmp_path / "o")]
    _one_line_error(capsys, argv, str(path), "unreadable image" if content else "not found")


def test_one_image_file(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    argv = ["explain", "erf", "mambaout_test", "--image", str(tmp_path / "red.png"), "--img-size", "32"]
    assert cli.main(argv + ["-o", str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 1
    images = load_images(image=str(tmp_path / "red.png"), img_size=32, in_chans=3)
    assert images.shape == (1, 3, 32, 32)
    red = images[0, :, 16, 16]  # normalised with ImageNet's mean/std: red high, blue low
    assert red[0] > 0 > red[2]


@pytest.mark.parametrize(
    "argv,words",
    [
        (["explain", "erf", "mambaout_test", "--image", "a.png", "--data-root", "d", "-o", "o"], ["not allowed with"]),
        (["explain", "erf", "mambaout_test"], ["-o/--output"]),
        (["explain", "cam", "mambaout_test", "-o", "o", "--method", "lime"], ["invalid choice: 'lime'"]),
        (["explain", "ssm-attention", "mamba_femto", "-o", "o", "--query", "3"], ["--query", "2 arguments"]),
        (["explain", "compare", "mambaout_test", "-o", "o"], ["at least two models"]),
        (
            ["explain", "compare", "mambaout_test", "mamba_femto", "--checkpoint", "a.pt", "-o", "o"],
            ["one per model", "2 models, 1 checkpoints"],
        ),
        (["explain", "compare", "mambaout_test", "mamba_femto", "--view", "lrp", "-o", "o"], ["invalid choice"]),
        (["explain", "frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_argument_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)  # relative -o folders would land here
    _one_line_error(capsys, argv, *words)


@pytest.mark.parametrize("which", ["last.pt", "model.safetensors", "."])
def test_checkpoint_of_a_run_folder(run_dir, fashion, tmp_path, capsys, which):
    ckpt = os.path.normpath(os.path.join(run_dir, which))
    model = load_model("mambaout_test", ckpt)
    assert model.in_chans == 1 and model.head.fc.out_features == 4 and not model.training
    trained = torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["model"]
    if which == "last.pt":  # the training state's weights, not a fresh initialisation
        assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items() if k in trained)
    # the CLI takes in_chans (1) and num_classes (4) from the checkpoint
    argv = _erf_argv(fashion, tmp_path / "o", "--checkpoint", ckpt, "--json")
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == ckpt


def test_checkpoint_that_contradicts_the_flags_or_the_model(run_dir, fashion, tmp_path, capsys):
    ckpt = os.path.join(run_dir, "model.safetensors")
    with pytest.raises(UsageError, match="in_chans=3 contradicts the checkpoint"):
        load_model("mambaout_test", ckpt, in_chans=3)
    with pytest.raises(CheckpointError, match="holds a mambaout_test model, not mamba_femto"):
        load_model("mamba_femto", ckpt)
    argv = _erf_argv(fashion, tmp_path / "o", "--checkpoint", os.path.join(run_dir, "nope.pt"))
    _one_line_error(capsys, argv, "no such file")


def test_plain_state_dict_gets_its_class_count(tmp_path):
    from mambaout.registry import create_model

    src = create_model("mambaout_test", num_classes=7)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pth")
    model = load_model("mambaout_test", str(tmp_path / "w.pth"))
    assert model.head.fc.out_features == 7
    assert torch.equal(model.head.fc.weight, src.head.fc.weight)


def test_images_spread_over_an_image_folder(tmp_path):
    from PIL import Image

    for c, colour in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
        os.makedirs(tmp_path / "val" / c)
        for i in range(3):
            Image.new("RGB", (20, 24), colour).save(tmp_path / "val" / c / f"{i}.png")
    images = load_images(data_root=str(tmp_path), num_images=2, img_size=16, in_chans=3, dataset="imagefolder")
    assert images.shape == (2, 3, 16, 16)
    assert images[0, 0].mean() > images[0, 2].mean() and images[1, 2].mean() > images[1, 0].mean()  # both classes
    with pytest.raises(UsageError, match="dataset must be"):
        load_images(data_root=str(tmp_path), dataset="coco")
