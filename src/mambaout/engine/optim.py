"""Optimizer, weight-decay groups and the learning-rate schedule, from the shared ``optim``/``sched`` sections.

    opt, lr = build_optimizer(cfg.optim, model, global_batch)
    sched = build_scheduler(cfg.sched, opt, updates_per_epoch, total_updates)
    sched.step_update(num_updates=step)      # after every optimizer step; sched.step(epoch) at epoch ends

Optimizers come from timm (``create_optimizer_v2``). Schedules: ``cosine`` is timm's (the MambaOut ImageNet
recipe); ``multistep`` and ``poly`` follow mmcv's semantics, where the linear warm-up multiplies the decayed
lr (mmdet/mmseg configs: continuous at the end of the warm-up), as a timm ``Scheduler`` so the engine drives
every schedule the same way. Group ``lr_scale`` (backbone lr multipliers) is applied by the scheduler.
"""

from __future__ import annotations

import math

from timm.scheduler.scheduler import Scheduler
from torch import nn

from .recipe import OptimConfig, SchedConfig


def param_groups(
    model: nn.Module,
    weight_decay: float,
    backbone_lr_scale: float = 1.0,
    bias_decay: bool = False,
    no_decay_keys=(),
    head_prefix: str = "head.",
) -> list:
    """Parameters grouped by (head or backbone, decayed or not).

    No weight decay on 1-D parameters (norms, and biases unless ``bias_decay``), on parameters flagged
    ``_no_weight_decay`` (an SSM's A_log and D) and on names containing one of ``no_decay_keys``. The backbone
    (everything outside ``head_prefix``) gets ``lr_scale`` = ``backbone_lr_scale``. Shared parameters once.
    """
    groups, seen = {}, set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_bias = name.endswith(".bias")
        no_decay = (
            (p.ndim <= 1 and not (bias_decay and is_bias))
            or (is_bias and not bias_decay)
            or getattr(p, "_no_weight_decay", False)
            or any(k in name for k in no_decay_keys)
        )
        part = "head" if name.startswith(head_prefix) else "backbone"
        key = (part, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": 1.0 if part == "head" else backbone_lr_scale,
                "name": f"{part}_{'no_decay' if no_decay else 'decay'}",
            }
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def peak_lr(cfg: OptimConfig, global_batch: int) -> float:
    return cfg.lr if cfg.lr is not None else cfg.base_lr * global_batch / 1024


def build_optimizer(cfg: OptimConfig, model: nn.Module, global_batch: int, backbone_lr_scale: float = 1.0):
    """(optimizer, peak lr). The groups carry ``lr_scale``; the scheduler applies it."""
    from timm.optim import create_optimizer_v2

    lr = peak_lr(cfg, global_batch)
    groups = param_groups(model, cfg.weight_decay, backbone_lr_scale, cfg.bias_decay, cfg.no_decay_keys)
    kwargs = {}
    if cfg.opt.lower() in ("adamw", "adam", "nadamw", "lamb"):
        kwargs.update(betas=tuple(cfg.betas), eps=cfg.eps)
    opt = create_optimizer_v2(
        groups, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, **kwargs
    )
    return opt, lr


class MMScheduler(Scheduler):
    """mmcv's ``multistep`` / ``poly`` lr with its linear warm-up: lr(t) = regular(t) * warm(t), where
    warm(t) = r + (1 - r) t / T_warm for t < T_warm and r = warmup_lr / peak lr. Per optimizer step."""

    def __init__(
        self,
        optimizer,
        policy: str,
        total: int,
        warmup_t: int,
        warmup_lr: float,
        milestones: list[int],
        gamma: float,
        power: float,
        min_lr: float,
    ):
        super().__init__(optimizer, "lr", t_in_epochs=False)
        self.policy, self.total, self.warmup_t, self.warmup_lr = policy, total, warmup_t, warmup_lr
        self.milestones, self.gamma, self.power, self.min_lr = list(milestones), gamma, power, min_lr

    def _get_lr(self, t: int) -> list[float]:
        out = []
        for base in self.base_values:
            if self.policy == "multistep":
                lr = base * self.gamma ** sum(t >= m for m in self.milestones)
            else:
                lr = (base - self.min_lr) * (1 - min(t, self.total) / max(self.total, 1)) ** self.power + self.min_lr
            if t < self.warmup_t:
                ratio = min(self.warmup_lr / base, 1.0) if base > 0 else 1.0
                lr *= ratio + (1 - ratio) * t / self.warmup_t
            out.append(lr)
        return out


def total_updates(cfg: SchedConfig, updates_per_epoch: int) -> int:
    """The run's optimizer steps: max_iters, or epochs (plus a cosine schedule's cooldown) x steps per epoch."""
    if cfg.max_iters:
        return int(cfg.max_iters)
    return (int(cfg.epochs) + (cfg.cooldown_epochs if cfg.sched == "cosine" else 0)) * updates_per_epoch


def build_scheduler(cfg: SchedConfig, optimizer, updates_per_epoch: int, total: int | None = None) -> Scheduler:
    """The schedule over ``total`` optimizer steps (default: from epochs/max_iters)."""
    total = total or total_updates(cfg, updates_per_epoch)
    warmup_t = cfg.warmup_iters or int(round(cfg.warmup_epochs * updates_per_epoch))
    if cfg.sched == "cosine":
        from timm.scheduler import create_scheduler_v2

        epochs = total / updates_per_epoch - cfg.cooldown_epochs
        sched, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=epochs if not cfg.step_on_epochs else math.ceil(epochs),
            warmup_epochs=warmup_t / updates_per_epoch,
            warmup_lr=cfg.warmup_lr,
            min_lr=cfg.min_lr,
            cooldown_epochs=cfg.cooldown_epochs,
            step_on_epochs=cfg.step_on_epochs,
            updates_per_epoch=updates_per_epoch,
        )
        return sched
    milestones = [int(m) * updates_per_epoch for m in cfg.milestones]
    return MMScheduler(
        optimizer, cfg.sched, total, warmup_t, cfg.warmup_lr, milestones, cfg.gamma, cfg.poly_power, cfg.min_lr
    )
