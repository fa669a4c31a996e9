"""Export zoo models with `mambaout.export` and tabulate what each format gave: size, time, parity, or the error.

  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/export_zoo.py                      # the docs/export.md table
  PYTHONPATH=src python benchmarks/export_zoo.py --models mambaout_test --formats onnx --img-size 64

Each export runs on seeded random weights at ``--img-size``: the pair (and ``--models``) with a dynamic batch, checked
at batches 2 and 3 against eager; the other families at batch 1 (half the memory: a traced doubling scan holds
(B, D, L, N) tensors).  Files go to a temporary folder and are deleted; a markdown table is printed, JSON written with
``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from mambaout.errors import MambaoutError
from mambaout.export import FORMATS, export_model
from mambaout.utils.table import markdown_table

ALL_FORMATS = ("mambaout_femto", "mamba_femto")  # the pair: every format
ONNX_ONLY = (  # the smallest model of every other family: ONNX
    "vmamba_tiny",
    "vmamba_tiny_s2l5",
    "vim_tiny",
    "localvim_tiny",
    "localvmamba_tiny",
    "plainmamba_l1",
    "efficientvmamba_tiny",
    "hybrid_mambaout_ssm_tiny",
    "hybrid_mambaout_attn_tiny",
    "vit_tiny",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", help="default: the MambaOut/Mamba femto pair in every format, then ONNX")
    p.add_argument("--formats", nargs="+", choices=list(FORMATS), help="default: all for the pair, onnx for others")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--onnx-exporter", default="torchscript")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    if args.models:
        plan = [(m, f) for m in args.models for f in (args.formats or list(FORMATS))]
    else:
        plan = [(m, f) for m in ALL_FORMATS for f in (args.formats or list(FORMATS))]
        plan += [(m, "onnx") for m in ONNX_ONLY if not args.formats or "onnx" in args.formats]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, fmt in plan:
            start = time.perf_counter()
            row = {"model": model, "format": fmt}
            try:
                r = export_model(
                    model,
                    fmt,
                    f"{tmp}/{model}{FORMATS[fmt].suffix}",
                    img_size=(args.img_size, args.img_size),
                    dynamic_batch=bool(args.models) or model in ALL_FORMATS,
                    onnx_exporter=args.onnx_exporter,
                )
                row.update(mb=r.bytes / 1e6, export_s=r.export_s, max_abs_diff=f"{r.max_abs_diff:.1e}", status="ok")
            except MambaoutError as e:
                row.update(status=f"error: {e}")
            row["total_s"] = time.perf_counter() - start
            rows.append(row)
            print(json.dumps(row), flush=True)
    cols = ["model", "format", "mb", "export_s", "max_abs_diff", "total_s", "status"]
    print(markdown_table(rows, cols, ["model", "format", "MB", "export s", "max abs diff", "total s", "status"], 1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
