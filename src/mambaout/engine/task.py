"""What a task supplies to the engine: build, train step, evaluate -- nothing more.

    class MyTask(Task):
        name = "pretraining"
        best_metric = "val_knn_top1"             # the row key best.pt follows (higher is better)
        def build(self, run): ...               # -> Parts(model, data stream, ...)
        def train_step(self, model, batch, run): ...   # -> {"loss": tensor, ...}: no host sync here
        def evaluate(self, model, run): ...      # -> {"metric": float, ...}

The engine (:func:`mambaout.engine.trainer.fit`) owns everything else: the run folder, devices and DDP,
the optimizer step (accumulation, clipping, AMP scaler, EMA), the schedule, the deferred finite-loss
check, metrics rows, atomic checkpoints with every RNG, exact resume, CUDA graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Parts:
    """What :meth:`Task.build` hands the engine."""

    model: nn.Module
    data: Any  # a BatchStream or MultiStream (data/stream.py)
    batch_size: int  # samples per process in one micro-batch (throughput, logs)
    backbone_lr_scale: float = 1.0  # lr multiplier outside the model's ``head.``
    graph_example: torch.Tensor | None = None  # an input shaped like a batch: CUDA graphs may record the step
    ddp_find_unused: bool = False  # some parameters get no gradient in some steps
    sync_bn: bool = False  # BatchNorm -> SyncBatchNorm under DDP on CUDA
    weights_metadata: dict[str, Any] = field(default_factory=dict)  # stored in model.safetensors


class Task:
    name: str = "task"  # stored in checkpoints as their task
    kinds: tuple = ()  # the checkpoint task names this class resumes (default: its name)
    command: str = "train"  # the `mambaout` command that trains it (the resume command printed on SIGTERM)
    best_metric: str = ""  # default of train.best_metric
    plot_metrics: tuple = ()  # row keys drawn beside the training loss in curves.png

    def __init__(self, cfg):
        self.cfg = cfg

    def run_name(self) -> str:
        """The default run-folder name (a timestamp is appended)."""
        return self.name

    def build(self, run) -> Parts:
        raise NotImplementedError

    def train_step(self, model: nn.Module, batch, run) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, run) -> dict[str, float]:
        raise NotImplementedError

    def row_extras(self, run) -> dict[str, Any]:
        """Extra values for each metrics row (e.g. how many images were unreadable)."""
        return {}

    def summary_extras(self, run) -> dict[str, Any]:
        return {}
