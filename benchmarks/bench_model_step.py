"""Training-step time of whole models (forward + backward + SGD step, bf16 autocast, channels-first images): what a
scan kernel change is worth end to end.

  PYTHONPATH=src python benchmarks/bench_model_step.py [--models vmamba_tiny_s2l5,vim_small,mambaout_tiny]
      [--batch-size 64] [--img-size 224] [--steps 20]

Median of ``--steps`` CUDA-event timings after 5 warm-up steps, host launches (what an eager training step sees)
and, with --graph, one step captured in a CUDA graph and replayed (the GPU's time alone).  Run it twice in one
call with PYTHONPATH pointing at two source trees to compare versions on the same card.
"""

import argparse
import json
import statistics

import torch

import mambaout.models  # noqa: F401  (registers the models)
from mambaout.registry import create_model


def step_fn(model, opt, x, y):
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)  # static grad buffers: the step can be graph-captured

    return step


def median_ms(fn, steps):
    ts = []
    for _ in range(steps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        torch.cuda.synchronize()
        ts.append(e0.elapsed_time(e1))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vmamba_tiny_s2l5,vim_small,mambaout_tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--graph", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = create_model(name, num_classes=1000).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device="cuda")
        y = torch.randint(0, 1000, (args.batch_size,), device="cuda")
        step = step_fn(model, opt, x, y)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):  # warm-up (and autotuning, allocations) off the default stream, as for capture
            for _ in range(5):
                step()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        r = {"model": name, "eager_ms": median_ms(step, args.steps)}
        if args.graph:
            try:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    step()
                r["graph_ms"] = median_ms(g.replay, args.steps)
            except RuntimeError as e:  # say so, keep the eager number
                r["graph_error"] = str(e)[:120]
        r["img_per_s"] = args.batch_size / (min(r["eager_ms"], r.get("graph_ms", r["eager_ms"])) / 1e3)
        rows.append(r)
        print(json.dumps(r), flush=True)
        del model, opt, step
        torch.cuda.empty_cache()
    print(
        f"| model | eager step ms | graph step ms | img/s (best) |  batch {args.batch_size}, {args.img_size}px, bf16 "
        f"autocast, {torch.cuda.get_device_name()}"
    )
    for r in rows:
        print(f"| {r['model']} | {r['eager_ms']:.2f} | {r.get('graph_ms', float('nan')):.2f} | {r['img_per_s']:.0f} |")


if __name__ == "__main__":
    main()
