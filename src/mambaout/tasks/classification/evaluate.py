"""Top-1/top-5 evaluation (sharded over ranks, exact counts) and the `mambaout eval` command."""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from ...engine import config as C
from ...engine import distributed
from ...engine.precision import autocast, effective_amp
from ...engine.progress import progress
from ...engine.state import read_training_state
from ...errors import CheckpointError
from ...utils.output import print_json
from ...weights import load_state_dict_into, read_state_dict
from . import data
from .model import create_recipe_model

log = logging.getLogger("mambaout")


@torch.no_grad()
def evaluate(model, loader, device, amp=None, channels_last=False, quiet=True, desc="eval", flip=False) -> dict:
    """Loss, top-1 and top-5 (in %) over the whole loader; sums are all-reduced across processes.

    flip: test-time mirroring -- the scores are the log of the mean of the softmax of each image and of its
    mirror image; ``top1_single`` then gives the plain top-1 of the same pass."""
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # loss_sum, correct1, correct5, count, single1
    for images, targets in progress(loader, desc=desc, quiet=quiet):
        images, targets = data.to_device(images, targets, device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
            mirrored = model(images.flip(-1)) if flip else None
        single = logits = logits.float()
        if flip:
            probs = logits.softmax(1) + mirrored.float().softmax(1)
            logits = (probs / 2).clamp_min(1e-12).log()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(targets[:, None])
        totals += torch.stack(
            [
                F.cross_entropy(logits, targets, reduction="sum").double(),
                hit[:, :1].sum().double(),
                hit.sum().double(),
                torch.tensor(float(len(targets)), dtype=torch.float64, device=device),
                single.argmax(1).eq(targets).sum().double(),
            ]
        )
    distributed.all_reduce_sum(totals)
    loss, c1, c5, n, s1 = totals.tolist()
    n = max(n, 1.0)
    out = {"loss": loss / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "count": int(n)}
    if flip:
        out["top1_single"] = 100.0 * s1 / n
    return out


# --- `mambaout eval` --------------------------------------------------------------------------------


def _config_for_eval(args, flags):
    """(config, training state or None): a run's saved config (checkpoint or run folder), else a preset."""
    from .config import ClassificationConfig
    from .task import resolve_config, upgrade_state

    if args.checkpoint and not args.checkpoint.endswith(".safetensors"):
        cfg, state = read_training_state(
            args.checkpoint,
            ClassificationConfig,
            upgrade_state,
            ("classification",),
            hint="; pass weights with --weights and the model with --model",
        )
    elif args.run:
        path = os.path.join(args.run, "config.yaml")
        if not os.path.isfile(path):
            raise CheckpointError(f"{args.run!r} is not a run folder (no config.yaml)")
        cfg, state = C.from_dict(ClassificationConfig, C.load_yaml(path)), None
    else:
        return resolve_config(args.preset, args.set, flags), None
    for key, value in flags.items():
        C.set_value(cfg, key, value)
    C.apply_sets(cfg, args.set)
    return cfg, state


def _run_file(run: str, ema: bool) -> str:
    return os.path.join(run, "model_ema.safetensors" if ema else "model.safetensors")


def eval_flags(args) -> dict:
    """The config keys an eval-like command line sets (those of its flags that were given)."""
    keys = (
        ("data.root", "data_root"),
        ("model.name", "model"),
        ("train.eval_batch_size", "batch_size"),
        ("data.num_workers", "num_workers"),
        ("data.crop_pct", "crop_pct"),
    )
    return {k: getattr(args, a) for k, a in keys if getattr(args, a, None) is not None}


def load_classifier(args) -> tuple:
    """(config, model with its weights, where they came from) for ``--checkpoint`` / ``--run`` / ``--weights``
    (+ ``--model --preset``), ``--ema`` picking the EMA weights; everything checked before any work."""
    cfg, state = _config_for_eval(args, eval_flags(args))
    if not (args.checkpoint or args.run or args.weights):
        raise CheckpointError("no weights: pass --checkpoint, --run or --weights")
    if args.ema and (args.weights or (args.checkpoint and state is None)):  # a weights file holds one set
        raise CheckpointError("--ema picks the EMA weights of a training checkpoint or --run; pass the EMA file itself")
    if args.ema and (state is not None or args.run):  # before any work: EMA weights that were never kept
        if not (state.get("model_ema") if state is not None else os.path.isfile(_run_file(args.run, True))):
            where = args.checkpoint or args.run
            raise CheckpointError(f"{where!r} has no EMA weights (trained with train.ema false): drop --ema")
    model = create_recipe_model(cfg)
    if state is not None:
        key = "model_ema" if args.ema else "model"
        if not state.get(key):
            raise CheckpointError(f"{args.checkpoint!r} holds no {key!r} weights")
        load_state_dict_into(model, state[key], source=args.checkpoint)
        return cfg, model.eval(), args.checkpoint
    src = args.weights or args.checkpoint or _run_file(args.run, args.ema)
    load_state_dict_into(model, read_state_dict(src), source=src)
    return cfg, model.eval(), src


def run_eval(args) -> dict:
    cfg, model, src = load_classifier(args)
    info = distributed.init(args.device or cfg.train.device)
    try:
        m = cfg.model
        model.to(info.device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.data.device_augment:  # as in training: the same resize on the device
            loader = data.device_eval_batches(cfg, info.device, info.rank, info.world_size, args.img_size)
        else:
            prefetch = data.gpu_prefetch(cfg, info.device)  # as in training: uint8 images, normalised on the GPU
            ds = data.build_dataset(cfg, "val", img_size=args.img_size, uint8=prefetch)
            loader = data.eval_loader(
                cfg,
                ds,
                info.rank,
                info.world_size,
                info.device.type == "cuda",
                prefetch_to=info.device if prefetch else None,
            )
        amp = effective_amp(None if args.amp == "none" else (args.amp or cfg.train.amp), info.device)
        flip = cfg.train.eval_flip if args.flip is None else args.flip
        res = evaluate(
            model, loader, info.device, amp=amp, channels_last=args.channels_last, quiet=args.quiet, flip=flip
        )
        size = args.img_size or cfg.data.eval_img_size or cfg.data.img_size
        res.update(model=m.name, weights=src, img_size=size, crop_pct=cfg.data.crop_pct, flip=flip)
        if distributed.is_main():
            print(
                f"{m.name} ({src}) at {size}x{size}, crop_pct {cfg.data.crop_pct}{', flip' if flip else ''}: "
                f"top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  loss {res['loss']:.4f}  "
                f"({res['count']} images)"
            )
            if args.json:  # cli.main sends the line above to stderr
                print_json(res, indent=None)
        return res
    finally:
        distributed.teardown()
