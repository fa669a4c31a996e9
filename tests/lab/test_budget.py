"""Step budgets are exact (the same seed gives the same numbers), wall-clock budgets are refused, and the
per-model lr comes from held-out training data."""

from __future__ import annotations

import pytest
import torch

from mambaout.errors import LabError
from mambaout.lab.budget import steps_of
from mambaout.lab.models import build_seq_model
from mambaout.lab.protocol import run_part
from mambaout.lab.runner import run_group
from mambaout.lab.tasks import CopyTask, FashionTensors, ImageTask
from mambaout.lab.tuning import holdout, tune_lr

CPU = torch.device("cpu")
OPTIM = dict(lr=2e-3, weight_decay=0.05, warmup_frac=0.1, clip_grad=1.0)
SPEC = dict(dim=8, depth=1, kernel_size=4, d_state=4)


def _cells():
    from functools import partial

    return [
        dict(
            label=k, model=k, variant="all", params=0, build=partial(build_seq_model, SPEC, k, None, 10, 10, "all", 24)
        )
        for k in ("gated_cnn", "ssm")
    ]


def _task(eval_seed=12345):
    return CopyTask(24, 2, 8, 4, 5, CPU, eval_size=8, eval_seed=eval_seed)


def test_same_seed_same_numbers():
    task = _task()
    runs = [
        run_part("t", _cells(), task, None, dict(steps=3), [0, 1], CPU, OPTIM, None, task._eval[0][0]) for _ in "ab"
    ]
    for ra, rb in zip(runs[0]["rows"], runs[1]["rows"]):
        assert ra["steps"] == rb["steps"] == 3
        assert (ra["acc"], ra["loss"], ra["final_train_loss"]) == (rb["acc"], rb["loss"], rb["final_train_loss"])
        assert [p["train_loss"] for p in ra["curve"]] == [p["train_loss"] for p in rb["curve"]]
    seed0 = [r for r in runs[0]["rows"] if r["seed"] == 0 and r["label"] == "ssm"][0]
    seed1 = [r for r in runs[0]["rows"] if r["seed"] == 1 and r["label"] == "ssm"][0]
    assert seed0["final_train_loss"] != seed1["final_train_loss"]  # seeds differ: the check can fail
    costs = runs[0]["costs"]
    assert costs["ssm"]["macs"] > costs["gated_cnn"]["macs"] > 0 and costs["ssm"]["step_ms"] > 0


def test_budgets_are_steps():
    task = _task()
    assert steps_of(dict(steps=7, epochs=3), task) == 7
    assert steps_of(dict(epochs=2), task) == 10  # epochs x steps_per_epoch
    with pytest.raises(LabError, match="wall-clock"):
        steps_of(dict(steps=7, budget_s=60), task)
    with pytest.raises(LabError, match="wall-clock"):
        run_group("g", _cells(), task, [0], 3, 60.0, CPU, OPTIM)


def test_tuning_reads_held_out_training_data_only():
    data = FashionTensors.__new__(FashionTensors)
    data.device = CPU
    g = torch.Generator().manual_seed(0)
    data.train_x = torch.randint(0, 256, (96, 28, 28), generator=g, dtype=torch.uint8)
    data.train_y = torch.arange(96) % 10
    data.test_x = torch.full((8, 28, 28), 7, dtype=torch.uint8)  # never read by tuning
    data.test_y = torch.zeros(8, dtype=torch.long)
    val = holdout(data, 32)
    assert torch.equal(val.test_x, data.train_x[:32]) and torch.equal(val.train_x, data.train_x[32:])
    with pytest.raises(LabError):
        holdout(data, 96)

    from functools import partial

    from mambaout.lab.models import build_image_model

    spec = dict(kind="mambaout", depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), stem_stride=4, kernel_size=3)
    cells = [dict(label="m", build=partial(build_image_model, spec))]
    out = tune_lr(cells, ImageTask(val, 16), 3, CPU, OPTIM, [1e-5, 3e-3])
    scores = out["m"]["scores"]
    assert set(scores) == {1e-5, 3e-3} and out["m"]["lr"] == max(scores, key=scores.get)
    assert cells[0]["optim"]["lr"] == out["m"]["lr"] and cells[0]["optim"]["weight_decay"] == 0.05
    assert tune_lr([dict(label="n", build=None)], None, 3, CPU, OPTIM, [5e-4])["n"]["lr"] == 5e-4  # no search
