"""Top-1/top-5 evaluation (sharded over ranks, exact counts) and the `mambaout eval` command."""
from __future__ import annotations

import contextlib
import logging
import os

import torch
import torch.nn.functional as F

from ... import create_model
from ...weights import load_state_dict_into, read_state_dict
from ...engine import config as C
from ...engine import distributed
from ...engine.checkpoint import load_state
from ...engine.progress import progress
from ...errors import MambaoutError
from . import data

log = logging.getLogger("mambaout")


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


@torch.no_grad()
def evaluate(model, loader, device, amp=None, channels_last=False, quiet=True, desc="eval") -> dict:
    """Loss, top-1 and top-5 (in %) over the whole loader; sums are all-reduced across processes."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss_sum, correct1, correct5, count
    for images, targets in progress(loader, desc=desc, quiet=quiet):
        images, targets = data.to_device(images, targets, device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(targets[:, None])
        totals += torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(),
                               hit[:, :1].sum().double(), hit.sum().double(),
                               torch.tensor(float(len(targets)), dtype=torch.float64, device=device)])
    distributed.all_reduce_sum(totals)
    loss, c1, c5, n = totals.tolist()
    n = max(n, 1.0)
    return {"loss": loss / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "count": int(n)}


# --- `mambaout eval` --------------------------------------------------------------------------------

def _config_for_eval(args):
    """The run's saved config (from a training checkpoint or run folder), else a preset."""
    if args.checkpoint and not args.checkpoint.endswith(".safetensors"):
        state = load_state(args.checkpoint)
        if "config" not in state:
            raise MambaoutError(f"{args.checkpoint!r} is not a training checkpoint of this project; "
                                "pass weights with --weights and the model with --model")
        return state["config"], state
    if args.run:
        path = os.path.join(args.run, "config.yaml")
        if not os.path.isfile(path):
            raise MambaoutError(f"{args.run!r} is not a run folder (no config.yaml)")
        return C.load_yaml(path), None
    return C.load_preset("classification", args.preset), None


def run_eval(args) -> dict:
    cfg, state = _config_for_eval(args)
    overrides = list(args.set or [])
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.model:
        overrides.append(f"model.name={args.model}")
    if args.batch_size:
        overrides.append(f"train.eval_batch_size={args.batch_size}")
    if args.num_workers is not None:
        overrides.append(f"data.num_workers={args.num_workers}")
    if args.crop_pct:
        overrides.append(f"data.crop_pct={args.crop_pct}")
    cfg = C.apply_overrides(C.apply_device_defaults(cfg, "cuda" if torch.cuda.is_available() else "cpu")
                            if state is None and not args.run else cfg, overrides)
    info = distributed.init(args.device or cfg["train"].get("device", "auto"))
    try:
        m = cfg["model"]
        model = create_model(m["name"], num_classes=cfg["data"]["num_classes"], in_chans=m["in_chans"],
                             stem_stride=m["stem_stride"])
        use_ema = args.ema
        if state is not None:
            key = "model_ema" if use_ema else "model"
            if key not in state:
                raise MambaoutError(f"{args.checkpoint!r} holds no {key!r} weights")
            load_state_dict_into(model, state[key], source=args.checkpoint)
            src = args.checkpoint
        else:
            src = args.weights or (os.path.join(args.run, "model_ema.safetensors" if use_ema else "model.safetensors")
                                   if args.run else None)
            if not src:
                raise MambaoutError("nothing to evaluate: pass --checkpoint, --run or --weights")
            load_state_dict_into(model, read_state_dict(src), source=src)
        model.to(info.device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        prefetch = data.gpu_prefetch(cfg, info.device)  # as in training: uint8 images, normalised on the GPU
        ds = data.build_dataset(cfg, "val", img_size=args.img_size, uint8=prefetch)
        loader = data.eval_loader(cfg, ds, info.rank, info.world_size, info.device.type == "cuda",
                                  prefetch_to=info.device if prefetch else None)
        amp = None if args.amp == "none" else (args.amp or cfg["train"].get("amp"))
        if info.device.type == "cpu" and amp == "fp16":
            amp = None
        res = evaluate(model, loader, info.device, amp=amp, channels_last=args.channels_last, quiet=args.quiet)
        size = args.img_size or cfg["data"].get("eval_img_size") or cfg["data"]["img_size"]
        res.update(model=m["name"], weights=src, img_size=size, crop_pct=cfg["data"]["crop_pct"])
        if distributed.is_main():
            print(f"{m['name']} ({src}) at {size}x{size}, crop_pct {cfg['data']['crop_pct']}: "
                  f"top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  loss {res['loss']:.4f}  "
                  f"({res['count']} images)")
            if args.json:
                import json

                print(json.dumps(res))
        return res
    finally:
        distributed.teardown()
