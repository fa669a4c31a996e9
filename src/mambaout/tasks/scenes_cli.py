"""`mambaout data make-scenes OUT`: Fashion-MNIST scenes in the COCO and ADE20K-style layouts (docs/scenes.md)."""

from __future__ import annotations

import os
import time

from ..errors import UsageError
from .data_cli import data_group


def cmd_make_scenes(args):
    from ..data.scenes import SceneSpec, write_scenes
    from ..engine.recipe import check_output

    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        raise UsageError(f"{args.out!r} exists and is not an empty folder: scenes go into a new one")
    check_output(args.out, f"output {args.out!r}")
    spec = SceneSpec(
        size=args.size,
        items=args.items,
        item_size=tuple(args.item_size) if args.item_size else None,
        max_overlap=args.max_overlap,
        variant=args.variant,
        context_distance=args.context_distance,
    )
    if args.train < 1 or args.val < 1:
        raise UsageError(f"--train and --val must be >= 1, got {args.train} and {args.val}")
    t0 = time.time()
    card = write_scenes(args.out, spec, args.train, args.val, args.seed, args.data_root)
    n = {k: v["items"] for k, v in card["splits"].items()}
    print(
        f"scenes: wrote {args.train} training + {args.val} validation scenes of {spec.size}x{spec.size} "
        f"({spec.variant}, K={spec.items}, {n['training']} + {n['validation']} items) to {args.out} "
        f"in {time.time() - t0:.1f} s; card: {os.path.join(args.out, 'CARD.md')}"
    )
    return 0


def register(subparsers) -> None:
    p = data_group(subparsers).add_parser(
        "make-scenes", help="Fashion-MNIST scenes (COCO instances + ADE20K-style masks) of side S"
    )
    p.add_argument("out", metavar="OUT", help="new folder to write")
    p.add_argument("--size", type=int, default=256, help="canvas side S in px (a multiple of 32; default 256)")
    p.add_argument("--items", type=int, help="items a scene K (default: about 20%% of the free area)")
    p.add_argument("--item-size", type=int, nargs=2, metavar=("MIN", "MAX"), help="item side range in px")
    p.add_argument("--max-overlap", type=float, default=0.2, help="most of an item later items may cover")
    p.add_argument("--variant", choices=("local", "context"), default="local", help="labels (see docs/scenes.md)")
    p.add_argument("--context-distance", type=int, help="context variant: items stay this far from the marker (S/4)")
    p.add_argument("--train", type=int, default=200, help="training scenes (from the train split)")
    p.add_argument("--val", type=int, default=50, help="validation scenes (from the test split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="Fashion-MNIST IDX folder (default $MAMBAOUT_FASHION_MNIST or the Debian path)")
    p.set_defaults(func=cmd_make_scenes)
