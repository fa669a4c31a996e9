"""The `mambaout` command line.

Each subcommand is a small function; other parts of the package add theirs by listing a module in
``COMMAND_MODULES`` that defines ``register(subparsers)``. User errors (bad names, files, sizes or
arguments) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import MambaoutError, UsageError
from .utils.args import img_size
from .utils.output import json_stdout, print_json

# Modules that add subcommands: each defines register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES: list[str] = [
    "mambaout.tasks.classification.cli",
    "mambaout.tasks.dense.cli",
    "mambaout.lab.cli",
    "mambaout.explain.cli",
    "mambaout.tasks.dense.shapes_cli",
    "mambaout.tasks.scenes_cli",
    "mambaout.serve.cli",
    "mambaout.tasks.pretrain.cli",
    "mambaout.bench.cli",
    "mambaout.export.cli",
]


class Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (exit 2) instead of usage + message."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


# --- commands -----------------------------------------------------------------------------------


def cmd_list_models(args):
    from .registry import list_models, match_models, model_info

    names = match_models(args.pattern)
    if args.family:
        families = sorted({model_info(n).family for n in list_models()})
        if args.family not in families:
            raise UsageError(f"--family {args.family!r}: unknown; known: {', '.join(families)}")
        names = [n for n in names if model_info(n).family == args.family]
    if args.json:
        print_json([dict(name=n, family=model_info(n).family, paper=model_info(n).paper) for n in names])
    else:
        print("\n".join(names))
    return 0


def cmd_complexity(args):
    from .analysis.complexity import complexity
    from .utils.table import markdown_table

    result = complexity(args.model, img_size(args.img_size))
    if args.json:
        print_json(result)
        return 0
    paper = result["paper"]
    print(
        f"{result['model']} at {result['height']}x{result['width']}: "
        f"{result['params_m']:.3f} M params, {result['macs_g']:.3f} G MACs (fvcore convention)"
    )
    if paper.get("params") or paper.get("macs"):
        print(
            f"paper ({paper.get('source', '')}): {paper.get('params', '-')} M params, {paper.get('macs', '-')} G MACs"
        )
    print("MACs by op (G): " + ", ".join(f"{k} {v:.3f}" for k, v in result["macs_by_op_g"].items()))
    if result["stages"]:
        print()
        print(
            markdown_table(
                result["stages"],
                ["stage", "height", "width", "tokens", "dim", "tau", "ratio"],
                ["stage", "H", "W", "tokens L", "width D", "tau = 6D", "L / 6D"],
                digits=3,
            )
        )
    return 0


def cmd_long_seq(args):
    from .analysis.long_sequence import PAPER_TASKS, PAPER_WIDTHS, long_seq_table, rows_as_dicts
    from .utils.table import markdown_table

    tasks = PAPER_TASKS
    if args.img_size:
        h, w = img_size(args.img_size)
        tasks = (("custom", h, w),)
    widths = tuple((f"D={d}", d) for d in args.dims) if args.dims else PAPER_WIDTHS
    if args.patch <= 0 or any(d <= 0 for _, d in widths):
        raise UsageError("--patch and --dims must be positive")
    rows = rows_as_dicts(long_seq_table(tasks, widths, args.patch))
    if args.json:
        print_json(rows)
        return 0
    print("Transformer block FLOPs = 24*D^2*L + 4*D*L^2; quadratic/linear r = L/(6D); long when L > tau = 6D\n")
    print(
        markdown_table(
            rows,
            [
                "task",
                "height",
                "width",
                "patch",
                "tokens",
                "model",
                "dim",
                "tau",
                "ratio",
                "quadratic_share",
                "verdict",
            ],
            ["task", "H", "W", "patch", "tokens L", "model", "D", "tau = 6D", "r = L/6D", "quadratic share", "verdict"],
            digits=3,
        )
    )
    return 0


def cmd_zoo(args):
    from .analysis.zoo import zoo_rows, zoo_table

    rows = zoo_rows(args.pattern, img_size(args.img_size))
    if args.json:
        print_json(rows)
    else:
        print(zoo_table(rows))
    return 0


def cmd_demo(args):
    """The main job on its built-in default: the zoo and the long-sequence table, then MambaOut-Femto vs
    its SSM counterpart trained and evaluated on Fashion-MNIST (minutes on a CPU, full data on a GPU)."""
    from .tasks.classification import compare

    print("# The model zoo at 224x224 (params and MACs measured here, paper figures beside them)\n")
    cmd_zoo(argparse.Namespace(pattern=None, img_size=[224], json=False))
    print("\n# The paper's long-sequence test\n")
    cmd_long_seq(argparse.Namespace(img_size=None, dims=None, patch=16, json=False))
    print("\n# MambaOut vs Mamba on Fashion-MNIST (same recipe and budget)\n")
    compare.run(output=args.output, data_root=args.data_root, epochs=args.epochs, device=args.device)
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="mambaout", description="MambaOut / visual-Mamba research platform.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("list-models", help="list registered models")
    p.add_argument("pattern", nargs="?", help="shell-style wildcard, e.g. 'mambaout_*'")
    p.add_argument("--family", help="only this family (mambaout, mamba, vmamba, ...)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list_models)

    p = sub.add_parser("complexity", help="params, MACs and per-stage L, D, L/6D of a model")
    p.add_argument("model")
    p.add_argument("--img-size", type=int, nargs="+", default=[224], metavar="H W")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("long-seq", help="the paper's long-sequence table (Eq. 6-7)")
    p.add_argument(
        "--img-size", type=int, nargs="+", metavar="H W", help="one custom resolution instead of the paper's"
    )
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--dims", type=int, nargs="+", help="token widths D (default: ViT-S 384, ViT-B 768)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_long_seq)

    p = sub.add_parser("zoo", help="every model: params and MACs measured here vs the papers")
    p.add_argument("pattern", nargs="?")
    p.add_argument("--img-size", type=int, nargs="+", default=[224], metavar="H W")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("demo", help="the main job on its built-in default")
    p.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--data-root", help="Fashion-MNIST folder (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.set_defaults(func=cmd_demo)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        with json_stdout(getattr(args, "json", False)):  # --json: stdout holds the JSON alone
            return int(args.func(args) or 0)
    except MambaoutError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
