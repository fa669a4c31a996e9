"""Subcommands: train-det, train-seg, train-multitask, eval-det, eval-seg, complexity-dense, predict.

mambaout train-det --preset coco_maskrcnn_1x --data-root /data/coco --backbone mambaout_small
torchrun --nproc-per-node 8 -m mambaout train-seg --preset ade20k_upernet_160k --data-root /data/ADEChallengeData2016
mambaout train-seg --resume runs/<name>/last.pt
mambaout eval-seg runs/<name>/best.pt --multi-scale
mambaout complexity-dense mambaout_tiny --task detection
mambaout predict runs/<name>/best.pt photo.jpg -o photo_pred.png
"""

from __future__ import annotations

import logging

from ...errors import UsageError
from ...utils.output import print_json

log = logging.getLogger("mambaout")

_TRAIN = {"train-det": "detection", "train-seg": "segmentation", "train-multitask": "multitask"}
_DEFAULT_PRESET = {
    "detection": "coco_maskrcnn_1x",
    "segmentation": "ade20k_upernet_160k",
    "multitask": "synthetic_cls_seg_det",
}


def _rank() -> int:
    """This process's rank under torchrun (the process group is already torn down when results print)."""
    import os

    return int(os.environ.get("RANK", "0"))


def _flags(args) -> dict:
    """Typed values of the flags given: the backbone, the (single) task's data root, the run folder."""
    flags = {
        key: getattr(args, attr)
        for attr, key in (
            ("backbone", "backbone.name"),
            ("output", "train.output"),
            ("name", "train.name"),
            ("device", "train.device"),
        )
        if getattr(args, attr, None) is not None
    }
    if getattr(args, "data_root", None) is not None:
        task = _TRAIN.get(args.command)
        if task == "multitask":
            raise UsageError("--data-root names one task's data: use --set tasks.<task>.data.root=DIR for multitask")
        flags[f"tasks.{task}.data.root"] = args.data_root
    return flags


def cmd_train(args):
    from ...engine.config import list_presets
    from ...engine.recipe import check_file, check_run_folder
    from .task import resolve_config, train

    task = _TRAIN[args.command]
    if args.list_presets:
        print("\n".join(list_presets(task)))
        return 0
    if_exists = "overwrite" if getattr(args, "overwrite", False) else "error"
    if args.resume:  # the checkpoint's own configuration, with the flags and --set on top
        if args.preset:
            raise UsageError("--resume continues with the checkpoint's configuration; drop --preset")
        check_run_folder(None, args.resume)
        summary = train(
            resume=args.resume, quiet=args.quiet, sets=args.set, flags=_flags(args), if_exists=if_exists, kind=task
        )
    else:
        cfg = resolve_config(task, args.preset or _DEFAULT_PRESET[task], args.set, _flags(args))
        check_run_folder(cfg.train)
        check_file(cfg.backbone.pretrained, "backbone.pretrained")
        summary = train(cfg, quiet=args.quiet, if_exists=if_exists)
    if _rank() == 0:
        print_json(summary) if args.json else print(
            f"run {summary['run_dir']}: {summary['steps']} steps; best {summary['best']}"
        )
    return 0


def cmd_eval(args):
    import torch

    from ...engine import config as C
    from ...engine import distributed
    from ...engine.precision import effective_amp
    from ...engine.trainer import Run
    from .task import PARTS, evaluate, load_trained

    task = "detection" if args.command == "eval-det" else "segmentation"
    info = distributed.init(args.device or "auto")
    try:
        model, cfg = load_trained(args.checkpoint, info.device)
        C.apply_sets(cfg, args.set)
        sec = getattr(cfg.tasks, task)
        if sec is None:
            other = "eval-det" if cfg.kind == "detection" else "eval-seg"
            raise UsageError(f"{args.checkpoint!r} has no {task} head ({cfg.kind} checkpoint; try {other})")
        _, val = PARTS[task].datasets(sec, cfg.train.seed)
        run = Run(cfg, info, "", quiet=args.quiet, amp=effective_amp(cfg.train.amp, info.device))
        with torch.no_grad():
            res = evaluate(cfg, model, {task: val}, run, multi_scale=getattr(args, "multi_scale", False))
    finally:
        distributed.teardown()
    if _rank() == 0:
        if args.json:
            print_json(res)
        else:
            for k, v in res.items():
                if not isinstance(v, list):
                    print(f"{k}: {v:.4f}")
    return 0


