"""Training and evaluation loops for detection, segmentation and multi-task runs, on the shared engine.

    from mambaout.tasks.dense.train import resolve_config, train
    cfg = resolve_config("detection", "coco_maskrcnn_1x", ["data.root=/data/coco"])
    summary = train(cfg)                 # or train(cfg, resume="runs/x/last.pt")

The loop is iteration based: detection's epochs become ``epochs x iterations-per-epoch`` with the lr
milestones converted likewise; segmentation runs ``sched.max_iters``. Data order is a function of
(seed, epoch) (engine's EpochSampler + SeededDataset), and a checkpoint stores each loader's
(epoch, batch) so a resumed run replays exactly the batches it would have seen. Checkpoints are atomic
(engine.checkpoint), the log is engine.logging's RunLogger, torchrun/DDP via engine.distributed; BN in the
heads becomes SyncBN under DDP.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from typing import Dict, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ...engine import config as C
from ...engine import distributed
from ...engine.checkpoint import copy_atomic, load_state, save_state
from ...engine.logging import RunLogger, read_metrics
from ...engine.progress import progress
from ...engine.rng import capture_rng, restore_rng, seed_everything, set_deterministic
from ...engine.sampler import EpochSampler, SeededDataset, ShardedEvalSampler
from ...errors import MambaoutError
from . import datasets as D
from .metrics import ConfusionMatrix, coco_evaluate, predictions_to_coco
from .transforms import detection_transforms, segmentation_transforms

log = logging.getLogger("mambaout")

TASKS = ("detection", "segmentation", "multitask")


class NonFiniteLossError(MambaoutError):
    pass


def resolve_config(task: str, preset: str, overrides=None, device: Optional[str] = None) -> dict:
    if task not in TASKS:
        raise MambaoutError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    cfg = C.apply_overrides(C.load_preset(task, preset), overrides or [])
    dev = device or C.get(cfg, "train.device", "auto")
    dev_type = "cuda" if (dev == "cuda" or (dev == "auto" and torch.cuda.is_available())) else "cpu"
    cfg = C.apply_device_defaults(cfg, dev_type)
    if device:
        cfg["train"]["device"] = device
    cfg.setdefault("task", task)
    if cfg["task"] != task:
        raise MambaoutError(f"preset {preset!r} is a {cfg['task']} preset, not {task}")
    return cfg


# --- datasets -------------------------------------------------------------------------------------

def build_datasets(cfg: dict, task: str, split: str):
    """``split``: 'train' or 'val'. ``cfg`` is the task's section (``data`` at its top)."""
    d = cfg["data"]
    train = split == "train"
    root = d["root"]
    if root is None:
        raise MambaoutError(f"data.root is not set (e.g. --set data.root=/path/to/{d['format']})")
    fmt = d["format"]
    if task == "detection":
        tf = detection_transforms(train, d.get("hflip", 0.5))
        if fmt == "coco":
            masks = cfg["model"].get("masks", True)
            return D.CocoInstances(os.path.join(root, d[f"{split}_images"]), os.path.join(root, d[f"{split}_ann"]),
                                   train=train, transforms=tf, masks=masks)
        if fmt == "voc":
            return D.VOCDetection(root, d[f"{split}_split"], train=train, transforms=tf)
        raise MambaoutError(f"unknown detection data.format {fmt!r} (coco, voc)")
    if task == "segmentation":
        tf = segmentation_transforms(train, crop_size=d["crop_size"], scale=d["scale"], ratio_range=d["ratio_range"],
                                     cat_max_ratio=d.get("cat_max_ratio", 0.75), flip_prob=d.get("hflip", 0.5),
                                     photometric=d.get("photometric", True), test_scale=d.get("test_scale"))
        split_name = d[f"{split}_split"]
        bad = d.get("on_bad_label", "error")
        if fmt == "ade20k":
            return D.ADE20K(root, split_name, tf, bad, reduce_zero_label=d.get("reduce_zero_label", True),
                            num_classes=d.get("num_classes") or D.ADE20K_NUM_CLASSES)
        if fmt == "voc":
            return D.VOCSegmentation(root, split_name, tf, bad)
        if fmt == "cityscapes":
            return D.Cityscapes(root, split_name, tf, bad)
        raise MambaoutError(f"unknown segmentation data.format {fmt!r} (ade20k, voc, cityscapes)")
    if task == "classification":
        from ...data.synthetic import SyntheticClassification

        if fmt != "synthetic":
            raise MambaoutError("multitask classification data supports format 'synthetic' only")
        return SyntheticClassification(d["num_samples"] if train else d["num_val"], d["num_classes"],
                                       d["img_size"], seed=cfg.get("seed", 0), split=split)
    raise MambaoutError(f"unknown task {task!r}")


