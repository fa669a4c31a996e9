"""Image classification as a task of the engine: build, train step, evaluate.

from mambaout.tasks.classification import resolve_config, train
cfg = resolve_config("fashion_mnist", sets=["sched.epochs=5"])
summary = train(cfg)                          # or train(resume="runs/x/last.pt")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ...engine import config as C
from ...engine.state import FORMAT
from ...engine.task import Parts, Task
from ...engine.trainer import train as engine_train
from ...errors import CheckpointError, ConfigError
from ...registry import model_info
from . import data
from .config import ClassificationConfig
from .evaluate import evaluate
from .model import create_recipe_model

log = logging.getLogger("mambaout")
KIND = "classification"


def resolve_config(
    preset: str = "fashion_mnist",
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> ClassificationConfig:
    """preset -> its bases -> its ``on_cpu``/``on_cuda`` section -> ``flags`` -> ``sets`` (``key=value``)."""
    cfg = C.resolve(ClassificationConfig, KIND, preset, flags, sets, device)
    cfg.validate()
    return cfg


def build_model(cfg: ClassificationConfig, pretrained: bool = True) -> nn.Module:
    """``pretrained=False``: no weights file is read (a resumed run gets its weights from the checkpoint)."""
    m = cfg.model
    drop_path = m.drop_path if m.drop_path is not None else model_info(m.name).train.get("drop_path", 0.0)
    model = create_recipe_model(
        cfg, pretrained=m.pretrained if pretrained else None, drop_path_rate=drop_path, drop_rate=m.drop_rate
    )
    div = getattr(model, "size_divisor", 32)
    if cfg.data.img_size % div:
        raise ConfigError(
            f"data.img_size {cfg.data.img_size} is not divisible by {m.name}'s size_divisor {div} "
            f"(stem_stride {m.stem_stride})"
        )
    if m.freeze_stages:
        freeze_stages(model, m.freeze_stages)
    if m.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    return model


def freeze_stages(model: nn.Module, n: int) -> None:
    """Freeze the stem and the first ``n`` stages (n=4 leaves only the head trainable)."""
    stages = getattr(model, "stages", None)
    if stages is None or n > len(stages):
        raise ConfigError(f"model.freeze_stages={n}: the model has {len(stages or [])} stages")
    for module in [model.stem] + list(stages[:n]):
        for p in module.parameters():
            p.requires_grad_(False)


def build_loss(cfg: ClassificationConfig, mixup_active: bool):
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup_active:
        return SoftTargetCrossEntropy()  # mixup builds smoothed soft targets itself
    if cfg.aug.smoothing:
        return LabelSmoothingCrossEntropy(smoothing=cfg.aug.smoothing)
    return nn.CrossEntropyLoss()


def build_mixup(cfg: ClassificationConfig):
    a = cfg.aug
    if a.mixup <= 0 and a.cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=a.mixup,
        cutmix_alpha=a.cutmix,
        prob=a.mixup_prob,
        switch_prob=a.mixup_switch_prob,
        mode=a.mixup_mode,
        label_smoothing=a.smoothing,
        num_classes=cfg.data.num_classes,
    )


class ClassificationTask(Task):
    name = KIND
    best_metric = "val_top1"
    plot_metrics = ("val_top1",)

    def run_name(self) -> str:
        return f"{self.cfg.model.name}-{self.cfg.data.dataset}"

    def build(self, run) -> Parts:
        cfg, info = self.cfg, run.info
        if cfg.data.device_augment:  # the images on the device, whole batches augmented there
            self.prefetch = False
            stream = data.device_train_stream(cfg, run.device, info.rank, info.world_size)
            self.val_loader = data.device_eval_batches(cfg, run.device, info.rank, info.world_size)
        else:
            self.prefetch = data.gpu_prefetch(cfg, run.device)  # uint8 images, normalised on the GPU
            main_dir = run.run_dir if run.main else None
            self.train_set = data.build_dataset(cfg, "train", main_dir, uint8=self.prefetch)
            base = getattr(self.train_set, "base", self.train_set)
            classes = getattr(base, "classes", None) if cfg.data.dataset == "imagefolder" else None
            self.val_set = data.build_dataset(cfg, "val", main_dir, classes=classes, uint8=self.prefetch)
            pin, to = run.device.type == "cuda", run.device if self.prefetch else None
            stream = data.train_stream(cfg, self.train_set, info.rank, info.world_size, pin, to)
            self.val_loader = data.eval_loader(cfg, self.val_set, info.rank, info.world_size, pin, to)
        model = build_model(cfg, pretrained=not run.resuming)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.mixup = build_mixup(cfg)
        self.criterion = build_loss(cfg, self.mixup is not None)
        example = None
        if not cfg.model.grad_checkpointing:  # CUDA graphs record one batch shape
            size = cfg.data.img_size
            example = torch.empty(cfg.train.batch_size, cfg.model.in_chans, size, size, device=run.device)
            if cfg.train.channels_last:
                example = example.contiguous(memory_format=torch.channels_last)
        if run.main and self.prefetch:
            log.info("data normalised on the GPU (data.gpu_prefetch)")
        meta = {
            "model": cfg.model.name,
            "num_classes": cfg.data.num_classes,
            "in_chans": cfg.model.in_chans,
            "stem_stride": cfg.model.stem_stride,
            "img_size": cfg.data.img_size,  # explain and serve feed the size the model was trained at
        }
        return Parts(
            model,
            stream,
            cfg.train.batch_size,
            backbone_lr_scale=cfg.model.backbone_lr_scale,
            graph_example=example,
            weights_metadata=meta,
        )

    def train_step(self, model, batch, run) -> dict[str, torch.Tensor]:
        images, targets = data.to_device(*batch, run.device)
        if self.mixup is not None:
            images, targets = self.mixup(images, targets)
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return {"loss": self.criterion(model(images), targets)}

    def evaluate(self, model, run) -> dict[str, float]:
        t = self.cfg.train
        res = evaluate(model, self.val_loader, run.device, run.amp, t.channels_last, quiet=run.quiet, flip=t.eval_flip)
        res.pop("count")
        return res

    def _bad_images(self) -> int:
        return len(data.bad_files(self.train_set)) + len(data.bad_files(self.val_set))

    def row_extras(self, run) -> dict[str, Any]:
        return {"bad_images": self._bad_images()} if self.cfg.data.dataset == "imagefolder" and run.main else {}

    def summary_extras(self, run) -> dict[str, Any]:
        out = {"gpu_prefetch": self.prefetch, "device_augment": self.cfg.data.device_augment}
        if self.cfg.data.dataset == "imagefolder":
            out["bad_images"] = bad = self._bad_images()
            if bad and run.main:
                log.warning(
                    "%d unreadable images were skipped; their paths are in %s/bad_images_*.txt", bad, run.run_dir
                )
        return out


def upgrade_state(state: dict, path: str) -> dict:
    """A format-1 checkpoint (the classification loop before the engine) in today's layout."""
    if "batch_in_epoch" not in state:
        raise CheckpointError(f"checkpoint {path!r}: not a classification training checkpoint")
    cfg = C.to_dict(C.from_dict(ClassificationConfig, state["config"]))
    per_micro = max(int(cfg["train"]["batch_size"]), 1)
    stats = state.get("epoch_stats") or {"loss_sum": 0.0, "count": 0}
    best = state.get("best")
    return dict(
        state,
        format=FORMAT,
        task=KIND,
        config=cfg,
        data=(int(state["epoch"]), int(state["batch_in_epoch"])),
        meter={
            "keys": ["loss"],
            "sums": [float(stats["loss_sum"]) / per_micro],
            "count": int(stats["count"]) // per_micro,
        },
        best=None
        if not best
        else {"step": None, "epoch": best.get("epoch"), "metric": "val_top1", "value": best.get("val_top1")},
    )


def train(
    cfg: ClassificationConfig | None = None,
    resume: str | None = None,
    quiet: bool = False,
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    if_exists: str = "error",
) -> dict:
    """Train from ``cfg``, or continue the run saved in ``resume`` (``sets``/``flags`` may change only what
    ``engine.state.RESUMABLE`` allows); ``if_exists``: an existing run folder is an error, or
    ``"overwrite"``/``"suffix"`` (``engine.trainer.fit``). Returns the run's summary."""
    return engine_train(
        ClassificationTask, ClassificationConfig, cfg, resume, quiet, sets, flags, upgrade_state, if_exists=if_exists
    )
