"""Where does a training step's time go?  Loader alone vs a GPU-resident step vs a profiled step.

    PYTHONPATH=src:benchmarks python benchmarks/diagnose_train_speed.py --data-root .data/fashion-mnist --out $OUT/diag.json

Measures, on one CUDA device:
  * the Fashion-MNIST train loader of the ``fashion_mnist`` preset alone (images/s, no model);
  * the synthetic 224x224 loader the throughput benchmark uses, alone;
  * a plain step (bf16, AdamW, batch already on the GPU) of mambaout_femto and mamba_femto with the preset's
    input (1 x 32 x 32, stem stride 2, batch 256), CUDA-synchronised windows, median;
  * a torch.profiler trace of a few plain steps of mamba_femto: the top CUDA kernels and the host time per step.
A loop much slower than both its loader and its plain step is losing time in between (syncs, copies).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def loader_speed(stream, batches: int) -> float:
    stream.next()  # worker start-up is not counted
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        x, _ = stream.next()
        n += len(x)
    return n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=".data/fashion-mnist")
    p.add_argument("--out")
    args = p.parse_args(argv)
    from bench_train_loop import make_plain_step, time_steps

    import mambaout
    from mambaout.tasks.classification import data, resolve_config

    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    cfg = resolve_config("fashion_mnist", [f"data.root={args.data_root}"], device="cuda")
    ds = data.build_dataset(cfg, "train")
    res["fm_loader_img_per_s"] = loader_speed(data.train_stream(cfg, ds, 0, 1, pin=True), 100)
    print("fashion-mnist loader", res["fm_loader_img_per_s"], flush=True)

    syn = resolve_config(
        "imagenet",
        [
            "data.dataset=synthetic",
            "data.synthetic_train=12800",
            "data.num_workers=10",
            "train.batch_size=128",
            "data.synthetic_noise=1.0",
        ],
        device="cuda",
    )
    sds = data.build_dataset(syn, "train")
    res["synthetic224_loader_img_per_s"] = loader_speed(data.train_stream(syn, sds, 0, 1, pin=True), 40)
    print("synthetic 224 loader", res["synthetic224_loader_img_per_s"], flush=True)

    x = torch.randn(256, 1, 32, 32, device="cuda")
    y = torch.randint(0, 10, (256,), device="cuda")
    for name in ("mambaout_femto", "mamba_femto"):
        model = mambaout.create_model(name, num_classes=10, in_chans=1, stem_stride=2, drop_path_rate=0.05)
        step = make_plain_step(model, x, y)
        r = time_steps(step, len(x), steps=20)
        res[f"{name}_plain"] = r
        print(name, r, flush=True)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
    print(table)
    res["mamba_femto_profile"] = table
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
