"""`mambaout train`, `mambaout eval` and `mambaout compare` (classification)."""

from __future__ import annotations

import argparse

from ...errors import UsageError

# flag -> typed config field (applied after the preset and its device section, before --set)
_FLAGS = (
    ("model", "model.name"),
    ("dataset", "data.dataset"),
    ("data_root", "data.root"),
    ("num_classes", "data.num_classes"),
    ("img_size", "data.img_size"),
    ("epochs", "sched.epochs"),
    ("batch_size", "train.batch_size"),
    ("accum_steps", "train.accum_steps"),
    ("lr", "optim.lr"),
    ("num_workers", "data.num_workers"),
    ("seed", "train.seed"),
    ("output", "train.output"),
    ("name", "train.name"),
    ("save_every_steps", "train.save_every_steps"),
    ("pretrained", "model.pretrained"),
    ("freeze_stages", "model.freeze_stages"),
    ("backbone_lr_scale", "model.backbone_lr_scale"),
    ("drop_path", "model.drop_path"),
    ("train_subset", "data.train_subset"),
    ("device", "train.device"),
)


def flags_of(args) -> dict:
    """The flags given on the command line, as typed values by config key."""
    flags = {key: getattr(args, attr) for attr, key in _FLAGS if getattr(args, attr, None) is not None}
    if getattr(args, "amp", None):
        flags["train.amp"] = None if args.amp == "none" else args.amp
    for attr, key in (
        ("channels_last", "train.channels_last"),
        ("ema", "train.ema"),
        ("deterministic", "train.deterministic"),
    ):
        if getattr(args, attr, False):
            flags[key] = True
    return flags


def cmd_train(args):
    if args.task != "classification":  # `train --task X` is the dense trainer's `train-X` command
        return _train_dense(args)
    from ...engine.recipe import check_file, check_run_folder
    from .task import resolve_config, train

    if_exists = "overwrite" if args.overwrite else "error"
    if args.resume:
        if args.preset_given:
            raise UsageError("--resume continues with the checkpoint's configuration; drop --preset")
        check_run_folder(None, args.resume)
        train(resume=args.resume, quiet=args.quiet, sets=args.set, flags=flags_of(args), if_exists=if_exists)
    else:
        cfg = resolve_config(args.preset, args.set, flags_of(args))
        check_run_folder(cfg.train)
        check_file(cfg.model.pretrained, "model.pretrained")
        train(cfg, quiet=args.quiet, if_exists=if_exists)
    return 0


_DENSE_COMMAND = {"detection": "train-det", "segmentation": "train-seg", "multitask": "train-multitask"}


def _train_dense(args):
    import argparse

    from ..dense.cli import cmd_train as dense_train

    classification_only = [
        f
        for f in ("model", "dataset", "epochs", "batch_size", "lr", "pretrained")
        if getattr(args, f, None) is not None
    ]
    if classification_only:
        raise UsageError(
            f"--task {args.task}: use --set for {', '.join(classification_only)} "
            "(e.g. --set backbone.name=mambaout_tiny); see the task's presets"
        )
    return dense_train(
        argparse.Namespace(
            command=_DENSE_COMMAND[args.task],
            preset=args.preset if args.preset_given else None,
            set=list(args.set or []),
            resume=args.resume,
            device=args.device,
            quiet=args.quiet,
            json=False,
            list_presets=False,
            data_root=args.data_root,
            output=args.output,
            name=args.name,
            backbone=None,
            overwrite=args.overwrite,
        )
    )


def cmd_eval(args):
    from .evaluate import run_eval

    if args.img_size is not None and args.img_size < 1:
        raise UsageError(f"eval: --img-size must be positive, got {args.img_size}")
    run_eval(args)
    return 0


def cmd_classify(args):
    from .predict import run_predict

    run_predict(args)
    return 0


def cmd_compare(args):
    from .compare import DEFAULT_MODELS, run

    run(
        models=args.models or DEFAULT_MODELS,
        preset=args.preset,
        overrides=args.set,
        output=args.output,
        data_root=args.data_root,
        epochs=args.epochs,
        device=args.device,
        quiet=args.quiet,
    )
    return 0


