"""The engine's loop: no host sync per step, typed CLI values, one-line errors, older checkpoints."""

import json
import os
import sys

import pytest
import torch
from safetensors.torch import load_file

from mambaout.cli import main
from mambaout.data.shapes import write_ade_shapes
from mambaout.engine.state import load_state, save_state
from mambaout.tasks.classification import resolve_config, train

SYNC_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy")
SRC = os.path.join("mambaout", "")
DATA = os.path.join("mambaout", "data", "")


@pytest.fixture
def host_syncs(monkeypatch):
    """Counts calls that copy a tensor's value to the host, made by the project's step and loop code (not by
    the data pipeline, which works on CPU tensors in DataLoader workers or before the copy to the device)."""
    calls = []

    def counting(name, original):
        def method(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if SRC in caller and DATA not in caller:
                calls.append(f"{name} from {os.path.basename(caller)}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        return method

    for name in SYNC_METHODS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    return calls


def _seg_run(tmp_path, name, steps, root):
    sets = [
        f"tasks.segmentation.data.root={root}",
        f"sched.max_iters={steps}",
        "train.log_every=100",
        "train.metrics_every=0",
        "train.eval_every_iters=0",
        "tasks.segmentation.head.channels=16",
        "tasks.segmentation.head.aux_channels=8",
        "train.batch_size=2",
        "tasks.segmentation.data.crop_size=[32, 32]",
        "tasks.segmentation.data.scale=[64, 64]",
        "tasks.segmentation.eval.crop=[32, 32]",
        "tasks.segmentation.eval.stride=[24, 24]",
        f"train.output={tmp_path}",
        f"train.name={name}",
    ]
    from mambaout.tasks.dense import resolve_config as dense_config
    from mambaout.tasks.dense import train as dense_train

    dense_train(dense_config("segmentation", "synthetic_shapes", sets, device="cpu"), quiet=True)


def test_dense_loop_makes_no_host_sync_per_step(tmp_path, host_syncs):
    root = write_ade_shapes(str(tmp_path / "ade"), 18, 2, (48, 64))  # 9 steps an epoch: rows only at the end
    counts = []
    for steps in (2, 8):
        host_syncs.clear()
        _seg_run(tmp_path, f"s{steps}", steps, root)
        counts.append(list(host_syncs))
    # the same syncs for 2 and 8 steps: one check at the end, the evaluation, the summary -- none per step (a
    # metrics row, an epoch end or a checkpoint syncs once; they are every log_every/metrics_every steps)
    assert len(counts[0]) == len(counts[1]) and 0 < len(counts[1]) < 30, counts


def test_classification_loop_makes_no_host_sync_per_step(tmp_path, host_syncs):
    counts = []
    for n in (64, 256):
        host_syncs.clear()
        cfg = resolve_config(
            "synthetic",
            [
                f"train.output={tmp_path}",
                f"train.name=c{n}",
                "sched.epochs=1",
                f"data.synthetic_train={n}",
                "train.log_every=1000",
            ],
        )
        train(cfg, quiet=True)
        counts.append(len(host_syncs))
    assert counts[0] == counts[1], counts  # 4 and 16 steps


@pytest.mark.parametrize("name", ["no", "2024-01-01", "null-ish", "1e3"])
def test_run_names_stay_strings(tmp_path, name):
    assert (
        main(
            [
                "train",
                "--preset",
                "synthetic",
                "--quiet",
                "--epochs",
                "1",
                "--output",
                str(tmp_path),
                "--name",
                name,
                "--set",
                "data.synthetic_train=32",
                "--set",
                "data.synthetic_val=16",
            ]
        )
        == 0
    )
    state = load_state(str(tmp_path / name / "last.pt"))
    assert state["config"]["train"]["name"] == name and isinstance(state["config"]["train"]["name"], str)
    assert json.load(open(tmp_path / name / "summary.json"))["run_dir"].endswith(name)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "train.batch_size=abc"], "'train.batch_size': expected an integer, got 'abc'"),
        (["--set", "train.amp=fp8"], "'train.amp': expected one of 'bf16', 'fp16' or null, got 'fp8'"),
        (["--set", "aug.scale=[0.5]"], "'aug.scale': expected 2 values"),
        (["--set", "optim.lrr=1"], "did you mean 'optim.lr'"),
        (["--set", "train.log_every=0"], "train.log_every must be a positive integer"),
    ],
)
def test_set_errors_are_one_line(capsys, argv, message):
    assert main(["train", "--preset", "synthetic", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and message in err, err


def test_resume_refuses_changing_the_run(tmp_path, capsys):
    cfg = resolve_config("synthetic", [f"train.output={tmp_path}", "train.name=r", "sched.epochs=1"])
    train(cfg, quiet=True)
    last = str(tmp_path / "r" / "last.pt")
    assert main(["train", "--resume", last, "--batch-size", "4"]) == 2
    assert "train.batch_size cannot change" in capsys.readouterr().err
    assert main(["train", "--resume", last, "--epochs", "2", "--quiet"]) == 0  # a longer schedule may
    assert load_state(last)["step"] == 16


def _as_format_1(state: dict) -> dict:
    """A checkpoint in the layout the classification loop wrote before the engine (format 1)."""
    old = {k: v for k, v in state.items() if k not in ("format", "task", "data", "meter")}
    epoch, batch = state["data"]
    count = state["meter"]["count"] * state["config"]["train"]["batch_size"]
    old.update(
        epoch=epoch,
        batch_in_epoch=batch,
        epoch_stats={"loss_sum": 0.0, "count": count},
        best=None if state["best"] is None else {"epoch": 0, "val_top1": state["best"]["value"], "val_top5": 0},
    )
    for key in ("metrics_every", "tensorboard", "best_metric", "eval_every_iters"):  # keys that came later
        old["config"]["train"].pop(key)
    for key in ("bias_decay", "no_decay_keys"):
        old["config"]["optim"].pop(key)
    for key in ("max_iters", "warmup_iters", "milestones", "gamma", "poly_power"):
        old["config"]["sched"].pop(key)
    return old


def test_older_checkpoints_resume_or_are_refused(tmp_path, capsys, crash_in_step):
    from mambaout.tasks.classification.task import ClassificationTask

    sets = [f"train.output={tmp_path}", "sched.epochs=2", "train.save_every_steps=3", "data.synthetic_noise=3.0"]
    ref = train(resolve_config("synthetic", sets + ["train.name=ref"]), quiet=True)
    with crash_in_step(ClassificationTask, 10), pytest.raises(KeyboardInterrupt):
        train(resolve_config("synthetic", sets + ["train.name=old"]), quiet=True)
    last = str(tmp_path / "old" / "last.pt")
    state = load_state(last)
    assert state["step"] == 9 and tuple(state["data"]) == (1, 1)  # mid-epoch
    save_state(last, _as_format_1(state))
    assert main(["train", "--resume", last, "--quiet"]) == 0
    a, b = (
        load_file(os.path.join(ref["run_dir"], "model.safetensors")),
        load_file(tmp_path / "old" / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a detection/segmentation checkpoint of that time: refused in one line, saying why
    save_state(str(tmp_path / "dense.pt"), {"model": {}, "config": {"task": "segmentation"}, "loaders": {}, "step": 3})
    capsys.readouterr()
    assert main(["train-seg", "--resume", str(tmp_path / "dense.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "state format 1" in err and "cannot be resumed" in err
