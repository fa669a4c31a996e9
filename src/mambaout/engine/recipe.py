"""The sections of a configuration that every task shares: optimizer, schedule and the training loop.

A task's configuration is a dataclass holding these next to its own ``model``/``data`` sections; the engine
reads only these three (:mod:`.optim` builds the optimizer and schedule, :mod:`.trainer` runs the loop).
Each section checks its own fields as they are set; :func:`check_recipe` checks across them and
:func:`check_output` the runs folder, before any work starts.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..utils.paths import check_output  # noqa: F401 - callers import it from here

log = logging.getLogger("mambaout")


def _positive(section: str, **values) -> None:
    for name, v in values.items():
        if v is not None and not v >= 1:
            raise ConfigError(f"{section}.{name} must be a positive integer, got {v!r}")


def not_negative(section: str, **values) -> None:
    for name, v in values.items():
        if v is not None and not v >= 0:
            raise ConfigError(f"{section}.{name} must not be negative, got {v!r}")


def in_range(section: str, lo: float, hi: float, closed: bool = True, **values) -> None:
    """Each set value in [lo, hi] (``closed=False``: [lo, hi))."""
    for name, v in values.items():
        if v is not None and not (lo <= v <= hi if closed else lo <= v < hi):
            raise ConfigError(f"{section}.{name} must be in [{lo}, {hi}{']' if closed else ')'}, got {v!r}")


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
    bias_decay: bool = False  # decay biases too (mmseg's Swin custom_keys config does) instead of exempting them
    no_decay_keys: list[str] = field(default_factory=list)  # parameter names containing one of these: no decay

    def check(self):
        for k in ("lr", "base_lr", "eps", "clip_grad"):
            v = getattr(self, k)
            if v is not None and not v > 0:
                raise ConfigError(f"optim.{k} must be positive, got {v!r}")
        not_negative("optim", weight_decay=self.weight_decay)
        in_range("optim", 0, 1, momentum=self.momentum)
        in_range("optim", 0, 1, closed=False, **{"betas[0]": self.betas[0], "betas[1]": self.betas[1]})


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
        not_negative(
            "sched",
            warmup_epochs=self.warmup_epochs,
            warmup_iters=self.warmup_iters,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
            cooldown_epochs=self.cooldown_epochs,
        )
        if any(m < 0 for m in self.milestones):
            raise ConfigError(f"sched.milestones must not be negative, got {self.milestones}")
        if not self.gamma > 0 or not self.poly_power > 0:
            raise ConfigError(f"sched.gamma and sched.poly_power must be positive, got {self.gamma}, {self.poly_power}")


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
            not_negative("train", **{k: getattr(self, k)})
        in_range("train", 0, 1, closed=False, ema_decay=self.ema_decay)
        if not self.output.strip():
            raise ConfigError("train.output must name a folder, got ''")


# --- across sections, before a run starts ----------------------------------------------------------------

_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def check_optimizer(name: str) -> None:
    from timm.optim import list_optimizers

    known = list_optimizers()
    *prefix, base = name.lower().split("_")  # timm's rule: the last part, optionally after "lookahead_"
    if base not in known or prefix not in ([], ["lookahead"]):
        close = difflib.get_close_matches(name.lower(), known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"optim.opt: unknown optimizer {name!r}; {hint}(any timm optimizer: adamw, sgd, lamb, ...)")


def check_recipe(cfg) -> None:
    """Checks across a task config's ``optim``/``sched``/``train`` sections that need no data: the optimizer
    name, and a warm-up as long as the run (warned once: the lr would never reach its peak)."""
    check_optimizer(cfg.optim.opt)
    s = cfg.sched
    if s.max_iters and s.warmup_iters:
        warm, run, unit = s.warmup_iters, s.max_iters, ("warmup_iters", "max_iters")
    elif not s.max_iters and not s.warmup_iters and s.epochs:
        warm, run, unit = s.warmup_epochs, s.epochs, ("warmup_epochs", "epochs")
    else:  # one in epochs, the other in steps: known only once the data is read
        return
    if warm and warm >= run:
        warn_once(
            f"sched.{unit[0]} {warm:g} >= sched.{unit[1]} {run:g}: the whole run is warm-up, the lr never reaches "
            f"its peak (lower it, e.g. --set sched.{unit[0]}=0)"
        )


def check_run_folder(train: TrainConfig | None, resume: str | None = None) -> None:
    """The folder a run will write (``<output>/<name>``, or a resumed checkpoint's) can be written."""
    if resume:
        if os.path.isfile(resume):  # a missing file is the checkpoint reader's message
            check_output(os.path.dirname(os.path.abspath(resume)), f"--resume {resume!r}")
    elif train.name:
        check_output(os.path.join(train.output, train.name), f"run folder {os.path.join(train.output, train.name)!r}")
    else:
        check_output(train.output, f"train.output {train.output!r}")


def check_file(path: str | None, what: str) -> None:
    """A file the run will read (e.g. pretrained weights) exists, before any work starts."""
    if path and not os.path.isfile(path):
        raise ConfigError(f"{what} {path!r}: no such file")
