"""Classification training/eval on CPU with tiny models (a few seconds each)."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import mambaout
from mambaout import cli
from mambaout.engine.logging import read_metrics
from mambaout.engine.optim import param_groups
from mambaout.errors import ConfigError, NonFiniteLossError, UnknownModelError
from mambaout.tasks.classification import compare
from mambaout.tasks.classification.task import build_model, resolve_config, train
from mambaout.weights import save_safetensors


def _cfg(tmp_path, *extra):
    return resolve_config("synthetic", [f"train.output={tmp_path}", "train.name=run", *extra])


def test_training_lowers_the_loss(tmp_path):
    summary = train(_cfg(tmp_path, "sched.epochs=3", "data.synthetic_noise=4.0"), quiet=True)
    rows = read_metrics(summary["run_dir"])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] < 1.6
    assert summary["final"]["val_top1"] > 40.0  # 4 classes: chance is 25%
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "curves.png", "model.safetensors"):
        assert os.path.isfile(os.path.join(summary["run_dir"], name)), name


def test_eval_reproduces_logged_accuracy(tmp_path, capsys):
    summary = train(_cfg(tmp_path, "sched.epochs=1", "data.synthetic_noise=6.0", "train.ema=true"), quiet=True)
    logged = read_metrics(summary["run_dir"])[-1]
    assert 30.0 < logged["val_top1"] < 100.0  # informative, not saturated
    ckpt = os.path.join(summary["run_dir"], "last.pt")
    for argv in (["eval", "--checkpoint", ckpt], ["eval", "--run", summary["run_dir"]]):
        assert cli.main(argv + ["--json"]) == 0
        out, err = capsys.readouterr()
        res = json.loads(out)  # --json: stdout holds the JSON alone, the readable line goes to stderr
        assert "top-1" in err
        assert res["top1"] == pytest.approx(logged["val_top1"]) and res["top5"] == pytest.approx(logged["val_top5"])
    assert cli.main(["eval", "--checkpoint", ckpt, "--ema", "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["top1"] == pytest.approx(logged["ema_top1"])
    # the exported safetensors loads through the public API
    model = mambaout.create_model(
        "mambaout_test", pretrained=os.path.join(summary["run_dir"], "model.safetensors"), num_classes=4
    )
    assert model.head.fc.out_features == 4
    # any resolution divisible by the model's size divisor
    assert cli.main(["eval", "--checkpoint", ckpt, "--img-size", "64", "--quiet"]) == 0


def _image_folder(root, n_per_class=8):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, color in enumerate(((200, 30, 30), (30, 30, 200))):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                arr = np.clip(np.array(color) + rng.normal(0, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
                img = Image.fromarray(arr)
                if i == 1:
                    img = img.convert("L")  # grayscale file in an RGB dataset
                img.save(folder / f"{i}.png")
    (root / "train" / "class0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(64))
    (root / "val" / "class1" / "truncated.png").write_bytes((root / "val" / "class1" / "0.png").read_bytes()[:60])


def test_corrupt_image_does_not_stop_training(tmp_path):
    _image_folder(tmp_path / "data")
    cfg = resolve_config(
        "imagenet",
        [
            f"train.output={tmp_path}",
            "train.name=folder",
            "model.name=mambaout_test",
            f"data.root={tmp_path / 'data'}",
            "data.num_classes=2",
            "data.img_size=32",
            "data.num_workers=0",
            "train.batch_size=4",
            "train.accum_steps=2",
            "train.eval_batch_size=8",
            "sched.epochs=1",
            "sched.warmup_epochs=0",
            "train.device=cpu",
        ],
    )
    summary = train(cfg, quiet=True)
    assert summary["bad_images"] == 2
    run_dir = summary["run_dir"]
    bad = (
        open(os.path.join(run_dir, "bad_images_train.txt")).read()
        + open(os.path.join(run_dir, "bad_images_val.txt")).read()
    )
    assert "broken.jpg" in bad and "truncated.png" in bad
    assert read_metrics(run_dir)[-1]["bad_images"] == 2
    assert "skipping unreadable image" in open(os.path.join(run_dir, "train.log")).read()


def test_param_groups_no_decay_and_backbone_scale():
    model = mambaout.create_model("mambaout_test", num_classes=3)
    model.stages[0].blocks[0].fc1.weight._no_weight_decay = True  # as an SSM flags A_log / D
    groups = {g["name"]: g for g in param_groups(model, 0.05, backbone_lr_scale=0.1)}
    decayed = {id(p) for g in groups.values() if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        expect = p.ndim > 1 and not name.endswith(".bias") and name != "stages.0.blocks.0.fc1.weight"
        assert (id(p) in decayed) == expect, name
    assert groups["backbone_decay"]["lr_scale"] == 0.1 and groups["head_decay"]["lr_scale"] == 1.0


def test_transfer_learning_new_head_and_frozen_stages(tmp_path):
    src = mambaout.create_model("mambaout_test", num_classes=7)
    save_safetensors(src, str(tmp_path / "src.safetensors"))
    cfg = _cfg(
        tmp_path,
        f"model.pretrained={tmp_path / 'src.safetensors'}",
        "model.freeze_stages=2",
        "model.backbone_lr_scale=0.1",
    )
    model = build_model(cfg)
    assert model.head.fc.out_features == 4
    assert torch.equal(model.stages[3].blocks[0].fc1.weight, src.stages[3].blocks[0].fc1.weight)
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    summary = train(cfg, quiet=True)
    assert summary["final"]["val_top1"] >= 0
    trained = mambaout.create_model(
        "mambaout_test", num_classes=4, pretrained=os.path.join(summary["run_dir"], "model.safetensors")
    )
    assert torch.equal(trained.stem.conv1.weight, src.stem.conv1.weight)  # frozen


@pytest.mark.parametrize(
    "extra, steps, saved",
    [
        ([], "9-16", (1, 0, 8)),  # found at the end of epoch 1 (log_every 50): last.pt is epoch 0's
        (["train.save_every_steps=2", "train.log_every=50"], "11-12", (1, 2, 10)),  # found before the step-12 save
    ],
)
def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path, monkeypatch, extra, steps, saved):
    from mambaout.tasks.classification import task as train_mod

    cfg = _cfg(tmp_path, "sched.epochs=2", *extra)
    real = train_mod.build_loss

    def loss_that_explodes(cfg, mixup):
        base, calls = real(cfg, mixup), []

        def fn(logits, target):
            calls.append(1)
            loss = base(logits, target)
            return loss * float("nan") if len(calls) > 10 else loss  # epoch 0 has 8 steps; step 11 is NaN

        return fn

    monkeypatch.setattr(train_mod, "build_loss", loss_that_explodes)
    with pytest.raises(
        NonFiniteLossError, match=f"non-finite loss at epoch 1, in optimizer steps {steps} .*nothing was saved"
    ):
        train(cfg, quiet=True)
    from mambaout.engine.state import load_state

    last = tmp_path / "run" / "last.pt"
    state = load_state(last)
    assert (*state["data"], state["step"]) == saved
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "run" / "model.safetensors").exists()
    # the kept checkpoint resumes (the patched loss counts its calls afresh: 10 more good steps)
    summary = train(resume=str(last), quiet=True)
    assert summary["steps"] == 16 and all(torch.isfinite(v).all() for v in load_state(last)["model"].values())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "nope"], "unknown classification preset"),
        (["train", "--preset", "synthetic", "--set", "optim.lrr=1"], "unknown config key"),
        (["train", "--preset", "synthetic", "--set", "optim.lr"], "expected key=value"),
        (
            ["train", "--preset", "imagenet", "--model", "mambaout_test", "--data-root", "/no/such/dir"],
            "does not exist",
        ),
        (["train", "--preset", "synthetic", "--model", "mambaout_tinyy"], "unknown model"),
        (["train", "--preset", "fashion_mnist", "--data-root", "/no/such/dir", "--device", "cpu"], "Fashion-MNIST"),
        (["eval", "--checkpoint", "/no/such.pt"], "no such file"),
    ],
)
def test_bad_inputs_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and message in err


def test_main_job_checks_every_model_before_training(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(compare, "train", lambda cfg, quiet=False: trained.append(cfg.model.name))
    with pytest.raises(UnknownModelError, match="'mambaout_tny'; did you mean mambaout_tiny"):
        compare.run(models=("mambaout_test", "mambaout_tny"), preset="synthetic", output=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown optimizer 'adamx'"):
        compare.run(models=("mambaout_test",), preset="synthetic", overrides=["optim.opt=adamx"], output=str(tmp_path))
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        compare.run(models=("mambaout_test",), preset="synthetic", output=__file__)
    assert trained == []  # the first model did not train before the mistake was noticed


def test_main_job_skips_a_model_the_recipe_cannot_build(tmp_path, capsys, monkeypatch):
    build = compare.build_model

    def picky(cfg):
        if cfg.model.name == "mambaout_femto":
            raise TypeError("unexpected keyword argument 'stem_stride'")
        return build(cfg)

    monkeypatch.setattr(compare, "build_model", picky)
    result = compare.run(
        models=("mambaout_test", "mambaout_femto"),
        preset="synthetic",
        overrides=["sched.epochs=1"],
        output=str(tmp_path),
        quiet=True,
    )
    assert [r["model"] for r in result["rows"]] == ["mambaout_test"]
    assert "stem_stride" in result["skipped"]["mambaout_femto"]
    assert os.path.isfile(tmp_path / "compare_curves.png")
    assert "mambaout_test was trained alone" in capsys.readouterr().out


def test_each_run_logs_to_its_own_folder(tmp_path):
    first = train(_cfg(tmp_path, "sched.epochs=1", "train.name=first"), quiet=True)["run_dir"]
    second = train(_cfg(tmp_path, "sched.epochs=1", "train.name=second"), quiet=True)["run_dir"]
    logs = [open(os.path.join(d, "train.log")).read() for d in (first, second)]
    assert "run " + first in logs[0] and second not in logs[0]
    assert "run " + second in logs[1] and first + ":" not in logs[1]


def test_isotropic_models_build_with_the_recipes_and_refuse_a_stem_stride(tmp_path):
    model = build_model(_cfg(tmp_path, "model.name=vim_tiny"))  # stem_stride 4 is the stem's default: not passed
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ConfigError, match="vim_tiny cannot be built with this recipe: .*stem_stride"):
        build_model(_cfg(tmp_path, "model.name=vim_tiny", "model.stem_stride=2"))
