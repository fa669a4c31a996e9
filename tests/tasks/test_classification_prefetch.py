"""The GPU-prefetch data path (uint8 images, fast_collate, timm's PrefetchLoader) and train.log_every, on CPU.

timm's PrefetchLoader also runs on a CPU device (no side stream), so ``data.gpu_prefetch=true`` exercises the
whole path here; tests/gpu/test_prefetch_loader.py runs it on CUDA.
"""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data.loader import fast_collate

from mambaout import cli
from mambaout.data import SyntheticClassification
from mambaout.engine import config as C
from mambaout.engine.logging import read_metrics
from mambaout.errors import ConfigError
from mambaout.tasks.classification import ClassificationConfig, data, resolve_config, train


def _fm_cfg(tmp_path, write_fashion, *extra):
    write_fashion(str(tmp_path / "fm"))
    return resolve_config(
        "fashion_mnist",
        [
            f"data.root={tmp_path / 'fm'}",
            f"train.output={tmp_path}",
            "train.name=fm_run",  # not the data folder: a run never writes into a folder that holds other files
            "model.name=mambaout_test",
            "data.train_subset=null",
            "data.val_subset=null",
            "train.batch_size=16",
            "train.eval_batch_size=16",
            "sched.epochs=1",
            *extra,
        ],
        device="cpu",
    )


@pytest.mark.parametrize("in_chans, mean, std", [(1, [0.3], [0.35]), (3, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])])
def test_uint8_transforms_match_the_normalised_path(tmp_path, in_chans, mean, std, fashion_standin):
    cfg = _fm_cfg(tmp_path, fashion_standin, f"model.in_chans={in_chans}", f"data.mean={mean}", f"data.std={std}")
    plain = data.build_dataset(cfg, "val")
    raw = data.build_dataset(cfg, "val", uint8=True)
    x, y = raw[3]
    assert x.dtype == torch.uint8 and x.shape == (in_chans, 32, 32) and y == plain[3][1]  # 'L' -> (1, H, W)
    # what the prefetcher does on the device gives the CPU path's normalised float image back
    m, s = torch.tensor(mean).view(-1, 1, 1) * 255, torch.tensor(std).view(-1, 1, 1) * 255
    torch.testing.assert_close((x.float() - m) / s, plain[3][0], rtol=0, atol=1e-5)
    t, _ = data.build_dataset(cfg, "train", uint8=True)[0]
    assert t.dtype == torch.uint8 and t.shape == (in_chans, 32, 32)
    images, targets = fast_collate([raw[i] for i in range(4)])
    assert images.dtype == torch.uint8 and images.shape == (4, in_chans, 32, 32)
    assert targets.dtype == torch.int64 and targets.tolist() == [raw[i][1] for i in range(4)]


def test_synthetic_uint8_is_the_float_sample_quantised():
    mean, std = [0.5, 0.4, 0.6], [0.25, 0.2, 0.3]
    f = SyntheticClassification(8, 4, 16, noise=0.5, seed=1)
    u = SyntheticClassification(8, 4, 16, noise=0.5, seed=1, uint8=True, mean=mean, std=std)
    x, y = f[5]
    q, yq = u[5]
    assert q.dtype == torch.uint8 and q.shape == x.shape and y == yq
    m, s = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    back = (q.float() - 255 * m) / (255 * s)
    inside = (x > -m / s) & (x < (1 - m) / s)  # values outside are clipped to 0 / 255
    assert inside.float().mean() > 0.9
    assert ((back - x).abs()[inside] <= 0.5 / (255 * s).expand_as(x)[inside] + 1e-5).all()
    assert (q[~inside] == 0).logical_or(q[~inside] == 255).all()


