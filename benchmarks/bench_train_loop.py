"""Training throughput: this project's training loop vs a plain timm training step.

    python benchmarks/bench_train_loop.py --model mambaout_tiny --batch-size 128 --out bench.json

Four numbers, same batch, resolution, bf16 autocast, AdamW, label-smoothed cross-entropy, drop path:
* ``timm_plain``: timm.create_model(<model>) with a minimal loop (data already on the GPU);
* ``ours_plain``: this project's model in the same minimal loop;
* ``ours_loop``: ``mambaout train`` itself on synthetic data (10 DataLoader workers, finite-loss check every
  train.log_every steps, EMA off) with its default data path on CUDA (``data.gpu_prefetch=auto``: uint8
  batches normalised on the GPU by timm's PrefetchLoader; ``path`` says which ran), images/s of each epoch
  after the first;
* ``ours_loop_no_prefetch``: the same with ``data.gpu_prefetch=false`` (float batches normalised by the
  workers), to measure the prefetcher's effect in the same run;
* ``ours_loop_cuda_graph`` (``--cuda-graph``): the loop with ``train.cuda_graph=true`` (forward and backward
  replayed as CUDA graphs: the host no longer has to keep ~1000 kernel launches per step ahead of the GPU).
Minimal loops: warm-up steps, then windows of steps timed by the package's timing core; the median window.
Single models without the training loop: ``mambaout benchmark MODEL --device cuda --mode train`` (docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch
import torch.nn.functional as F


def make_plain_step(model, x: torch.Tensor, y: torch.Tensor):
    """A minimal training step on a batch already on the GPU: bf16 autocast, AdamW, smoothed cross-entropy
    (the package's timing core, mambaout.bench.timing.make_step, with this recipe's optimizer and loss)."""
    from mambaout.bench.timing import make_step

    model.to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss = lambda out, t: F.cross_entropy(out, t, label_smoothing=0.1)  # noqa: E731
    return make_step(model, x, "train", target=y, amp="bf16", optimizer=opt, loss_fn=loss)


def time_steps(step, batch: int, steps: int = 10, windows: int = 5, warmup: int = 10) -> dict:
    """Warm-up steps, then ``windows`` timed windows of ``steps`` steps (CUDA events); the median window."""
    from mambaout.bench.timing import time_calls

    for _ in range(warmup):
        step()
    t = time_calls(lambda: [step() for _ in range(steps)], "cuda", warmup=0, repeats=windows)
    speeds = [batch * steps / (ms / 1e3) for ms in t.times_ms]
    med = statistics.median(speeds)
    return {
        "img_per_s_median": med,
        "ms_per_step": batch / med * 1e3,
        "windows": speeds,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def plain_step_speed(model, batch: int, size: int, num_classes: int = 1000, in_chans: int = 3, **timing) -> dict:
    x = torch.randn(batch, in_chans, size, size, device="cuda")
    y = torch.randint(0, num_classes, (batch,), device="cuda")
    return time_steps(make_plain_step(model, x, y), batch, **timing)


def loop_speed(
    model_name: str,
    batch: int,
    size: int,
    epochs: int = 3,
    steps_per_epoch: int = 100,
    workers: int = 10,
    drop_path: float = 0.2,
    gpu_prefetch="auto",
    cuda_graph: bool = False,
) -> dict:
    from mambaout.engine.logging import read_metrics
    from mambaout.tasks.classification import resolve_config, train

    out = tempfile.mkdtemp()
    cfg = resolve_config(
        "imagenet",
        [
            "data.dataset=synthetic",
            f"model.name={model_name}",
            f"model.drop_path={drop_path}",
            f"data.img_size={size}",
            f"data.synthetic_train={batch * steps_per_epoch}",
            f"data.synthetic_val={batch}",
            "data.synthetic_noise=1.0",
            f"data.num_workers={workers}",
            f"train.batch_size={batch}",
            "train.accum_steps=1",
            "train.amp=bf16",
            "aug.mixup=0",
            "aug.cutmix=0",
            "optim.lr=1e-3",
            f"sched.epochs={epochs}",
            "sched.warmup_epochs=0",
            f"train.eval_every={epochs}",
            f"train.eval_batch_size={batch}",
            f"train.output={out}",
            "train.name=bench",
            "train.device=cuda",
            f"data.gpu_prefetch={str(gpu_prefetch).lower()}",
            f"train.cuda_graph={str(cuda_graph).lower()}",
        ],
    )
    summary = train(cfg, quiet=True)
    speeds = [r["train_img_per_s"] for r in read_metrics(summary["run_dir"])[1:]]
    return {
        "img_per_s_median": statistics.median(speeds),
        "epochs": speeds,
        "steps_per_epoch": steps_per_epoch,
        "path": "gpu_prefetch" if summary["gpu_prefetch"] else "cpu_normalise",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mambaout_tiny")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--steps-per-epoch", type=int, default=100, help="loop epochs (start-up is counted per epoch)")
    p.add_argument("--no-baseline-loop", action="store_true", help="skip the loop without GPU prefetch")
    p.add_argument("--cuda-graph", action="store_true", help="also time the loop with train.cuda_graph=true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    import timm

    import mambaout

    torch.backends.cudnn.benchmark = True
    res = {
        "model": args.model,
        "batch": args.batch_size,
        "img_size": args.img_size,
        "dtype": "bf16",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "timm": timm.__version__,
    }
    torch.manual_seed(0)
    res["timm_plain"] = plain_step_speed(
        timm.create_model(args.model, drop_path_rate=0.2), args.batch_size, args.img_size
    )
    torch.cuda.empty_cache()
    res["ours_plain"] = plain_step_speed(
        mambaout.create_model(args.model, drop_path_rate=0.2), args.batch_size, args.img_size
    )
    torch.cuda.empty_cache()
    spe = args.steps_per_epoch
    res["ours_loop"] = loop_speed(args.model, args.batch_size, args.img_size, steps_per_epoch=spe)
    loops = ["ours_loop"]
    if not args.no_baseline_loop:
        torch.cuda.empty_cache()
        res["ours_loop_no_prefetch"] = loop_speed(
            args.model, args.batch_size, args.img_size, steps_per_epoch=spe, gpu_prefetch=False
        )
        loops.append("ours_loop_no_prefetch")
    if args.cuda_graph:
        torch.cuda.empty_cache()
        res["ours_loop_cuda_graph"] = loop_speed(
            args.model, args.batch_size, args.img_size, steps_per_epoch=spe, cuda_graph=True
        )
        loops.append("ours_loop_cuda_graph")
    for name in loops:
        res[f"{name}_vs_timm_plain"] = res[name]["img_per_s_median"] / res["timm_plain"]["img_per_s_median"]
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
