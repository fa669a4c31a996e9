"""Classification training: a plain epoch/step loop in the style of torchvision's reference scripts.

    from mambaout.tasks.classification.train import resolve_config, train
    cfg = resolve_config("fashion_mnist", ["sched.epochs=5"])
    summary = train(cfg)

One process, or one per GPU under torchrun (DDP; NCCL on GPU, gloo on CPU). Global batch =
train.batch_size x processes x train.accum_steps. Only rank 0 writes. Checkpoints (``last.pt``,
``best.pt``) hold everything needed to continue exactly: model, optimizer, scheduler, AMP scaler, EMA,
RNG states, epoch, step and position in the epoch (data order is a function of (seed, epoch)).
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import time
from typing import List, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ... import create_model, model_info
from ...weights import save_safetensors
from ...engine import config as C
from ...engine import cuda_graph, distributed
from ...engine.checkpoint import copy_atomic, load_state, save_state
from ...engine.logging import RunLogger
from ...engine.plots import plot_curves
from ...engine.progress import progress
from ...engine.rng import capture_rng, restore_rng, seed_everything, set_deterministic
from ...errors import MambaoutError
from . import data
from .evaluate import AMP_DTYPES, autocast, evaluate

log = logging.getLogger("mambaout")
TASK = "classification"


class NonFiniteLossError(MambaoutError):
    pass


# --- configuration ----------------------------------------------------------------------------------

def resolve_config(preset: str, overrides: Optional[List[str]] = None, device: Optional[str] = None) -> dict:
    """preset -> its ``on_cpu``/``on_cuda`` section for the device that will run -> overrides."""
    base = C.load_preset(TASK, preset)
    probe = C.apply_overrides({k: v for k, v in base.items() if not k.startswith("on_")}, overrides or [])
    want = device or C.get(probe, "train.device", "auto")
    device_type = "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"
    cfg = C.apply_overrides(C.apply_device_defaults(base, device_type), overrides or [])
    if device:
        cfg["train"]["device"] = device
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    t, d = cfg["train"], cfg["data"]
    model_info(cfg["model"]["name"])  # unknown model -> one-line error
    for key in ("batch_size", "accum_steps", "eval_batch_size"):
        if not isinstance(t[key], int) or t[key] < 1:
            raise C.ConfigError(f"train.{key} must be a positive integer, got {t[key]!r}")
    if t["amp"] not in (None, "bf16", "fp16"):
        raise C.ConfigError(f"train.amp must be null, bf16 or fp16, got {t['amp']!r}")
    if not isinstance(cfg["sched"]["epochs"], int) or cfg["sched"]["epochs"] < 1:
        raise C.ConfigError(f"sched.epochs must be a positive integer, got {cfg['sched']['epochs']!r}")
    if cfg["model"]["stem_stride"] not in (1, 2, 4):
        raise C.ConfigError("model.stem_stride must be 1, 2 or 4")
    mix = cfg["aug"]["mixup"] > 0 or cfg["aug"]["cutmix"] > 0
    if mix and t["batch_size"] % 2:
        raise C.ConfigError("mixup/cutmix need an even train.batch_size")
    if len(d["mean"]) != cfg["model"]["in_chans"] or len(d["std"]) != cfg["model"]["in_chans"]:
        raise C.ConfigError(f"data.mean/std need {cfg['model']['in_chans']} values (model.in_chans)")
    data.gpu_prefetch(cfg, torch.device("cpu"))  # the one check of data.gpu_prefetch's value
    cuda_graph.requested(t.get("cuda_graph"))
    log_every = t.get("log_every", 50)
    if not isinstance(log_every, int) or isinstance(log_every, bool) or log_every < 1:
        raise C.ConfigError(f"train.log_every must be a positive integer, got {log_every!r}")


# --- model and optimizer ------------------------------------------------------------------------------

def build_model(cfg: dict) -> nn.Module:
    m = cfg["model"]
    drop_path = m["drop_path"]
    if drop_path is None:
        drop_path = model_info(m["name"]).train.get("drop_path", 0.0)
    model = create_model(m["name"], pretrained=m["pretrained"], num_classes=cfg["data"]["num_classes"],
                         in_chans=m["in_chans"], stem_stride=m["stem_stride"], drop_path_rate=drop_path,
                         drop_rate=m.get("drop_rate", 0.0))
    size = cfg["data"]["img_size"]
    div = getattr(model, "size_divisor", 32)
    if size % div:
        raise C.ConfigError(f"data.img_size {size} is not divisible by {m['name']}'s size_divisor {div} "
                            f"(stem_stride {m['stem_stride']})")
    if m.get("freeze_stages"):
        freeze_stages(model, m["freeze_stages"])
    if m.get("grad_checkpointing") and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    return model


def freeze_stages(model: nn.Module, n: int) -> None:
    """Freeze the stem and the first ``n`` stages (n=4 leaves only the head trainable)."""
    stages = getattr(model, "stages", None)
    if stages is None or n > len(stages):
        raise C.ConfigError(f"model.freeze_stages={n}: the model has {len(stages or [])} stages")
    modules = [model.stem] + list(stages[:n])
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)


def is_head(name: str) -> bool:
    return name.startswith("head.")


def param_groups(model: nn.Module, weight_decay: float, backbone_lr_scale: float = 1.0) -> list:
    """Decay only >=2-D weights; no decay on 1-D params, biases and params flagged ``_no_weight_decay``
    (SSM A_log/D). Backbone groups get ``lr_scale`` (honoured by timm's schedulers)."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(".bias") or getattr(p, "_no_weight_decay", False)
        part = "head" if is_head(name) else "backbone"
        key = (part, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay,
                           "lr_scale": 1.0 if part == "head" else backbone_lr_scale,
                           "name": f"{part}_{'no_decay' if no_decay else 'decay'}"}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(cfg: dict, model: nn.Module, global_batch: int):
    from timm.optim import create_optimizer_v2

    o = cfg["optim"]
    lr = o["lr"] if o["lr"] is not None else o["base_lr"] * global_batch / 1024
    kwargs = {}
    if o["opt"].lower() in ("adamw", "adam", "nadamw", "lamb"):
        kwargs.update(betas=tuple(o["betas"]), eps=o["eps"])
    groups = param_groups(model, o["weight_decay"], cfg["model"].get("backbone_lr_scale", 1.0))
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    opt = create_optimizer_v2(groups, opt=o["opt"], lr=lr, weight_decay=o["weight_decay"], momentum=o["momentum"],
                              **kwargs)
    return opt, lr


def build_scheduler(cfg: dict, optimizer, updates_per_epoch: int):
    from timm.scheduler import create_scheduler_v2

    s = cfg["sched"]
    sched, epochs = create_scheduler_v2(optimizer, sched=s["sched"], num_epochs=s["epochs"],
                                        warmup_epochs=s["warmup_epochs"], warmup_lr=s["warmup_lr"],
                                        min_lr=s["min_lr"], cooldown_epochs=s["cooldown_epochs"],
                                        step_on_epochs=s["step_on_epochs"], updates_per_epoch=updates_per_epoch)
    return sched, epochs


def build_loss(cfg: dict, mixup_active: bool):
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup_active:
        return SoftTargetCrossEntropy()  # mixup builds smoothed soft targets itself
    if cfg["aug"]["smoothing"]:
        return LabelSmoothingCrossEntropy(smoothing=cfg["aug"]["smoothing"])
    return nn.CrossEntropyLoss()


def build_mixup(cfg: dict):
    a = cfg["aug"]
    if a["mixup"] <= 0 and a["cutmix"] <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=a["mixup"], cutmix_alpha=a["cutmix"], prob=a["mixup_prob"],
                 switch_prob=a["mixup_switch_prob"], mode=a["mixup_mode"], label_smoothing=a["smoothing"],
                 num_classes=cfg["data"]["num_classes"])


