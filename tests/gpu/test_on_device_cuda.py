"""data.device_augment on CUDA with train.cuda_graph: the images and their augmentation on the GPU, the step
replayed as CUDA graphs; an interrupted and resumed run ends with the uninterrupted run's weights, bit for bit."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from mambaout import cli
from mambaout.engine.logging import read_metrics
from mambaout.engine.state import load_state
from mambaout.tasks.classification import data, resolve_config, train
from mambaout.tasks.classification.task import ClassificationTask

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

# 96 training images, 32 held out: 64 / batch 16 = 4 steps an epoch, 8 in all; aug.reprob 0.1 (the preset)
SETS = (
    "model.name=mambaout_test",
    "data.device_augment=true",
    "data.holdout=32",
    "data.train_subset=null",
    "data.val_subset=null",
    "train.cuda_graph=true",
    "train.eval_flip=true",
    "train.batch_size=16",
    "train.eval_batch_size=32",
    "train.save_every_steps=2",
    "sched.epochs=2",
)


def _cfg(tmp_path, name):
    return resolve_config(
        "fashion_mnist",
        [f"data.root={tmp_path / 'fm'}", f"train.output={tmp_path}", f"train.name={name}", *SETS],
        device="cuda",
    )


def test_device_augment_with_cuda_graphs_trains_and_resumes_exactly(tmp_path, crash_in_step, capsys, fashion_standin):
    fashion_standin(str(tmp_path / "fm"), 96, 32)
    cfg = _cfg(tmp_path, "ref")
    stream = data.device_train_stream(cfg, torch.device("cuda"), 0, 1)
    images, targets = stream.next()
    assert images.is_cuda and targets.is_cuda and images.shape == (16, 1, 32, 32) and images.dtype == torch.float32
    assert stream.batches_per_epoch == 4

    ref = train(cfg, quiet=True)
    assert ref["device_augment"] is True and ref["steps"] == 8
    rows = read_metrics(ref["run_dir"])
    assert len(rows) == 2 and all(r["train_loss"] == r["train_loss"] for r in rows)  # finite

    with crash_in_step(ClassificationTask, 7), pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, "cut"), quiet=True)
    last = str(tmp_path / "cut" / "last.pt")
    state = load_state(last)
    assert state["step"] == 6 and tuple(state["data"]) == (1, 2)  # mid-epoch
    resumed = train(resume=last, quiet=True)
    assert resumed["steps"] == 8
    # bit-identical: the data and its augmentation are functions of (seed, epoch, batch), the RNG states are
    # restored, and capture leaves them as they were
    a = load_file(os.path.join(ref["run_dir"], "model.safetensors"))
    b = load_file(os.path.join(resumed["run_dir"], "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda rs: [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in rs]  # noqa: E731
    assert strip(read_metrics(resumed["run_dir"])) == strip(rows)

    capsys.readouterr()
    assert cli.main(["eval", "--run", ref["run_dir"], "--flip", "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["count"] == 32 and res["flip"] is True
    assert res["top1"] == pytest.approx(rows[-1]["val_top1"]) and res["top1_single"] == pytest.approx(
        rows[-1]["val_top1_single"]
    )


def test_stream_batches_do_not_sync_the_host():
    """A host sync per batch would stop the CPU from queueing the next step while the GPU works."""
    from mambaout.data.on_device import BatchAugment, TensorStream

    images = torch.randint(0, 256, (512, 1, 28, 28), dtype=torch.uint8, device="cuda")
    targets = torch.randint(0, 10, (512,), device="cuda")
    stream = TensorStream(images, targets, 64, BatchAugment(32, [0.3], [0.35], (0.6, 1.0), reprob=0.5))
    stream.next()  # the epoch's order is copied to the device once (one sync per epoch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            x, y = stream.next()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32