def test_prefetch_stream_normalises_and_resumes(tmp_path, fashion_standin):
    cfg = _fm_cfg(tmp_path, fashion_standin, "aug.reprob=0.0")  # erasing on the device draws from the global RNG
    ds = data.build_dataset(cfg, "train", uint8=True)
    stream = data.train_stream(cfg, ds, 0, 1, pin=False, prefetch_to=torch.device("cpu"))
    assert stream.batches_per_epoch == 4
    batches = [stream.next() for _ in range(4)]
    images, targets = batches[1]
    assert images.dtype == torch.float32 and images.shape == (16, 1, 32, 32) and targets.dtype == torch.int64
    resumed = data.train_stream(cfg, ds, 0, 1, pin=False, prefetch_to=torch.device("cpu"))
    resumed.seek((0, 1))  # mid-epoch resume: the same normalised batches
    for (a, ya), (b, yb) in zip(batches[1:], [resumed.next() for _ in range(3)]):
        assert torch.equal(ya, yb) and torch.allclose(a, b)
    val = data.build_dataset(cfg, "val", uint8=True)
    ev = data.eval_loader(cfg, val, 1, 2, pin=False, prefetch_to=torch.device("cpu"))  # rank 1 of 2
    assert sum(len(t) for _, t in ev) == 16 and len(ev) == 1
    empty = data.eval_loader(cfg, torch.utils.data.Subset(val, []), 0, 1, pin=False, prefetch_to=torch.device("cpu"))
    assert list(empty) == []


def test_gpu_prefetch_setting():
    cfg = resolve_config("synthetic")
    assert data.gpu_prefetch(cfg, torch.device("cpu")) is False  # auto
    assert data.gpu_prefetch(cfg, torch.device("cuda")) is True
    saved = C.to_dict(cfg)
    del saved["data"]["gpu_prefetch"]  # a config saved before the key existed: the default
    assert data.gpu_prefetch(C.from_dict(ClassificationConfig, saved), torch.device("cuda")) is True
    with pytest.raises(ConfigError, match="gpu_prefetch"):
        resolve_config("synthetic", ["data.gpu_prefetch=maybe"])
    with pytest.raises(ConfigError, match="log_every"):
        resolve_config("synthetic", ["train.log_every=0"])


def test_prefetch_path_trains_and_eval_reproduces(tmp_path, capsys, fashion_standin):
    cfg = _fm_cfg(
        tmp_path,
        fashion_standin,
        "data.gpu_prefetch=true",
        "aug.reprob=0.5",
        "aug.mixup=0.8",
        "aug.cutmix=1.0",
        "sched.epochs=2",
        "optim.lr=3e-3",
    )
    summary = train(cfg, quiet=True)
    assert summary["gpu_prefetch"] is True
    rows = read_metrics(summary["run_dir"])
    assert all(np.isfinite(r["train_loss"]) for r in rows) and rows[-1]["val_top1"] >= 0
    assert cli.main(["eval", "--checkpoint", os.path.join(summary["run_dir"], "last.pt"), "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["top1"] == pytest.approx(rows[-1]["val_top1"]) and res["loss"] == pytest.approx(rows[-1]["val_loss"])


def test_log_every_does_not_change_the_run(tmp_path):
    def run(name, *extra):
        cfg = resolve_config(
            "synthetic",
            [
                f"train.output={tmp_path}",
                f"train.name={name}",
                "sched.epochs=2",
                "data.synthetic_noise=3.0",
                "train.save_every_steps=3",
                *extra,
            ],
        )
        summary = train(cfg, quiet=True)
        rows = [
            {k: v for k, v in r.items() if "time" not in k and "per_s" not in k}
            for r in read_metrics(summary["run_dir"])
        ]
        return load_file(os.path.join(summary["run_dir"], "model.safetensors")), rows

    ref_w, ref_rows = run("every1", "train.log_every=1")
    for name, every in (("every5", 5), ("every50", 50)):
        w, rows = run(name, f"train.log_every={every}")
        assert rows == ref_rows
        assert all(torch.equal(w[k], ref_w[k]) for k in ref_w)


def test_imagefolder_grayscale_uint8(tmp_path):
    for c in range(2):
        folder = tmp_path / "d" / "val" / f"c{c}"
        folder.mkdir(parents=True)
        Image.fromarray(np.full((40, 30, 3), 100 * c, np.uint8)).save(folder / "rgb.png")  # converted to 'L'
    cfg = resolve_config(
        "imagenet",
        [
            f"data.root={tmp_path / 'd'}",
            "data.num_classes=2",
            "data.img_size=32",
            "model.in_chans=1",
            "data.mean=[0.5]",
            "data.std=[0.5]",
        ],
        device="cpu",
    )
    ds = data.build_dataset(cfg, "val", uint8=True)
    x, y = ds[1]
    assert x.dtype == torch.uint8 and x.shape == (1, 32, 32) and y == 1 and int(x[0, 16, 16]) == 100
