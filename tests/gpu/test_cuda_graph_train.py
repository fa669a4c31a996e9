"""train.cuda_graph on CUDA: the graphed forward/backward computes what the eager model computes.

* one model, two copies (eager, graphed), the same batches: equal losses over a few AdamW steps, equal
  gradients of the first step, weights within Adam's step bound, with and without gradient accumulation
  (graph outputs are static buffers that every replay overwrites: a gradient kept across replays would show
  up here), in fp32 and under bf16 autocast;
* eval mode and other batch shapes run eagerly;
* capture leaves RNG states and buffers as they were;
* `train()` with and without graphs on synthetic data: the same loss curve within float tolerance.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import mambaout
from mambaout.engine.cuda_graph import graph_training_step
from mambaout.engine.logging import read_metrics
from mambaout.tasks.classification import resolve_config, train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _pair(name, seed=0):
    torch.manual_seed(seed)
    model = mambaout.create_model(name, num_classes=10, in_chans=1, stem_stride=2).cuda()
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("name", ["mambaout_femto", "mamba_femto"])
@pytest.mark.parametrize("amp, accum", [(None, 1), (None, 2), (torch.bfloat16, 1)])
def test_graphed_steps_equal_eager_steps(name, amp, accum):
    eager, graphed = _pair(name)
    x0 = torch.randn(16, 1, 32, 32, device="cuda")
    rng = torch.cuda.get_rng_state(), torch.get_rng_state()
    graph_training_step(graphed, x0, amp)
    assert torch.equal(torch.cuda.get_rng_state(), rng[0]) and torch.equal(torch.get_rng_state(), rng[1])
    models = (eager, graphed)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]
    g = torch.Generator(device="cuda").manual_seed(1)
    losses, grads = ([], []), ([], [])
    for step in range(3):
        batches = [
            (
                torch.randn(16, 1, 32, 32, device="cuda", generator=g),
                torch.randint(0, 10, (16,), device="cuda", generator=g),
            )
            for _ in range(accum)
        ]
        for model, opt, model_losses, model_grads in zip(models, opts, losses, grads):
            for x, y in batches:
                with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                    loss = F.cross_entropy(model(x), y)
                (loss / accum).backward()
                model_losses.append(loss.item())
            if step == 0:  # before the first update: later, Adam amplifies float noise of near-zero gradients
                model_grads[:] = [p.grad.clone() for p in model.parameters()]
            opt.step()
            opt.zero_grad(set_to_none=False)  # as the training loop does with graphs
    tol = dict(rtol=2e-2, atol=2e-3) if amp else dict(rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), **tol)
    for ge, gg in zip(*grads):
        torch.testing.assert_close(gg, ge, **tol)
    # an Adam step moves a weight by at most ~lr: 3 steps of opposite sign bound the drift by 6e-3
    for pe, pg in zip(eager.parameters(), graphed.parameters()):
        torch.testing.assert_close(pg, pe, rtol=0, atol=6e-3)


def test_eval_and_other_shapes_run_eagerly():
    eager, graphed = _pair("mamba_femto")
    graph_training_step(graphed, torch.randn(8, 1, 32, 32, device="cuda"))
    x = torch.randn(5, 1, 32, 32, device="cuda")  # another batch size: eager, with autograd
    torch.testing.assert_close(graphed(x), eager(x), rtol=1e-4, atol=1e-5)
    graphed.eval(), eager.eval()
    x = torch.randn(8, 1, 32, 32, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(graphed(x), eager(x), rtol=1e-4, atol=1e-5)


def test_train_with_and_without_graphs(tmp_path):
    rows = {}
    for graphs in (False, True):
        cfg = resolve_config(
            "synthetic",
            [
                f"train.output={tmp_path}",
                f"train.name=g{graphs}",
                f"train.cuda_graph={str(graphs).lower()}",
                "model.name=mamba_femto",
                "model.drop_path=0.0",
                "sched.epochs=3",
                "data.synthetic_train=512",
                "data.synthetic_val=128",
                "data.synthetic_noise=2.0",
                "train.batch_size=64",
                "train.amp=null",
                "data.num_workers=2",
            ],
            device="cuda",
        )
        rows[graphs] = read_metrics(train(cfg, quiet=True)["run_dir"])
    for a, b in zip(rows[False], rows[True]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3 * max(1.0, abs(a["train_loss"])), (a, b)
        assert abs(a["val_top1"] - b["val_top1"]) <= 1.0, (a, b)


def test_drop_path_trains_under_graphs(tmp_path):
    cfg = resolve_config(
        "synthetic",
        [
            f"train.output={tmp_path}",
            "train.name=dp",
            "train.cuda_graph=true",
            "model.name=mamba_femto",
            "model.drop_path=0.2",
            "sched.epochs=3",
            "data.synthetic_train=512",
            "data.synthetic_val=128",
            "train.batch_size=64",
            "train.amp=bf16",
            "data.num_workers=2",
        ],
        device="cuda",
    )
    rows = read_metrics(train(cfg, quiet=True)["run_dir"])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["val_top1"] > 50, rows