# --- run folder ---------------------------------------------------------------------------------------

def make_run_dir(cfg: dict) -> str:
    t = cfg["train"]
    name = t.get("name")
    if not name:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{cfg['model']['name']}-{cfg['data']['dataset']}-{stamp}"
        t["name"] = name
    return os.path.join(t["output"], name)


def unwrap(model: nn.Module) -> nn.Module:
    model = model.module if isinstance(model, DDP) else model
    return getattr(model, "_orig_mod", model)


# --- the loop -----------------------------------------------------------------------------------------

def train(cfg: dict, resume: Optional[str] = None, quiet: bool = False) -> dict:
    """Train (or continue from the checkpoint ``resume``); returns the summary dict rank 0 prints."""
    if resume:
        state = load_state(resume)
        if "config" not in state or "model" not in state:
            raise MambaoutError(f"{resume!r} is not a training checkpoint of this project")
        saved = state["config"]
        state["_same_schedule"] = C.get(cfg, "sched.epochs", saved["sched"]["epochs"]) == saved["sched"]["epochs"]
        # Continue with the saved configuration; only a few keys may change on resume.
        for key in ("sched.epochs", "train.save_every_steps", "data.num_workers", "data.root", "train.eval_every"):
            C.set_key(saved, key, C.get(cfg, key, C.get(saved, key)))
        cfg = saved
    else:
        state = None
    t = cfg["train"]
    info = distributed.init(t.get("device", "auto"))
    try:
        return _train(cfg, info, state, resume, quiet)
    finally:
        _close_file_logs()  # the next run in this process (e.g. `mambaout compare`) logs to its own folder
        distributed.teardown()