class CyclingLoader:
    """Endless batches over epochs; ``position`` = (epoch, batches consumed in it) for exact resume."""

    def __init__(self, dataset, batch_size: int, info, seed: int, collate=None, num_workers: int = 0,
                 group_ids=None, pin: bool = False):
        self.dataset = SeededDataset(dataset)
        self.sampler = EpochSampler(len(dataset), batch_size, info.world_size, info.rank, seed)
        self.batch_size, self.collate, self.num_workers, self.pin = batch_size, collate, num_workers, pin
        self.group_ids = group_ids
        self.epoch, self.batch = 0, 0
        self._it = None

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def _batches(self):
        self.sampler.set_epoch(self.epoch, 0)
        if self.group_ids is not None:
            batches = D.GroupedBatchSampler(self.sampler, self.group_ids, self.batch_size)
        else:
            items = list(self.sampler)
            batches = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        return list(batches)[self.batch:]

    def _start(self):
        loader = DataLoader(self.dataset, batch_sampler=self._batches(), collate_fn=self.collate,
                            num_workers=self.num_workers, pin_memory=self.pin, persistent_workers=False,
                            generator=torch.Generator().manual_seed(self.epoch))  # keeps the global RNG untouched
        self._it = iter(loader)

    def next(self):
        if self._it is None:
            self._start()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.batch = self.epoch + 1, 0
            self._start()
            batch = next(self._it)
        self.batch += 1
        return batch

    def position(self):
        return [self.epoch, self.batch]

    def seek(self, position):
        self.epoch, self.batch = int(position[0]), int(position[1])
        self._it = None


def _collate(task):
    return D.detection_collate if task == "detection" else None


def _to_device(task, batch, device):
    images, targets = batch
    if task == "detection":
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                   for t in targets]
        return images, targets
    return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


# --- models ---------------------------------------------------------------------------------------

def build_model(cfg: dict, pretrained: bool = True) -> nn.Module:
    m, task = cfg["model"], cfg["task"]
    ckpt = m.get("pretrained") if pretrained else None
    if task == "detection":
        from .detection import build_mask_rcnn

        return build_mask_rcnn(m["backbone"], num_classes=m["num_classes"], drop_path_rate=m["drop_path"],
                               pretrained=ckpt, min_size=m["min_size"], max_size=m["max_size"],
                               masks=m.get("masks", True), stage_norm=m.get("stage_norm", True), **(m.get("rcnn") or {}))
    if task == "segmentation":
        from .heads import build_upernet

        return build_upernet(m["backbone"], num_classes=m["num_classes"], drop_path_rate=m["drop_path"],
                             pretrained=ckpt, channels=m.get("channels", 512), aux_channels=m.get("aux_channels", 256),
                             aux_weight=m.get("aux_weight", 0.4), aux=m.get("aux", True),
                             stage_norm=m.get("stage_norm", True))
    from .backbone import DenseBackbone
    from .multitask import MultiTaskModel

    backbone = DenseBackbone(m["backbone"], drop_path_rate=m["drop_path"], pretrained=ckpt,
                             stage_norm=m.get("stage_norm", True))
    heads = {}
    for t, sec in cfg["tasks"].items():
        h = dict(sec.get("head") or {})
        h["num_classes"] = sec["num_classes"]
        if t == "detection":
            h["masks"] = (sec.get("model") or {}).get("masks", True)
        heads[t] = h
    return MultiTaskModel(backbone, heads, {t: sec.get("weight", 1.0) for t, sec in cfg["tasks"].items()})