def _add_shared(p):
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key (repeatable), e.g. --set optim.weight_decay=0.1; the value is "
        "parsed as the key's type",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_weights_source(p):
    """Where eval and classify take the model from: a checkpoint, a run folder, or weights with a recipe."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="a training checkpoint (last.pt/best.pt): config and weights")
    src.add_argument("--run", help="a run folder: its config.yaml and model.safetensors")
    src.add_argument("--weights", help="weights in any supported format (with --model and --preset)")
    p.add_argument("--preset", default="imagenet", help="with --weights: the recipe (preprocessing, classes)")
    p.add_argument("--model")


def _with_preset_default(cmd):
    """Records whether --preset was given (a dense task has its own default) and fills imagenet otherwise."""

    def run(args):
        args.preset_given = args.preset is not None
        if args.preset is None and args.task == "classification":
            args.preset = "imagenet"
        return cmd(args)

    return run


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier (presets: imagenet, fashion_mnist, synthetic)",
        description="Train a classifier. Config = preset YAML, then the flags below, then "
        "--set overrides. Launch with torchrun for DDP on several GPUs/nodes.",
    )
    p.add_argument(
        "--task",
        choices=["classification", "detection", "segmentation", "multitask"],
        default="classification",
        help="other tasks run the dense trainer (same as train-det/-seg)",
    )
    p.add_argument("--preset", help="preset name or path to a YAML file (default: imagenet; for --task X, X's default)")
    p.add_argument("--model", help="a registered model name")
    p.add_argument("--dataset", choices=["imagefolder", "fashion_mnist", "synthetic"])
    p.add_argument("--data-root", help="dataset folder (ImageFolder root, or the Fashion-MNIST IDX folder)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--img-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--accum-steps", type=int, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, help="peak lr (default: base_lr x global batch / 1024)")
    p.add_argument("--drop-path", type=float)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--train-subset", type=int, help="train on N samples only")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--ema", action="store_true")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--output", help="runs folder (default: runs)")
    p.add_argument("--name", help="run name: the run folder is <output>/<name>")
    p.add_argument("--resume", metavar="CKPT", help="continue exactly from a checkpoint (e.g. runs/x/last.pt)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in <output>/<name> (or resume a checkpoint older than its last.pt)",
    )
    p.add_argument("--save-every-steps", type=int, metavar="N", help="also checkpoint every N optimizer steps")
    p.add_argument("--pretrained", metavar="PATH", help="start from weights (any supported format); new head")
    p.add_argument("--freeze-stages", type=int, metavar="N", help="freeze the stem and the first N stages")
    p.add_argument("--backbone-lr-scale", type=float, help="lr multiplier for the backbone (head: 1)")
    _add_shared(p)
    p.set_defaults(func=_with_preset_default(cmd_train))

    p = subparsers.add_parser("eval", help="evaluate a classifier: top-1/top-5 at crop_pct 1.0, any resolution")
    _add_weights_source(p)
    p.add_argument("--data-root")
    p.add_argument("--img-size", type=int, help="evaluation resolution (default: the config's)")
    p.add_argument("--crop-pct", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--amp", choices=["none", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        help="test-time mirroring: average each image's and its mirror's probabilities (default: train.eval_flip)",
    )
    p.add_argument("--json", action="store_true")
    _add_shared(p)
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("classify", help="top-k classes of image files and folders from a trained classifier")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders (searched recursively)")
    _add_weights_source(p)
    p.add_argument("--img-size", type=int, help="input resolution (default: the config's evaluation size)")
    p.add_argument("--crop-pct", type=float)
    p.add_argument("--ema", action="store_true", help="the EMA weights")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, help="images per forward pass (default 32)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--csv", metavar="FILE", help="also write the predictions as CSV")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify, set=[])

    p = subparsers.add_parser("compare", help="the main job: MambaOut-Femto vs mamba_femto on Fashion-MNIST")
    p.add_argument("--models", nargs="+", help="default: mambaout_femto mamba_femto")
    p.add_argument("--preset", default="fashion_mnist")
    p.add_argument("--data-root")
    p.add_argument("--epochs", type=int)
    p.add_argument("--output", default="runs/compare")
    _add_shared(p)
    p.set_defaults(func=cmd_compare)
