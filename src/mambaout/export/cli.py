"""`mambaout export MODEL --format onnx|torchscript|exported-program|safetensors -o FILE`: one file, checked.

Prints what was written (size, export time) and the largest absolute difference between the file's output and the
model's on the same input; ``--json`` prints the :class:`~.exporter.ExportResult` as JSON instead.
"""

from __future__ import annotations

from ..utils.args import img_size
from ..utils.output import print_json


def cmd_export(args) -> int:
    from .exporter import export_model

    result = export_model(
        args.model,
        args.format,
        args.output,
        checkpoint=args.checkpoint,
        img_size=img_size(args.img_size) if args.img_size else None,
        dynamic_batch=args.dynamic_batch,
        num_classes=args.num_classes,
        onnx_exporter=args.onnx_exporter,
    )
    if args.json:
        print_json(result.as_dict())
        return 0
    h, w = result.img_size
    exporter = f" ({result.exporter} exporter)" if result.exporter else ""
    print(
        f"{result.path}: {result.model} as {result.format}{exporter}, {h}x{w}, "
        f"batch {'dynamic' if result.dynamic_batch else result.batch}, {result.bytes / 1e6:.2f} MB, "
        f"exported in {result.export_s:.1f} s"
    )
    checks = ", ".join(f"batch {c['batch']}: {c['max_abs_diff']:.2e}" for c in result.checks)
    print(f"max abs diff against the model (fp32, bound {result.tolerance:g} x max(1, |output|)): {checks}")
    return 0


def register(subparsers) -> None:
    from .formats import FORMATS
    from .onnx import EXPORTERS

    p = subparsers.add_parser("export", help="write a model as ONNX, TorchScript, ExportedProgram or safetensors")
    p.add_argument("model", help="registered model name (mambaout list-models)")
    p.add_argument("--format", required=True, choices=list(FORMATS), help="file format")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--checkpoint", help="weights: a training checkpoint, a run folder, any weights file")
    p.add_argument(
        "--img-size", type=int, nargs="+", metavar="H W", help="input size (default: the checkpoint's or the model's)"
    )
    p.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension (graph formats)")
    p.add_argument("--num-classes", type=int, help="classifier size (default: the checkpoint's, else 1000)")
    p.add_argument("--onnx-exporter", choices=EXPORTERS, default="torchscript", help="torch.onnx path (ONNX only)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)