def param_groups(model: nn.Module, weight_decay: float):
    """No weight decay on normalisation weights and position tables (mmdet/mmseg Swin configs' rule)."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_norm = p.ndim == 1 and not name.endswith(".bias")
        (no_decay if is_norm or "pos_embed" in name or "bias_table" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(sched: dict, max_iters: int, iters_per_epoch: int):
    """Per-iteration factor: linear warm-up, then step (milestones in epochs) or poly decay."""
    warm, ratio = int(sched.get("warmup_iters", 0)), float(sched.get("warmup_ratio", 1e-3))
    policy = sched.get("policy", "step")
    milestones = [int(e) * iters_per_epoch for e in sched.get("milestones") or []]
    gamma, power, floor = float(sched.get("gamma", 0.1)), float(sched.get("poly_power", 1.0)), float(sched.get("min_lr_ratio", 0.0))

    def f(it: int) -> float:
        if policy == "step":
            base = gamma ** sum(it >= m for m in milestones)
        elif policy == "poly":
            base = (1 - floor) * (1 - min(it, max_iters) / max(max_iters, 1)) ** power + floor
        else:
            raise MambaoutError(f"unknown sched.policy {policy!r} (step, poly)")
        if it < warm:
            base *= ratio + (1 - ratio) * it / warm
        return base

    return f


def autocast(device, amp):
    if not amp or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])


def unwrap(model):
    return model.module if isinstance(model, DDP) else model


# --- evaluation -----------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_detection(model, dataset, device, batch_size: int = 1, amp=None, iou_types=("bbox", "segm"),
                       quiet: bool = True) -> Dict[str, float]:
    """COCO box (and mask) AP over ``dataset`` (sharded over ranks; rank 0 runs COCOeval; all get the result)."""
    model.eval()
    sampler = ShardedEvalSampler(len(dataset), distributed.world_size(), distributed.rank())
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=D.detection_collate)
    results = []
    for images, targets in progress(loader, desc="eval", quiet=quiet):
        with autocast(device, amp):
            outs = model([im.to(device) for im in images])
        outs = [{k: v.float() if v.is_floating_point() else v for k, v in o.items()} for o in outs]
        results += predictions_to_coco(outs, [t["image_id"] for t in targets], dataset.label_to_cat)
    if distributed.is_dist():
        gathered = [None] * distributed.world_size()
        torch.distributed.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    types = [t for t in iou_types if t == "bbox" or getattr(dataset, "masks", False)]
    metrics = None
    if distributed.is_main():
        res = coco_evaluate(dataset.coco_gt, results, types)
        metrics = {f"{t}_{k}": v for t, stats in res.items() for k, v in stats.items()}
    return distributed.broadcast_object(metrics)


@torch.no_grad()
def evaluate_segmentation(model, dataset, device, num_classes: int, mode: str = "slide", crop=(512, 512),
                          stride=(341, 341), scales=(1.0,), flip: bool = False, amp=None,
                          quiet: bool = True) -> Dict[str, float]:
    """mIoU / mAcc / aAcc from one confusion matrix over the dataset (all-reduced over ranks)."""
    from .heads import predict_logits

    model.eval()
    cm = ConfusionMatrix(num_classes)
    sampler = ShardedEvalSampler(len(dataset), distributed.world_size(), distributed.rank())
    for i in progress(list(sampler), desc="eval", quiet=quiet):
        image, label = dataset[i]
        with autocast(device, amp):
            prob = predict_logits(model, image[None].to(device), mode, crop, stride, scales, flip)
        prob = torch.nn.functional.interpolate(prob.float(), size=label.shape, mode="bilinear", align_corners=False)
        cm.update(prob.argmax(1)[0], label)
    cm.all_reduce()
    out = cm.compute()
    per_class = out.pop("IoU")
    out["IoU_per_class"] = per_class
    return out


def evaluate(cfg, model, val_sets, device, quiet=True, multi_scale: bool = False) -> Dict[str, float]:
    """Evaluate every task of ``cfg`` on its validation set; keys are prefixed for multitask runs."""
    row = {}
    if cfg["task"] == "multitask":
        tasks = {t: (sec, val_sets[t]) for t, sec in cfg["tasks"].items()}
    else:
        tasks = {cfg["task"]: (cfg, val_sets[cfg["task"]])}
    for t, (sec, ds) in tasks.items():
        m = unwrap(model)
        m = m.heads[t] if cfg["task"] == "multitask" and t != "classification" else m
        prefix = f"{t}/" if cfg["task"] == "multitask" else ""
        ev = sec.get("eval") or {}
        amp = cfg["train"].get("amp")
        if t == "detection":
            r = evaluate_detection(m, ds, device, ev.get("batch_size", 1), amp, ev.get("iou_types", ["bbox", "segm"]),
                                   quiet)
        elif t == "segmentation":
            scales = ev.get("ms_scales", [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]) if multi_scale else [1.0]
            r = evaluate_segmentation(m, ds, device, sec["model"]["num_classes"] if "model" in sec else sec["num_classes"],
                                      ev.get("mode", "slide"), ev.get("crop", [512, 512]), ev.get("stride", [341, 341]),
                                      scales, bool(multi_scale and ev.get("ms_flip", True)), amp, quiet)
            if cfg["task"] == "multitask":
                r.pop("IoU_per_class", None)
        else:
            r = _evaluate_classification(unwrap(model), ds, device)
        row.update({prefix + k: v for k, v in r.items()})
    return row


@torch.no_grad()
def _evaluate_classification(model, ds, device):
    model.eval()
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    sampler = ShardedEvalSampler(len(ds), distributed.world_size(), distributed.rank())
    for x, y in DataLoader(ds, batch_size=64, sampler=sampler):
        pred = model.predict("classification", x.to(device)).argmax(1).cpu()
        correct += torch.tensor([(pred == torch.as_tensor(y)).sum().item(), len(y)], dtype=torch.float64, device=device)
    distributed.all_reduce_sum(correct)
    return {"top1": 100.0 * (correct[0] / correct[1].clamp(min=1)).item()}


# --- the loop -------------------------------------------------------------------------------------

def _main_metric(cfg) -> str:
    return cfg["train"].get("best_metric") or {"detection": "bbox_AP", "segmentation": "mIoU"}.get(cfg["task"], "")


def _task_sections(cfg):
    if cfg["task"] == "multitask":
        return {t: dict(sec, train=cfg["train"], task=t) for t, sec in cfg["tasks"].items()}
    return {cfg["task"]: cfg}


def train(cfg: Optional[dict] = None, resume: Optional[str] = None, quiet: bool = False, overrides=None) -> dict:
    """Train from ``cfg``, or continue from the checkpoint ``resume`` with its saved configuration
    (``overrides``, ``key=value`` strings, may change e.g. data.root or data.num_workers); returns a summary."""
    state = None
    if resume:
        state = load_state(resume)
        if "config" not in state or "model" not in state or "loaders" not in state:
            raise MambaoutError(f"{resume!r} is not a dense-task training checkpoint of this project")
        saved = state["config"]
        saved["train"].pop("stop_at_step", None)
        cfg = C.apply_overrides(saved, overrides or [])
    elif cfg is None:
        raise MambaoutError("train() needs a config or a checkpoint to resume from")
    info = distributed.init(cfg["train"].get("device", "auto"))
    try:
        return _train(cfg, info, state, resume, quiet)
    finally:
        distributed.teardown()


def _train(cfg, info, state, resume, quiet):
    t, main, device = cfg["train"], distributed.is_main(), info.device
    if t.get("deterministic"):
        set_deterministic(True)
    seed_everything(t["seed"] + info.rank)
    if resume:
        run_dir = os.path.dirname(os.path.abspath(resume))
    else:
        name = t.get("name") or f"{cfg['task']}-{cfg['model']['backbone']}-{time.strftime('%Y%m%d-%H%M%S')}"
        t["name"] = name
        run_dir = os.path.join(t["output"], name)
    run_dir = distributed.broadcast_object(run_dir)

    # data (resolves the class counts into the config before it is saved)
    sections = _task_sections(cfg)
    train_sets, val_sets = {}, {}
    for task, sec in sections.items():
        train_sets[task] = build_datasets(sec, task, "train")
        val_sets[task] = build_datasets(sec, task, "val")
        n = getattr(train_sets[task], "num_classes", None)
        if task == "classification":
            n = sec["data"]["num_classes"]
        target = cfg["model"] if cfg["task"] != "multitask" else cfg["tasks"][task]
        if target.get("num_classes") is None:
            target["num_classes"] = n
        elif n is not None and target["num_classes"] != n:
            raise MambaoutError(f"model has {target['num_classes']} classes but the {task} data has {n}")
        names = getattr(train_sets[task], "class_names", None)
        if cfg["task"] != "multitask" and names is not None:
            cfg["data"]["class_names"] = list(names)
    if main:
        os.makedirs(run_dir, exist_ok=True)
        C.save_config(cfg, os.path.join(run_dir, "config.yaml"))
    distributed.barrier()

    syncbn = info.distributed and device.type == "cuda"
    for task, sec in sections.items():
        bs = sec["train"]["batch_size"] if cfg["task"] != "multitask" else sec.get("batch_size", t["batch_size"])
        if task == "segmentation" and int(bs) < 2 and not syncbn:
            raise MambaoutError("segmentation needs at least 2 images per batch per process: the PPM's 1x1 pooled "
                                "BatchNorm cannot train on one value per channel (SyncBN across GPUs lifts this)")
    pin = device.type == "cuda"
    loaders = {}
    for task, sec in sections.items():
        ds = train_sets[task]
        bs = sec["train"]["batch_size"] if cfg["task"] != "multitask" else sec.get("batch_size", t["batch_size"])
        groups = D.aspect_groups(ds) if task == "detection" else None
        loaders[task] = CyclingLoader(ds, bs, info, t["seed"], _collate(task), cfg.get("data", sec["data"]).get("num_workers", 0)
                                      if cfg["task"] != "multitask" else sec["data"].get("num_workers", 0), groups, pin)
    primary = next(iter(loaders))
    iters_per_epoch = loaders[primary].batches_per_epoch
    s = cfg["sched"]
    max_iters = int(s["max_iters"]) if s.get("max_iters") else int(s["epochs"]) * iters_per_epoch

    model = build_model(cfg, pretrained=state is None).to(device)
    if info.distributed and device.type == "cuda":  # SyncBN needs CUDA; CPU/gloo DDP keeps per-process BN
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    o = cfg["optim"]
    try:  # YAML reads "1e-4" (no dot) as a string
        lr, wd, betas = float(o["lr"]), float(o["weight_decay"]), tuple(float(b) for b in o["betas"])
    except (TypeError, ValueError):
        raise MambaoutError(f"optim.lr / weight_decay / betas must be numbers, got {o['lr']!r} / "
                            f"{o['weight_decay']!r} / {o['betas']!r}") from None
    optimizer = torch.optim.AdamW(param_groups(model, wd), lr=lr, betas=betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(s, max_iters, iters_per_epoch))
    amp = t.get("amp")
    if device.type == "cpu" and amp:
        amp = None
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    step, best = 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        for task, pos in state["loaders"].items():
            loaders[task].seek(pos)
        step, best = int(state["step"]), state.get("best")
        rng = state["rng"]
        restore_rng(rng[info.rank] if isinstance(rng, list) else rng)
        if main:
            log.info("resumed from %s at step %d", resume, step)
    train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                      find_unused_parameters=cfg["task"] != "segmentation") if info.distributed else model

    old_rows = read_metrics(run_dir) if state is not None and main else []
    logger = RunLogger(run_dir, enabled=main, resume_epoch=None, tensorboard=t.get("tensorboard", True))
    if old_rows:  # keep the rows logged up to the checkpoint, drop any logged after it
        logger.rows = [r for r in old_rows if r.get("step", 0) <= step]
        logger._rewrite()
    if main:
        log.info("run %s: %s on %s (%.2fM params), %s x%d, %d iterations (%d per epoch)", run_dir, cfg["task"],
                 cfg["model"]["backbone"], sum(p.numel() for p in model.parameters()) / 1e6, device.type,
                 info.world_size, max_iters, iters_per_epoch)

    def save(name):
        rng = capture_rng()
        if info.distributed:
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        st = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
              "scaler": scaler.state_dict() if scaler else None, "rng": rng, "step": step, "best": best,
              "loaders": {k: v.position() for k, v in loaders.items()}, "config": cfg, "world_size": info.world_size}
        if main:
            save_state(os.path.join(run_dir, name), st)
        distributed.barrier()

    ev_iters = int(t.get("eval_every_iters") or 0)
    ev_epochs = int(t.get("eval_every_epochs") or 0)
    log_every, save_every = int(t.get("log_every", 50)), int(t.get("save_every_steps") or 0)
    sums, count, t0, last_row = {}, 0, time.time(), None
    bar = progress(total=max_iters, initial=step, desc=cfg["task"], quiet=quiet)
    while step < max_iters:
        train_model.train()
        batches = {task: _to_device(task, ld.next(), device) for task, ld in loaders.items()}
        with autocast(device, amp):
            losses = _losses(cfg["task"], train_model, batches)
        loss = losses["loss"]
        finite = torch.isfinite(loss.detach()).float()
        distributed.all_reduce_sum(finite)
        if finite.item() < info.world_size:
            raise NonFiniteLossError(f"non-finite loss at step {step}; stopped without updating the weights; the last "
                                     f"checkpoint is kept in {run_dir} (try a lower lr or optim.clip_grad)")
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if o.get("clip_grad"):
            if scaler:
                scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), float(o["clip_grad"]))
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        with warnings.catch_warnings():  # GradScaler skips the first steps' updates; the schedule still counts them
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step()`")
            scheduler.step()
        step += 1
        bar.update(1)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        epoch_end = loaders[primary].batch >= iters_per_epoch
        epoch = loaders[primary].epoch
        do_eval = step == max_iters or (ev_iters and step % ev_iters == 0) or \
            (ev_epochs and epoch_end and (epoch + 1) % ev_epochs == 0)
        if do_eval or step % log_every == 0 or epoch_end:
            row = {"step": step, "epoch": epoch + (1 if epoch_end else loaders[primary].batch / iters_per_epoch),
                   "lr": optimizer.param_groups[0]["lr"], "time_s": time.time() - t0}
            row.update({f"train_{k}": v / max(count, 1) for k, v in sums.items()})
            sums, count = {}, 0
            if do_eval:
                res = evaluate(cfg, train_model, val_sets, device, quiet)
                row.update({f"val_{k}": v for k, v in res.items() if not isinstance(v, list)})
                metric = f"val_{_main_metric(cfg)}"
                if metric in row and (best is None or row[metric] > best["value"]):
                    best = {"step": step, "metric": metric, "value": row[metric]}
                    row["best"] = True
                last_row = row
            logger.log(row, step=step)
            if main:
                log.info("step %d/%d: %s", step, max_iters, ", ".join(
                    f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float) and k not in ("epoch", "time_s")))
            if do_eval or epoch_end or (save_every and step % save_every == 0):
                save("last.pt")
                if row.get("best") and main:
                    copy_atomic(os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt"))
                distributed.barrier()
        elif save_every and step % save_every == 0:
            save("last.pt")
        if t.get("stop_at_step") and step >= int(t["stop_at_step"]) and step < max_iters:
            save("last.pt")  # as if interrupted here (tests of exact resume)
            break
    bar.close()
    logger.close()
    summary = {"run_dir": run_dir, "steps": step, "best": best, "last_eval": last_row}
    return summary


def _losses(task, model, batches) -> Dict[str, torch.Tensor]:
    if task == "detection":
        images, targets = batches["detection"]
        losses = model(images, targets)
        losses["loss"] = sum(losses.values())
        return losses
    if task == "segmentation":
        images, labels = batches["segmentation"]
        return model(images, labels)
    return model(batches)  # MultiTaskModel.forward = weighted losses (through DDP's forward for gradient sync)


def load_trained(path: str, device="cpu"):
    """(model in eval mode, config) from a dense checkpoint (``last.pt``/``best.pt``) of this project."""
    state = load_state(path)
    if "config" not in state or "model" not in state or state["config"].get("task") not in TASKS:
        raise MambaoutError(f"{path!r} is not a detection/segmentation checkpoint of this project")
    cfg = state["config"]
    model = build_model(cfg, pretrained=False)
    sd = {k.replace("module.", "", 1) if k.startswith("module.") else k: v for k, v in state["model"].items()}
    model.load_state_dict(sd)
    return model.to(device).eval(), cfg
