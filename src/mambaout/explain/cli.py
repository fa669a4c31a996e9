"""`mambaout explain erf|cam|ssm-attention|compare`: where a model looks, as PNGs plus a JSON of the numbers.

Every command writes into ``-o DIR``: ``<view>.png`` and ``<view>.json`` (``compare_<view>.*`` for compare);
``--json`` prints the same JSON alone on stdout. The explainers are imported when a command runs.
"""

from __future__ import annotations

import json
import os

from ..errors import UsageError

VIEWS = ("erf", "cam", "ssm-attention")


# --- shared steps ---------------------------------------------------------------------------------------------


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _model(args, name: str, checkpoint: str | None):
    import torch

    from .inputs import load_model

    kwargs = {"in_chans": args.in_chans} if args.in_chans is not None else {}
    if checkpoint is None:  # an untrained model: the same random weights on every run
        torch.manual_seed(0)
    return load_model(name, checkpoint, **kwargs).to(_device(args.device))


def _img_size(args, model, name: str) -> int:
    """--img-size, else the size the checkpoint was trained at, else the model's registered input size."""
    from ..registry import model_info

    return args.img_size or (getattr(model, "checkpoint_info", {}) or {}).get("img_size") or model_info(name).input_size


def _images(args, model, name: str, size: int | None = None):
    from .inputs import load_images

    return load_images(
        image=args.image,
        data_root=args.data_root,
        num_images=args.num_images,
        img_size=size or _img_size(args, model, name),
        in_chans=args.in_chans or getattr(model, "in_chans", 3),
        dataset=args.dataset,
    )


def _prepare_output(folder: str) -> None:
    from ..engine.recipe import check_output

    check_output(folder, f"-o {folder!r}")  # before any work: a folder that cannot be written is one line
    os.makedirs(folder, exist_ok=True)


def _finish(args, stem: str, result: dict, summary: str) -> int:
    from ..utils.output import print_json

    path = os.path.join(args.output, stem + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=str)
    if args.json:
        print_json(result)
    else:
        print(summary)
        print(f"wrote {result['png']} and {path}")
    return 0