def _train(cfg, info, state, resume, quiet):
    t, main = cfg["train"], distributed.is_main()
    device = info.device
    if t["deterministic"]:
        set_deterministic(True)
    seed_everything(t["seed"] + info.rank)

    run_dir = os.path.dirname(os.path.abspath(resume)) if resume else make_run_dir(cfg)
    run_dir = distributed.broadcast_object(run_dir)
    if main:
        os.makedirs(run_dir, exist_ok=True)
        C.save_config(cfg, os.path.join(run_dir, "config.yaml"))
        _add_file_log(run_dir)
    distributed.barrier()

    # data (uint8 images normalised on the GPU by timm's PrefetchLoader when data.gpu_prefetch is on)
    prefetch = data.gpu_prefetch(cfg, device)
    train_ds = data.build_dataset(cfg, "train", run_dir if main else None, uint8=prefetch)
    val_ds = data.build_dataset(cfg, "val", run_dir if main else None,
                                classes=getattr(getattr(train_ds, "base", train_ds), "classes", None)
                                if cfg["data"]["dataset"] == "imagefolder" else None, uint8=prefetch)
    pin = device.type == "cuda"
    prefetch_to = device if prefetch else None
    train_loader, sampler = data.train_loader(cfg, train_ds, info.rank, info.world_size, pin, prefetch_to)
    val_loader = data.eval_loader(cfg, val_ds, info.rank, info.world_size, pin, prefetch_to)
    accum = t["accum_steps"]
    updates_per_epoch = sampler.batches_per_epoch // accum
    global_batch = t["batch_size"] * info.world_size * accum

    # model, optimizer, schedule, AMP, EMA
    model = build_model(cfg).to(device)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)
    optimizer, lr = build_optimizer(cfg, model, global_batch)
    scheduler, num_epochs = build_scheduler(cfg, optimizer, updates_per_epoch)
    amp = t["amp"]
    if device.type == "cpu" and amp == "fp16":
        log.warning("fp16 autocast is not supported on CPU; training in fp32")
        amp = None
    scaler = torch.amp.GradScaler("cuda") if (amp == "fp16" and device.type == "cuda") else None
    ema = None
    if t["ema"]:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=t["ema_decay"])
    mixup = build_mixup(cfg)
    criterion = build_loss(cfg, mixup is not None)
    val_criterion_note = "cross-entropy"

    start_epoch, start_batch, step, best, epoch_stats = 0, 0, 0, None, {"loss_sum": 0.0, "count": 0}
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("_same_schedule", True):
            scheduler.load_state_dict(state["scheduler"])
        else:  # --epochs changed on resume: the rebuilt schedule (new length) takes over from this step
            scheduler.step_update(num_updates=state["step"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("model_ema"):
            ema.module.load_state_dict(state["model_ema"])
        start_epoch, start_batch, step = state["epoch"], state["batch_in_epoch"], state["step"]
        best = state.get("best")
        epoch_stats = dict(state.get("epoch_stats") or epoch_stats)
        rng = state["rng"]
        restore_rng(rng[info.rank] if isinstance(rng, list) else rng)
        if main:
            log.info("resumed from %s at epoch %d, batch %d, step %d", resume, start_epoch, start_batch, step)

    train_model = model
    if t.get("compile"):
        train_model = torch.compile(model)
    graphs = cuda_graph.check(t.get("cuda_graph", False), device, info.distributed, t.get("compile"),
                              bool(cfg["model"].get("grad_checkpointing")))
    if graphs:
        size, chans = cfg["data"]["img_size"], cfg["model"]["in_chans"]
        example = torch.empty(t["batch_size"], chans, size, size, device=device)
        if t["channels_last"]:
            example = example.contiguous(memory_format=torch.channels_last)
        cuda_graph.graph_training_step(model, example, AMP_DTYPES.get(amp))
    if info.distributed:
        train_model = DDP(train_model, device_ids=[device.index] if device.type == "cuda" else None)

    logger = RunLogger(run_dir, enabled=main, resume_epoch=start_epoch if state is not None else None)
    if main:
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        log.info("run %s: %s (%.2fM params) on %s x%d, global batch %d (%d x %d proc x %d accum), lr %.3g, "
                 "%d epochs x %d updates%s", run_dir, cfg["model"]["name"], n_params, device.type, info.world_size,
                 global_batch, t["batch_size"], info.world_size, accum, lr, num_epochs, updates_per_epoch,
                 ", data normalised on the GPU (data.gpu_prefetch)" if prefetch else "")

    def state_dict(epoch, batch_in_epoch, stats):
        rng = capture_rng()
        if info.distributed:  # every rank's RNG, gathered to rank 0
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        return {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "model_ema": ema.module.state_dict() if ema is not None else None, "rng": rng, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch, "step": step, "best": best, "epoch_stats": dict(stats),
                "config": cfg, "world_size": info.world_size}

    def save(name, epoch, batch_in_epoch, stats):
        st = state_dict(epoch, batch_in_epoch, stats)  # collective: all ranks
        if main:
            save_state(os.path.join(run_dir, name), st)
        distributed.barrier()

    log_every = t.get("log_every", 50)

    def check(bar, epoch, loss_sum, checked_step):
        """The loop's only host sync: every train.log_every optimizer steps, at the epoch end and before
        every checkpoint. Returns the epoch's loss sum so far (float) once every rank's losses since the last
        check are known to be finite: a non-finite loss makes the running sum non-finite for the rest of the
        epoch, so the sum doubles as the "all finite" flag."""
        finite = torch.isfinite(loss_sum).double()
        distributed.all_reduce_sum(finite)
        finite_ranks, total = torch.stack([finite, loss_sum]).tolist()
        if finite_ranks < info.world_size:
            bar.close()
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch}, in optimizer steps {checked_step + 1}-{step} (checked every "
                f"train.log_every={log_every} steps, at epoch ends and before checkpoints); the weights may have "
                f"been updated since, but nothing was saved: the last good checkpoint is kept in {run_dir} (try "
                "a lower lr, fp32/bf16, or gradient clipping via --set optim.clip_grad=1.0)")
        return total

    wall_start = time.time()
    last_eval = None
    if start_epoch < num_epochs:
        # One iterator for every remaining epoch: the workers prepare the next epoch's first batches while this
        # one ends and while it is evaluated, instead of starting from empty queues at each epoch.
        sampler.set_span(start_epoch, start_batch, num_epochs)
        batches = iter(train_loader)
    for epoch in range(start_epoch, num_epochs):
        train_model.train()
        stats = epoch_stats if start_batch else {"loss_sum": 0.0, "count": 0}
        # Running loss sum on the device (float64, as the Python float it replaces): no host sync per step.
        loss_sum = torch.tensor(stats["loss_sum"], dtype=torch.float64, device=device)
        count = shown_count = stats["count"]
        checked_step, shown_total = step, stats["loss_sum"]
        epoch_start, images_seen = time.time(), 0
        bar = progress(total=sampler.batches_per_epoch, initial=start_batch, desc=f"epoch {epoch}", quiet=quiet)
        optimizer.zero_grad(set_to_none=not graphs)  # graphs: see cuda_graph
        for b in range(start_batch, sampler.batches_per_epoch):
            images, targets = next(batches)
            images, targets = data.to_device(images, targets, device)
            if mixup is not None:
                images, targets = mixup(images, targets)
            if t["channels_last"]:
                images = images.contiguous(memory_format=torch.channels_last)
            boundary = (b + 1) % accum == 0
            sync = contextlib.nullcontext() if (boundary or not info.distributed) else train_model.no_sync()
            with sync:
                with autocast(device, amp):
                    loss = criterion(train_model(images), targets)
                scaled = loss / accum
                (scaler.scale(scaled) if scaler else scaled).backward()
            loss_sum += loss.detach().double() * len(targets)
            count += len(targets)
            images_seen += len(targets)
            bar.update(1)
            if not boundary:
                continue
            if cfg["optim"]["clip_grad"]:
                if scaler:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["optim"]["clip_grad"])
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=not graphs)
            step += 1
            if ema is not None:
                ema.update(model, step=step)
            scheduler.step_update(num_updates=step)
            every = t.get("save_every_steps") or 0
            save_now = every and step % every == 0 and b + 1 < sampler.batches_per_epoch
            if save_now or step % log_every == 0:  # a checkpoint is never written after a non-finite loss
                total, checked_step = check(bar, epoch, loss_sum, checked_step), step
                # postfix: this rank's mean loss since the last refresh
                bar.set_postfix(loss=f"{(total - shown_total) / max(count - shown_count, 1):.4f}",
                                lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                shown_total, shown_count = total, count
                if save_now:
                    save("last.pt", epoch, b + 1, {"loss_sum": total, "count": count})
            _debug_sleep()
        total = check(bar, epoch, loss_sum, checked_step)
        bar.close()
        if device.type == "cuda":  # epoch_time_s includes the GPU work still queued for the last step
            torch.cuda.synchronize(device)
        start_batch = 0
        scheduler.step(epoch + 1)

        totals = torch.tensor([total, count], dtype=torch.float64, device=device)
        distributed.all_reduce_sum(totals)
        row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": (totals[0] / totals[1].clamp(min=1)).item(),
               "epoch_time_s": time.time() - epoch_start,
               "train_img_per_s": images_seen * info.world_size / max(time.time() - epoch_start, 1e-9)}
        if (epoch + 1) % t["eval_every"] == 0 or epoch + 1 == num_epochs:
            res = evaluate(model, val_loader, device, amp, t["channels_last"], quiet=quiet, desc="val")
            row.update(val_loss=res["loss"], val_top1=res["top1"], val_top5=res["top5"])
            if ema is not None:
                res_ema = evaluate(ema.module, val_loader, device, amp, t["channels_last"], quiet=quiet,
                                   desc="val ema")
                row.update(ema_top1=res_ema["top1"], ema_top5=res_ema["top5"])
            last_eval = row
        if cfg["data"]["dataset"] == "imagefolder" and main:
            row["bad_images"] = len(data.bad_files(train_ds)) + len(data.bad_files(val_ds))
        logger.log(row, step=step)
        if main:
            msg = f"epoch {epoch}: train loss {row['train_loss']:.4f}"
            if "val_top1" in row:
                msg += f", val top-1 {row['val_top1']:.2f}% top-5 {row['val_top5']:.2f}%"
            log.info(msg + f" ({row['epoch_time_s']:.1f}s)")
        improved = "val_top1" in row and (best is None or row["val_top1"] > best["val_top1"])
        if improved:
            best = {"epoch": epoch, "val_top1": row["val_top1"], "val_top5": row["val_top5"]}
        save("last.pt", epoch + 1, 0, {"loss_sum": 0.0, "count": 0})
        if improved and main:
            copy_atomic(os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt"))
        distributed.barrier()

    logger.close()
    summary = {"run_dir": run_dir, "model": cfg["model"]["name"], "epochs": num_epochs, "steps": step,
               "global_batch": global_batch, "world_size": info.world_size, "device": device.type,
               "gpu_prefetch": prefetch,
               "wall_time_s": time.time() - wall_start, "final": last_eval, "best": best,
               "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    if cfg["data"]["dataset"] == "imagefolder":
        bad = data.bad_files(train_ds) + data.bad_files(val_ds)
        summary["bad_images"] = len(bad)
        if bad and main:
            log.warning("%d unreadable images were skipped; their paths are in %s/bad_images_*.txt", len(bad), run_dir)
    if main:
        meta = {"model": cfg["model"]["name"], "num_classes": cfg["data"]["num_classes"],
                "in_chans": cfg["model"]["in_chans"], "stem_stride": cfg["model"]["stem_stride"]}
        save_safetensors(unwrap(model), os.path.join(run_dir, "model.safetensors"), metadata=meta)
        if ema is not None:
            save_safetensors(ema.module, os.path.join(run_dir, "model_ema.safetensors"), metadata=meta)
        plot_curves({cfg["model"]["name"]: logger.rows}, os.path.join(run_dir, "curves.png"),
                    title=f"{cfg['model']['name']} on {cfg['data']['dataset']}")
        import json

        with open(os.path.join(run_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print_summary(logger.rows, summary)
    distributed.barrier()
    return summary


def print_summary(rows, summary) -> None:
    from ...utils.table import markdown_table

    cols = [c for c in ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "ema_top1",
                        "epoch_time_s") if any(c in r for r in rows)]
    print(markdown_table(rows, cols, cols, digits=4))
    final = summary.get("final") or {}
    print(f"\n{summary['model']}: final val top-1 {final.get('val_top1', float('nan')):.2f}%, "
          f"best {summary['best']['val_top1'] if summary.get('best') else float('nan'):.2f}%, "
          f"{summary['wall_time_s']:.1f}s; run folder {summary['run_dir']}")


def _add_file_log(run_dir: str) -> None:
    root = logging.getLogger("mambaout")
    path = os.path.join(run_dir, "train.log")
    if any(getattr(h, "baseFilename", None) == os.path.abspath(path) for h in root.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    handler.run_log = True
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def _close_file_logs() -> None:
    root = logging.getLogger("mambaout")
    for h in [h for h in root.handlers if getattr(h, "run_log", False)]:
        root.removeHandler(h)
        h.close()


def _debug_sleep() -> None:
    """Testing hook: MAMBAOUT_DEBUG_STEP_SLEEP seconds after every optimizer step (for kill tests)."""
    delay = os.environ.get("MAMBAOUT_DEBUG_STEP_SLEEP")
    if delay:
        time.sleep(float(delay))
