"""Classification: a held-out validation split (``data.holdout``), test-time mirroring (``train.eval_flip``,
``mambaout eval --flip``) and the on-device data path (``data.device_augment``), on CPU."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import mambaout
from mambaout import cli
from mambaout.engine.logging import read_metrics
from mambaout.engine.state import load_state
from mambaout.errors import ConfigError
from mambaout.tasks.classification import data, resolve_config, train
from mambaout.tasks.classification.evaluate import evaluate
from mambaout.tasks.classification.task import ClassificationTask

N_TRAIN, N_TEST = 64, 32


def _fm(tmp_path, write_fashion, *extra, name="fm"):
    root = tmp_path / "fm"
    if not root.exists():
        write_fashion(str(root), N_TRAIN, N_TEST)
    return resolve_config(
        "fashion_mnist",
        [
            f"data.root={root}",
            f"train.output={tmp_path}",
            f"train.name={name}",
            "model.name=mambaout_test",
            "data.train_subset=null",
            "data.val_subset=null",
            "train.batch_size=8",
            "train.eval_batch_size=8",
            "sched.epochs=1",
            *extra,
        ],
        device="cpu",
    )


# --- data.holdout -------------------------------------------------------------------------------------


def test_holdout_splits_are_disjoint_covering_and_seed_independent(tmp_path, fashion_standin):
    n = 100
    splits = {}
    for seed in (0, 1):
        cfg = _fm(tmp_path, fashion_standin, "data.holdout=15", f"train.seed={seed}")
        tr, va = data.split_indices(cfg, "train", n), data.split_indices(cfg, "val", n)
        assert len(va) == 15 and len(tr) == 85 and not set(tr) & set(va) and sorted(tr + va) == list(range(n))
        assert tr == sorted(tr) and va == sorted(va)
        assert data.source_split(cfg, "val") == data.source_split(cfg, "train") == "train"
        splits[seed] = tr, va
    assert splits[0] == splits[1]  # the same held-out images whatever the training seed
    plain = _fm(tmp_path, fashion_standin)
    assert data.split_indices(plain, "train", n) is None and data.split_indices(plain, "val", n) is None
    assert data.source_split(plain, "val") == "val"


def test_subsets_come_from_their_pools(tmp_path, fashion_standin):
    n, holdout = 100, 20
    base = _fm(tmp_path, fashion_standin, f"data.holdout={holdout}")
    pools = data.split_indices(base, "train", n), data.split_indices(base, "val", n)
    subsets = []
    for seed in (0, 1):
        cfg = _fm(
            tmp_path,
            fashion_standin,
            f"data.holdout={holdout}",
            "data.train_subset=30",
            "data.val_subset=7",
            f"train.seed={seed}",
        )
        tr, va = data.split_indices(cfg, "train", n), data.split_indices(cfg, "val", n)
        assert len(tr) == 30 and len(set(tr)) == 30 and set(tr) <= set(pools[0])
        assert len(va) == 7 and set(va) <= set(pools[1])
        subsets.append(tr)
    assert subsets[0] != subsets[1]  # the subset is seeded, the held-out split is not
    big = _fm(tmp_path, fashion_standin, f"data.holdout={holdout}", "data.train_subset=1000")
    assert data.split_indices(big, "train", n) == pools[0]  # a subset larger than its pool: all of it


def test_holdout_datasets_and_errors(tmp_path, fashion_standin):
    cfg = _fm(tmp_path, fashion_standin, "data.holdout=16")
    train_set, val_set = data.build_dataset(cfg, "train"), data.build_dataset(cfg, "val")
    assert len(train_set) == N_TRAIN - 16 and len(val_set) == 16
    assert val_set.base.targets.shape == (N_TRAIN,)  # validation images come from the training file
    assert set(train_set.indices).isdisjoint(val_set.indices)
    for bad in (N_TRAIN, N_TRAIN + 5):
        with pytest.raises(ConfigError, match="leaves no training images"):
            data.build_dataset(_fm(tmp_path, fashion_standin, f"data.holdout={bad}"), "train")
    with pytest.raises(ConfigError, match="holdout must not be negative"):
        _fm(tmp_path, fashion_standin, "data.holdout=-1")


# --- config validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, sets, message",
    [
        ("synthetic", [], "needs an in-memory data set (data.dataset: fashion_mnist)"),
        ("imagenet", ["data.root=/no/such/dir"], "needs an in-memory data set"),
        ("fashion_mnist", ["data.dataset=synthetic"], "needs an in-memory data set"),
        ("fashion_mnist", ["aug.color_jitter=0.4"], "set aug.auto_augment and aug.color_jitter to null"),
        ("fashion_mnist", ["aug.auto_augment=rand-m9-mstd0.5"], "set aug.auto_augment and aug.color_jitter"),
    ],
)
def test_device_augment_config_errors_are_one_line(preset, sets, message, capsys, tmp_path, monkeypatch):
    sets = [*sets, "data.device_augment=true"]
    with pytest.raises(ConfigError, match="device_augment"):
        resolve_config(preset, sets, device="cpu")
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--preset", preset, "--device", "cpu"] + [a for s in sets for a in ("--set", s)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and message in err, err


def test_device_augment_accepts_the_fashion_mnist_preset(tmp_path, fashion_standin):
    cfg = _fm(tmp_path, fashion_standin, "data.device_augment=true")
    assert cfg.data.device_augment and cfg.aug.color_jitter is None and cfg.aug.auto_augment is None


# --- evaluate(..., flip=True) -------------------------------------------------------------------------


def test_flip_evaluation_is_the_mean_of_softmaxes():
    model = mambaout.create_model("mambaout_test", num_classes=4, in_chans=1)
    torch.manual_seed(1)
    x, y = torch.randn(10, 1, 32, 32), torch.randint(0, 4, (10,))
    loader = [(x[:6], y[:6]), (x[6:], y[6:])]
    model.train()  # evaluate switches to eval mode itself
    res = evaluate(model, loader, torch.device("cpu"), flip=True)
    plain = evaluate(model, loader, torch.device("cpu"), flip=False)
    with torch.no_grad():
        logits, mirrored = model(x), model(x.flip(-1))
    probs = (logits.softmax(1) + mirrored.softmax(1)) / 2
    assert not torch.allclose(logits.softmax(1), mirrored.softmax(1), atol=1e-3)  # mirroring changes the scores
    log_p = probs.log()
    assert res["count"] == plain["count"] == 10
    assert res["loss"] == pytest.approx(F.nll_loss(log_p, y).item(), rel=1e-5)
    assert res["top1"] == pytest.approx(100.0 * (probs.argmax(1) == y).float().mean().item())
    top5 = min(5, 4)
    assert res["top5"] == pytest.approx(100.0 * (log_p.topk(top5, 1).indices == y[:, None]).any(1).float().mean())
    assert res["top1_single"] == pytest.approx(plain["top1"])
    assert plain["top1"] == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item())
    assert plain["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert "top1_single" not in plain


# --- data.device_augment end to end -------------------------------------------------------------------

DEVICE_RUN = (
    "data.device_augment=true",
    "data.holdout=32",
    "train.eval_flip=true",
    "sched.epochs=2",
    "train.save_every_steps=2",
)
# 32 training images / batch 8: 4 steps an epoch, 8 in all; aug.reprob 0.1 (the preset): erasing included


def test_device_augment_trains_resumes_exactly_and_evaluates(tmp_path, capsys, fashion_standin, crash_in_step):
    ref = train(_fm(tmp_path, fashion_standin, *DEVICE_RUN, name="ref"), quiet=True)
    assert ref["device_augment"] is True and ref["gpu_prefetch"] is False and ref["steps"] == 8
    rows = read_metrics(ref["run_dir"])
    assert len(rows) == 2 and all(r["train_loss"] == r["train_loss"] for r in rows)  # finite
    assert 0 <= rows[-1]["val_top1"] <= 100 and 0 <= rows[-1]["val_top1_single"] <= 100  # train.eval_flip

    with crash_in_step(ClassificationTask, 7), pytest.raises(KeyboardInterrupt):
        train(_fm(tmp_path, fashion_standin, *DEVICE_RUN, name="cut"), quiet=True)
    last = str(tmp_path / "cut" / "last.pt")
    state = load_state(last)
    assert state["step"] == 6 and tuple(state["data"]) == (1, 2)  # mid-epoch
    summary = train(resume=last, quiet=True)
    assert summary["steps"] == 8
    a = load_file(os.path.join(ref["run_dir"], "model.safetensors"))
    b = load_file(os.path.join(summary["run_dir"], "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in rs]  # noqa: E731
    assert strip(read_metrics(summary["run_dir"])) == strip(rows)

    # `mambaout eval --run`: the same on-device validation images (held out of the training file), mirrored
    # by default as in training (train.eval_flip)
    capsys.readouterr()
    assert cli.main(["eval", "--run", ref["run_dir"], "--flip", "--quiet"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.count("\n") == 0 and ", flip:" in printed and "top-1 " in printed and "(32 images)" in printed
    assert cli.main(["eval", "--run", ref["run_dir"], "--quiet", "--json"]) == 0
    flipped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert flipped["flip"] is True and flipped["count"] == 32
    assert flipped["top1"] == pytest.approx(rows[-1]["val_top1"]) and flipped["loss"] == pytest.approx(
        rows[-1]["val_loss"]
    )
    assert flipped["top1_single"] == pytest.approx(rows[-1]["val_top1_single"])
    assert cli.main(["eval", "--run", ref["run_dir"], "--no-flip", "--quiet", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        plain["flip"] is False and "top1_single" not in plain and plain["top1"] == pytest.approx(flipped["top1_single"])
    )