def _query(args, images) -> tuple[int, int]:
    h, w = images.shape[-2:]
    return tuple(args.query) if args.query else (h // 2, w // 2)


# --- the views of one model ---------------------------------------------------------------------------------


def _run_erf(args, model, images):
    from .erf import erf

    result = erf(model, images, args.stage)
    return result, result.to_dict()


def _run_cam(args, model, images):
    from .cam import cam

    result = cam(model, images, args.stage, args.method, args.target)
    numbers = dict(method=args.method, stage=int(result.stage), classes=[int(c) for c in result.classes])
    return result, numbers


def _run_attention(args, model, images, conv_ok: bool = False):
    """ssm_attention; with ``conv_ok`` (compare) a model without SSM layers gets its conv/attention footprint."""
    from .hidden_attention import mixing_map, ssm_attention

    explain = mixing_map if conv_ok else ssm_attention
    result = explain(model, images[:1], _query(args, images), args.stage, args.block)
    numbers = dict(
        kind=getattr(result, "kind", "ssm"),
        query=[int(v) for v in result.query],
        stage=getattr(result, "stage", args.stage),
        block=getattr(result, "block", args.block),
        maps=sorted(result.maps),
    )
    return result, numbers


# --- commands -------------------------------------------------------------------------------------------------


def cmd_erf(args):
    _prepare_output(args.output)
    model = _model(args, args.model, args.checkpoint)
    result, numbers = _run_erf(args, model, _images(args, model, args.model))
    png = os.path.join(args.output, "erf.png")
    result.save_png(png)
    table = ", ".join(f"{float(t):.0%}: {s:.3f}" if s is not None else f"{t}: -" for t, s in result.table.items())
    summary = (
        f"ERF of {args.model} stage {result.stage} over {result.num_images} images; square side / image side: {table}"
    )
    return _finish(args, "erf", dict(numbers, checkpoint=args.checkpoint, png=png), summary)


def cmd_cam(args):
    _prepare_output(args.output)
    model = _model(args, args.model, args.checkpoint)
    images = _images(args, model, args.model)
    result, numbers = _run_cam(args, model, images)
    png = os.path.join(args.output, "cam.png")
    result.save_png(png, images)
    summary = f"{args.method} of {args.model} stage {numbers['stage']}: classes {numbers['classes']}"
    return _finish(args, "cam", dict(numbers, model=args.model, checkpoint=args.checkpoint, png=png), summary)


def cmd_ssm_attention(args):
    _prepare_output(args.output)
    model = _model(args, args.model, args.checkpoint)
    images = _images(args, model, args.model)
    result, numbers = _run_attention(args, model, images)
    png = os.path.join(args.output, "ssm_attention.png")
    result.save_png(png, images[:1])
    summary = f"hidden attention of {args.model} for the pixel {tuple(numbers['query'])}: {', '.join(numbers['maps'])}"
    return _finish(args, "ssm_attention", dict(numbers, model=args.model, checkpoint=args.checkpoint, png=png), summary)


def _panel(ax, view: str, result, images) -> None:
    """One model's map in the comparison figure."""
    import numpy as np

    from .erf import log_scaled

    if view == "erf":
        ax.imshow(log_scaled(result.map), cmap="RdYlGn", vmin=0, vmax=1)
        return
    picture = images[0].float().mean(0).cpu().numpy()
    ax.imshow((picture - picture.min()) / max(float(np.ptp(picture)), 1e-12), cmap="gray")
    if view == "cam":
        ax.imshow(result.maps[0], cmap="jet", alpha=0.5, vmin=0, vmax=1)
    else:
        ax.imshow(result.maps["sum"], cmap="magma", alpha=0.75)
        ax.plot([result.query[1]], [result.query[0]], marker="+", color="cyan", markersize=10, mew=2)


def cmd_compare(args):
    if len(args.models) < 2:
        raise UsageError(f"compare needs at least two models, got {len(args.models)}")
    checkpoints = args.checkpoint or [None] * len(args.models)
    if len(checkpoints) != len(args.models):
        raise UsageError(
            f"--checkpoint: give one per model or none ({len(args.models)} models, {len(checkpoints)} checkpoints)"
        )
    _prepare_output(args.output)
    run = {"erf": _run_erf, "cam": _run_cam, "ssm-attention": lambda a, m, x: _run_attention(a, m, x, True)}
    panels, rows, size = [], [], args.img_size
    for name, checkpoint in zip(args.models, checkpoints):
        model = _model(args, name, checkpoint)
        size = size or _img_size(args, model, name)  # every model sees the same images
        images = _images(args, model, name, size)
        result, numbers = run[args.view](args, model, images)
        panels.append((name, result, images))
        rows.append(dict(numbers, model=name, checkpoint=checkpoint))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, result, images) in zip(axes[0], panels):
        _panel(ax, args.view, result, images)
        kind = getattr(result, "kind", None) if args.view == "ssm-attention" else None
        ax.set_title(f"{name} ({kind})" if kind else name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{args.view}, stage {args.stage}", fontsize=10)
    fig.tight_layout()
    stem = "compare_" + args.view.replace("-", "_")
    png = os.path.join(args.output, stem + ".png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    summary = f"{args.view} of {', '.join(args.models)} side by side"
    return _finish(args, stem, dict(view=args.view, models=rows, png=png), summary)


# --- the parser -----------------------------------------------------------------------------------------------


def _common(p, many: bool = False) -> None:
    if many:
        p.add_argument("models", nargs="+", metavar="MODEL", help="two or more registered models")
        p.add_argument(
            "--checkpoint", action="append", metavar="PATH", help="weights of each model, in order (one per model)"
        )
    else:
        p.add_argument("model", metavar="MODEL", help="a registered model (mambaout list-models)")
        p.add_argument(
            "--checkpoint", metavar="PATH", help="last.pt/best.pt, a run folder or its model.safetensors, any weights"
        )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", metavar="PATH", help="one image file")
    src.add_argument(
        "--data-root", metavar="DIR", help="Fashion-MNIST IDX folder (default: its usual place) or an ImageFolder"
    )
    p.add_argument("--dataset", choices=("fashion_mnist", "imagefolder"), default="fashion_mnist")
    p.add_argument("--num-images", type=int, default=8, metavar="N", help="images from the data set (default 8)")
    p.add_argument(
        "--img-size", type=int, metavar="S", help="square input side (default: the checkpoint's or the model's)"
    )
    p.add_argument(
        "--in-chans", type=int, choices=(1, 3), help="input channels (default: the checkpoint's or the model's)"
    )
    p.add_argument("--stage", type=int, default=-1, help="stage whose output is explained (default -1: the last)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the PNG and the JSON")
    p.add_argument("--json", action="store_true", help="print the JSON alone on stdout")


def _cam_flags(p) -> None:
    p.add_argument("--method", choices=("gradcam", "eigencam"), default="gradcam")
    p.add_argument("--target", type=int, help="class explained (default: each image's predicted class)")


def _attention_flags(p) -> None:
    p.add_argument("--block", type=int, default=-1, help="block of the stage (default -1: the last)")
    p.add_argument("--query", type=int, nargs=2, metavar=("Y", "X"), help="query pixel (default: the centre)")


def register(subparsers) -> None:
    explain = subparsers.add_parser("explain", help="ERF, CAM and hidden SSM attention of a model (PNG + JSON)")
    sub = explain.add_subparsers(dest="view", metavar="VIEW", parser_class=type(explain))
    sub.required = True

    p = sub.add_parser("erf", help="effective receptive field of a stage's centre (RepLKNet's measure)")
    _common(p)
    p.set_defaults(func=cmd_erf)

    p = sub.add_parser("cam", help="Grad-CAM / Eigen-CAM maps of a stage")
    _common(p)
    _cam_flags(p)
    p.set_defaults(func=cmd_cam)

    p = sub.add_parser("ssm-attention", help="the attention hidden in an SSM block, for one query pixel")
    _common(p)
    _attention_flags(p)
    p.set_defaults(func=cmd_ssm_attention)

    p = sub.add_parser("compare", help="one view of several models in one figure")
    _common(p, many=True)
    p.add_argument("--view", choices=VIEWS, default="erf")
    _cam_flags(p)
    _attention_flags(p)
    p.set_defaults(func=cmd_compare)