def cmd_complexity_dense(args):
    from ...utils.args import img_size
    from .complexity import dense_complexity

    size = img_size(args.img_size) if args.img_size else None
    r = dense_complexity(args.backbone, args.task, size, num_classes=args.num_classes, mode=args.mode)
    if args.json:
        print_json(r)
        return 0
    print(
        f"{r['model']} on {r['backbone']} at {r['height']}x{r['width']}: {r['params_m']:.2f} M params, "
        f"{r['macs_g']:.1f} G MACs (fvcore convention; {r['convention']})"
    )
    if r["paper"]:
        print(f"paper: {r['paper']['params_m']} M params, {r['paper']['macs_g']} G MACs")
    if r["macs_by_part_g"]:
        print("by part (G): " + ", ".join(f"{k} {v:.1f}" for k, v in r["macs_by_part_g"].items()))
    return 0


def cmd_predict(args):
    import os

    from ...engine.recipe import check_output
    from .predict import predict_image

    out = args.output  # a PNG path or a folder (default: next to the image); writable before the model runs
    folder = (
        out
        if out and (os.path.isdir(out) or out.endswith(os.sep))
        else os.path.dirname(os.path.abspath(out or args.image))
    )
    check_output(folder, f"predict -o {out!r}" if out else "predict (writes next to the image)")

    r = predict_image(args.checkpoint, args.image, args.output, args.score_threshold, args.task, args.device or "cpu")
    if args.json:
        print_json(r)
    else:
        n = len(r["detections"]) if "detections" in r else len(r["classes_present"])
        what = "detections" if "detections" in r else "classes"
        print(f"wrote {r['output']} ({n} {what})")
    return 0


def register(sub):
    for name, task in _TRAIN.items():
        what = {"detection": "Mask R-CNN", "segmentation": "UperNet", "multitask": "multi-task"}[task]
        p = sub.add_parser(name, help=f"train a {what} model from a preset (presets/{task}/)")
        p.add_argument("--preset", help=f"shipped preset name or a .yaml path (default {_DEFAULT_PRESET[task]})")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set tasks.segmentation.data.root=DIR (parsed as its type)",
        )
        p.add_argument("--backbone", help="a registered model name (backbone.name)")
        p.add_argument("--data-root", help="the task's dataset folder (tasks.<task>.data.root)")
        p.add_argument("--output", help="runs folder (train.output)")
        p.add_argument("--name", help="run name: the run folder is <output>/<name>")
        p.add_argument("--resume", metavar="CKPT", help="continue exactly from a last.pt")
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the run already in <output>/<name> (or resume a checkpoint older than its last.pt)",
        )
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        p.add_argument("--list-presets", action="store_true")
        p.add_argument("--quiet", action="store_true")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_train)
    for name, task in (("eval-det", "COCO box/mask AP"), ("eval-seg", "mIoU")):
        p = sub.add_parser(name, help=f"evaluate a trained checkpoint ({task})")
        p.add_argument("checkpoint")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override the saved config (e.g. tasks.segmentation.data.root=DIR)",
        )
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        if name == "eval-seg":
            p.add_argument("--multi-scale", action="store_true", help="scales 0.5-1.75 with flip (mmseg aug test)")
        p.add_argument("--quiet", action="store_true")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_eval)
    p = sub.add_parser("complexity-dense", help="params and MACs of Mask R-CNN / UperNet on a backbone")
    p.add_argument("backbone")
    p.add_argument("--task", choices=["detection", "segmentation"], default="detection")
    p.add_argument(
        "--img-size", type=int, nargs="+", metavar="H W", help="default 800 1280 (detection) / 512 2048 (segmentation)"
    )
    p.add_argument("--num-classes", type=int, help="default 81 (COCO + bg) / 150 (ADE20K)")
    p.add_argument(
        "--mode",
        choices=["meta", "cpu"],
        default="meta",
        help="meta: mmdet-style fixed RoI counts (default); cpu: real forward on random weights",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complexity_dense)
    p = sub.add_parser("predict", help="draw a trained detector's/segmentor's output on an image (PNG)")
    p.add_argument("checkpoint")
    p.add_argument("image")
    p.add_argument("-o", "--output", help="PNG path (default: <image>_<task>.png)")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--task", choices=["detection", "segmentation"], help="head of a multi-task checkpoint")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
