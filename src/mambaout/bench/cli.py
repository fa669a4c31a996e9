"""`mambaout benchmark MODEL [MODEL ...]`: images/s, batch-1 latency, peak memory, compile time."""

from __future__ import annotations

from ..utils.args import img_size
from ..utils.output import print_json
from ..utils.paths import check_output_file

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def cmd_benchmark(args):
    from ..errors import UsageError
    from .runner import benchmark

    formats = [f for f in ("json", "csv", "md") if getattr(args, f)]
    if len(formats) > 1:
        raise UsageError("choose one of --json, --csv, --md")
    if args.plot:  # before any timing: a plot that cannot be written is one line, not a traceback at the end
        check_output_file(args.plot, "--plot", PLOT_SUFFIXES)
    table = benchmark(
        args.models,
        device=args.device,
        batch_size=args.batch_size,
        img_size=img_size(args.img_size),
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        mode=args.mode,
        against_timm=args.against_timm,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
    )
    if args.json:
        print_json(dict(settings=table.settings, rows=table.rows, notes=table.notes))
    elif args.csv:
        print(table.to_csv(), end="")
    else:
        print(table.to_markdown())
    if args.plot:
        table.plot(args.plot)
        if not args.json:
            print(f"\nplot: {args.plot}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="images/s, batch-1 latency, peak memory of zoo models (and timm's)")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch-size", type=int, help="default: CPU 1 (train 2), CUDA 256 (train 128)")
    p.add_argument("--img-size", type=int, nargs="+", default=[224], metavar="H W")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    p.add_argument("--channels-last", action="store_true", help="NHWC images and weights")
    p.add_argument("--compile", choices=("none", "default", "max-autotune"), default="none")
    p.add_argument("--cuda-graphs", action="store_true", help="time replays of a captured CUDA graph")
    p.add_argument("--mode", choices=("infer", "train"), default="infer", help="train: forward+loss+backward+AdamW")
    p.add_argument("--against-timm", action="store_true", help="also timm's model of the same name, ConvNeXt-T, Swin-T")
    p.add_argument(
        "--repeats",
        type=int,
        help="timed calls (default CPU 8, CUDA 30); latency: 4x as many b1 calls (batch 1: the same calls)",
    )
    p.add_argument("--warmup", type=int, help="untimed calls first (default CPU 1, CUDA 10; at least 1 with --compile)")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads); default: torch's choice")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")
    out.add_argument("--md", action="store_true", help="Markdown table (the default)")
    p.add_argument("--plot", metavar="FILE", help="PNG (or .svg, .pdf): images/s vs the paper's top-1")
    p.set_defaults(func=cmd_benchmark)
