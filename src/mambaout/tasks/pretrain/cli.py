"""`mambaout pretrain --method simmim|fcmae MODEL`: masked-image pre-training; the encoder then loads with
`mambaout train --pretrained RUN/model.safetensors` (its decoder is dropped)."""

from __future__ import annotations

from ...errors import UsageError

_FLAGS = (
    ("model", "model.name"),
    ("method", "model.method"),
    ("mask_ratio", "model.mask_ratio"),
    ("mask_patch", "model.mask_patch"),
    ("dataset", "data.dataset"),
    ("data_root", "data.root"),
    ("img_size", "data.img_size"),
    ("train_subset", "data.train_subset"),
    ("epochs", "sched.epochs"),
    ("batch_size", "train.batch_size"),
    ("lr", "optim.lr"),
    ("seed", "train.seed"),
    ("output", "train.output"),
    ("name", "train.name"),
    ("device", "train.device"),
)


def cmd_pretrain(args):
    from ...engine.recipe import check_run_folder
    from .task import resolve_config, train

    flags = {key: getattr(args, attr) for attr, key in _FLAGS if getattr(args, attr, None) is not None}
    if_exists = "overwrite" if args.overwrite else "error"
    if args.resume:
        if args.preset or args.tiny or args.model:
            raise UsageError("--resume continues with the checkpoint's configuration; drop MODEL, --preset and --tiny")
        check_run_folder(None, args.resume)
        train(resume=args.resume, quiet=args.quiet, sets=args.set, flags=flags, if_exists=if_exists)
        return 0
    if not args.model:
        raise UsageError("pretrain: name a model, e.g. mambaout pretrain --method fcmae mambaout_femto --tiny")
    if args.tiny and args.preset:
        raise UsageError("--tiny is the 'tiny' preset: drop --preset")
    preset = "tiny" if args.tiny else (args.preset or args.method or "fcmae")
    cfg = resolve_config(preset, args.set, flags)
    check_run_folder(cfg.train)
    train(cfg, quiet=args.quiet, if_exists=if_exists)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="self-supervised masked-image pre-training (SimMIM or FCMAE) of a hierarchical model",
        description="Masked-image pre-training without labels. Config = preset (default: the method's; --tiny: "
        "a few Fashion-MNIST images), then the flags, then --set. The run's model.safetensors loads with "
        "`mambaout train --pretrained PATH` (encoder only).",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="a hierarchical zoo model (mambaout_*, mamba_*, vmamba_*)")
    p.add_argument("--method", choices=["simmim", "fcmae"], help="default: the preset's (fcmae)")
    p.add_argument("--preset", help="preset name (fcmae, simmim, fashion_mnist, tiny) or a YAML path")
    p.add_argument("--tiny", action="store_true", help="the tiny preset: seconds on a CPU")
    p.add_argument("--mask-ratio", type=float, help="share of patches hidden, in (0, 1)")
    p.add_argument("--mask-patch", type=int, help="masked patch side in pixels (default: the total stride)")
    p.add_argument("--dataset", choices=["imagefolder", "fashion_mnist", "synthetic"])
    p.add_argument("--data-root", help="ImageFolder root or the Fashion-MNIST IDX folder")
    p.add_argument("--img-size", type=int)
    p.add_argument("--train-subset", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--output")
    p.add_argument("--name")
    p.add_argument("--resume", metavar="CKPT")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_pretrain)
