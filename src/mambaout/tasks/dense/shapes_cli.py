"""``mambaout data make-shapes``: the generated shapes set (data/shapes.py) written in a real on-disk layout.

    mambaout data make-shapes --task detection shapes_coco      # COCO: train/, val/, annotations/instances_*.json
    mambaout data make-shapes --task segmentation shapes_ade    # ADEChallengeData2016: images/, annotations/
    mambaout train-det --preset synthetic_shapes --data-root shapes_coco

The presets ``detection/synthetic_shapes`` and ``segmentation/synthetic_shapes`` read these folders.
"""

from __future__ import annotations

import os

from ...errors import UsageError
from ...utils.output import print_json
from ..data_cli import data_group

LAYOUTS = {"detection": ("COCO", "train-det"), "segmentation": ("ADE20K", "train-seg")}
MIN_SIZE = 16  # the generator draws objects of 1/5 to 1/2 of the image side


def make_shapes(task: str, root: str, n_train: int, n_val: int, size: tuple[int, int], seed: int) -> dict:
    """Write the set; returns what was written."""
    from ...data.dense_layout import MAX_SIDE
    from ...data.shapes import SHAPES, write_ade_shapes, write_coco_shapes
    from ...engine.recipe import check_output

    if n_train < 1 or n_val < 1:
        raise UsageError(f"make-shapes: --train and --val must be >= 1, got {n_train} and {n_val}")
    if min(size) < MIN_SIZE:
        raise UsageError(f"make-shapes: --size must be at least {MIN_SIZE} x {MIN_SIZE}, got {size[0]} x {size[1]}")
    if max(size) > MAX_SIDE:
        raise UsageError(f"make-shapes: --size {size[0]} x {size[1]} is over the generators' limit of {MAX_SIDE} px")
    if os.path.isfile(root):
        raise UsageError(f"make-shapes: {root!r} is a file, not a folder")
    if os.path.isdir(root) and os.listdir(root):
        raise UsageError(f"make-shapes: {root!r} is not empty (choose a new folder)")
    check_output(root, "make-shapes")  # a read-only parent: one line before any image is drawn
    try:
        write = write_coco_shapes if task == "detection" else write_ade_shapes
        write(root, n_train, n_val, size, seed)
    except OSError as e:
        raise UsageError(f"make-shapes: cannot write {root!r} ({e.strerror or e})") from None
    layout, command = LAYOUTS[task]
    classes = list(SHAPES) if task == "detection" else ["background", *SHAPES]
    return dict(
        task=task,
        root=root,
        layout=layout,
        train=n_train,
        val=n_val,
        size=list(size),
        seed=seed,
        classes=classes,
        train_command=f"mambaout {command} --preset synthetic_shapes --data-root {root}",
    )


def cmd_make_shapes(args) -> int:
    if len(args.size) not in (1, 2):
        raise UsageError(f"make-shapes: --size takes H or H W, got {args.size}")
    size = (args.size[0], args.size[-1])
    r = make_shapes(args.task, args.root, args.train, args.val, size, args.seed)
    if args.json:
        print_json(r)
    else:
        print(
            f"wrote {r['train']} train / {r['val']} val images ({r['layout']} layout, classes "
            f"{', '.join(r['classes'])}) to {r['root']}\ntrain with: {r['train_command']}"
        )
    return 0


def register(sub):
    p = data_group(sub).add_parser(
        "make-shapes", help="write the generated shapes set in the COCO (detection) or ADE20K (segmentation) layout"
    )
    p.add_argument("root", metavar="DIR", help="a new (or empty) folder")
    p.add_argument("--task", choices=sorted(LAYOUTS), required=True)
    p.add_argument("--train", type=int, default=200, help="training images (default 200)")
    p.add_argument("--val", type=int, default=50, help="validation images (default 50)")
    p.add_argument("--size", type=int, nargs="+", default=[128], metavar="H W", help="image size (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_make_shapes)
