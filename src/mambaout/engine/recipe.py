"""The sections of a configuration that every task shares: optimizer, schedule and the training loop.

A task's configuration is a dataclass holding these next to its own ``model``/``data`` sections; the engine
reads only these three (:mod:`.optim` builds the optimizer and schedule, :mod:`.trainer` runs the loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError


def _positive(section: str, **values) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise ConfigError(f"{section}.{name} must be a positive integer, got {v!r}")


@dataclass
class OptimConfig:
    opt: str = "adamw"  # any timm optimizer name
    lr: float | None = None  # null: base_lr x global batch / 1024
    base_lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9  # sgd only
    clip_grad: float | None = None  # max gradient norm
    bias_decay: bool = False  # decay biases too (mmdet/mmseg rule) instead of exempting them
    no_decay_keys: list[str] = field(default_factory=list)  # parameter names containing one of these: no decay


@dataclass
class SchedConfig:
    sched: Literal["cosine", "multistep", "poly"] = "cosine"
    epochs: int | None = None  # the run's length in epochs of the (first) training set ...
    max_iters: int | None = None  # ... or in optimizer steps (wins when set)
    warmup_epochs: float = 0.0
    warmup_iters: int = 0  # wins over warmup_epochs when > 0
    warmup_lr: float = 1e-6  # lr at the first step of the warm-up
    min_lr: float = 0.0
    cooldown_epochs: int = 0  # cosine: epochs at min_lr after the schedule
    step_on_epochs: bool = False  # cosine: update the lr per epoch instead of per step
    milestones: list[int] = field(default_factory=list)  # multistep: epochs at which lr *= gamma
    gamma: float = 0.1
    poly_power: float = 1.0

    def check(self):
        if self.epochs is None and self.max_iters is None:
            raise ConfigError("sched.epochs or sched.max_iters must be set")
        _positive("sched", epochs=self.epochs, max_iters=self.max_iters)
        if self.warmup_epochs < 0 or self.warmup_iters < 0:
            raise ConfigError("sched.warmup_epochs / warmup_iters must not be negative")


@dataclass
class TrainConfig:
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 32  # per process (and per task)
    accum_steps: int = 1  # micro-batches per optimizer step
    amp: Literal["bf16", "fp16"] | None = None
    compile: bool = False  # torch.compile the training model
    cuda_graph: bool | Literal["auto"] = False  # replay forward+backward as CUDA graphs (one GPU)
    ema: bool = False
    ema_decay: float = 0.9998
    seed: int = 0
    deterministic: bool = False
    save_every_steps: int = 0  # also checkpoint every N optimizer steps (mid-epoch resume)
    eval_every: int = 1  # evaluate every N epochs (0: not by epochs); always after the last step
    eval_every_iters: int = 0  # ... and/or every N optimizer steps
    log_every: int = 50  # host sync (finite-loss check, progress bar) every N optimizer steps
    metrics_every: int = 0  # also a metrics row every N optimizer steps (0: epoch ends and evals)
    tensorboard: bool = True
    best_metric: str | None = None  # the row key best.pt follows (higher is better); null: the task's
    output: str = "runs"
    name: str | None = None  # the run folder is <output>/<name>; null: <model>-<data>-<time>

    def check(self):
        _positive("train", batch_size=self.batch_size, accum_steps=self.accum_steps, log_every=self.log_every)
        for k in ("save_every_steps", "eval_every", "eval_every_iters", "metrics_every"):
            if getattr(self, k) < 0:
                raise ConfigError(f"train.{k} must not be negative, got {getattr(self, k)}")
