"""Training-step time of whole models: a thin wrapper over ``mambaout benchmark --mode train`` (docs/benchmark.md).

  PYTHONPATH=src python benchmarks/bench_model_step.py [--models vmamba_tiny_s2l5,vim_small,mambaout_tiny]
      [--batch-size 64] [--img-size 224] [--steps 20] [--graph]

The same as ``mambaout benchmark MODELS --device cuda --mode train --amp bf16 --batch-size 64 --repeats 20
--warmup 5`` (forward, cross-entropy, backward, AdamW step under bf16 autocast; median of CUDA-event timings),
and with --graph the same again with ``--cuda-graphs`` (one step captured and replayed: the GPU's time alone).
Earlier figures in docs/results_scan.md used SGD; the optimizer step is now AdamW's.
"""

import argparse

import mambaout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vmamba_tiny_s2l5,vim_small,mambaout_tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--graph", action="store_true")
    args = ap.parse_args()
    for graphs in (False, True) if args.graph else (False,):
        table = mambaout.benchmark(
            args.models.split(","),
            device="cuda",
            batch_size=args.batch_size,
            img_size=(args.img_size, args.img_size),
            amp="bf16",
            mode="train",
            cuda_graphs=graphs,
            repeats=args.steps,
            warmup=5,
        )
        print(table.to_markdown() + "\n", flush=True)


if __name__ == "__main__":
    main()
