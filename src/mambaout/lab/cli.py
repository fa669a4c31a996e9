"""`mambaout lab EXPERIMENT`: run a lab experiment (or all of them) and write its run folder."""

from __future__ import annotations

import math
import os
import time

from ..engine.recipe import check_output
from ..errors import LabError


def cmd_lab(args):
    from . import EXPERIMENTS, LabContext, parse_seeds, run_all, run_experiment
    from .runner import resolve_device

    if args.experiment not in EXPERIMENTS + ("all",):
        raise LabError(f"unknown lab experiment {args.experiment!r}; known: {', '.join(EXPERIMENTS)}, all")
    for kv in args.set or []:
        if "=" not in kv:
            raise LabError(f"--set takes KEY=VALUE, got {kv!r}")
    if args.epochs is not None and not 0 < args.epochs < math.inf:
        raise LabError(f"--epochs must be positive and finite, got {args.epochs}")
    if args.data_root and not os.path.isdir(args.data_root):
        raise LabError(f"--data-root {args.data_root!r} is not a folder")
    if args.tiny and args.mode not in (None, "tiny"):
        raise LabError(f"--tiny contradicts --mode {args.mode}")
    mode = "tiny" if args.tiny else (args.mode or "full")
    out = args.out or os.path.join("runs", "lab", time.strftime("%Y%m%d-%H%M%S") + f"-{mode}")
    check_output(out, f"--out {out!r}")
    ctx = LabContext(
        out=out,
        device=resolve_device(args.device),
        tiny=args.tiny,
        mode=mode,
        seeds=parse_seeds(args.seeds) if args.seeds else None,
        epochs=args.epochs,
        data_root=args.data_root,
        overrides=list(args.set or []),
    )
    # validate every preset (and overrides) before the first run starts
    from .core import RUN_BY_ALL

    names = list(RUN_BY_ALL) if args.experiment == "all" else [args.experiment]
    for n in names:
        ctx.config(n)
    if args.experiment == "all":
        res = run_all(ctx, names)
        print(f"lab: wrote {os.path.join(out, 'report.md')} ({res['wall_s']:.0f} s)")
        for v in res["verdicts"]:
            print(f"  {v['claim']}: {v['verdict']}")
    else:
        os.makedirs(out, exist_ok=True)
        r = run_experiment(ctx, args.experiment)
        print(f"lab: wrote {os.path.join(out, args.experiment, 'report.md')} ({r['wall_s']:.0f} s)")
        for v in r["verdicts"]:
            print(f"  {v['claim']}: {v['verdict']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lab", help="hypothesis lab: long-seq, causal, framing, zoo, length, ssl, dense-long or all (reports + figures)"
    )
    p.add_argument(
        "experiment", metavar="EXPERIMENT", help="long-seq | causal | framing | zoo | length | ssl | dense-long | all"
    )
    p.add_argument("--tiny", action="store_true", help="tiny settings: minutes on a CPU (tests, quick look)")
    p.add_argument(
        "--mode",
        choices=("tiny", "cpu", "full"),
        help="preset section: tiny (= --tiny), cpu (small 5-seed run for a CPU), full (default; one GPU)",
    )
    p.add_argument("--seeds", help="number of seeds (5 -> 0..4) or a comma list (0,4,7)")
    p.add_argument(
        "--epochs", type=float, help="training epochs per run, turned into a step budget (replaces the preset's steps)"
    )
    p.add_argument("--out", help="run folder (default runs/lab/<timestamp>)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--data-root", help="Fashion-MNIST IDX folder (default $MAMBAOUT_FASHION_MNIST or the Debian path)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a preset key of the chosen (tiny/cpu/full) section, e.g. --set optim.lr=1e-3",
    )
    p.set_defaults(func=cmd_lab)
