"""Detection, segmentation and their multi-task combination as one task of the engine.

    from mambaout.tasks.dense import resolve_config, train
    cfg = resolve_config("segmentation", "ade20k_upernet_160k", sets=["tasks.segmentation.data.root=/data/ade"])
    summary = train(cfg)                         # or train(resume="runs/x/last.pt")

One backbone (:class:`~mambaout.models.dense_backbone.DenseBackbone`) and one head per configured task
(:class:`~mambaout.models.multitask.MultiTaskModel`); each task draws its own batch from its own data every
step (:class:`~mambaout.data.stream.MultiStream`) and the loss is sum_t weight_t * loss_t. A detection or
segmentation run is the one-task case. The per-kind parts (data, losses, metrics) live in
:mod:`.detection`, :mod:`.segmentation` and :mod:`.classification`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ...data.stream import BatchStream, MultiStream
from ...engine import config as C
from ...engine.state import read_training_state
from ...engine.task import Parts, Task
from ...engine.trainer import train as engine_train
from ...errors import CheckpointError, ConfigError, DatasetError
from ...models.dense_backbone import DenseBackbone
from ...models.multitask import MultiTaskModel
from . import classification, detection, segmentation
from .config import DenseConfig, scale_lr

log = logging.getLogger("mambaout")
KINDS = ("detection", "segmentation", "multitask")
PARTS = {"classification": classification, "segmentation": segmentation, "detection": detection}


def resolve_config(
    kind: str,
    preset: str,
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> DenseConfig:
    """A ``presets/<kind>/`` preset -> its bases -> its device section -> ``flags`` -> ``sets``."""
    if kind not in KINDS:
        raise ConfigError(f"dense task must be one of {', '.join(KINDS)}, got {kind!r}")
    cfg = C.resolve(DenseConfig, kind, preset, flags, sets, device)
    cfg.validate()
    if cfg.kind != kind:
        raise ConfigError(f"preset {preset!r} configures a {cfg.kind} run, not {kind}")
    return cfg


def build_model(cfg: DenseConfig, pretrained: bool = True) -> MultiTaskModel:
    """The backbone and one head per task (class counts must be known: the data fills them when a run starts)."""
    b = cfg.backbone
    backbone = DenseBackbone(
        b.name, drop_path_rate=b.drop_path, pretrained=b.pretrained if pretrained else None, stage_norm=b.stage_norm
    )
    sections = {name: getattr(cfg.tasks, name) for name in cfg.tasks.names()}
    return MultiTaskModel(
        backbone,
        {name: PARTS[name].head_kwargs(sec) for name, sec in sections.items()},
        {name: sec.weight for name, sec in sections.items()},
    )


def evaluate(
    cfg: DenseConfig, model: MultiTaskModel, val_sets: dict[str, Any], run, multi_scale: bool = False
) -> dict[str, Any]:
    """Every task's metrics on its validation set; keys carry the task's name when there are several."""
    names = list(val_sets)
    row = {}
    for name in names:
        res = PARTS[name].evaluate_task(model, val_sets[name], getattr(cfg.tasks, name), run, multi_scale)
        row.update({(f"{name}/{k}" if len(names) > 1 else k): v for k, v in res.items()})
    return row


COMMANDS = {"detection": "train-det", "segmentation": "train-seg", "multitask": "train-multitask"}


class DenseTask(Task):
    kinds = KINDS

    def __init__(self, cfg: DenseConfig):
        super().__init__(cfg)
        self.name = cfg.kind
        self.command = COMMANDS[cfg.kind]
        first = cfg.tasks.names()[0]
        metric = PARTS[first].MAIN_METRIC
        self.best_metric = f"val_{first}/{metric}" if cfg.kind == "multitask" else f"val_{metric}"
        self.plot_metrics = (self.best_metric,)

    def run_name(self) -> str:
        return f"{self.cfg.kind}-{self.cfg.backbone.name}"

    def build(self, run) -> Parts:
        cfg, info = self.cfg, run.info
        streams, self.val_sets, self.data_checks = {}, {}, {}
        pin = run.device.type == "cuda"
        for name in cfg.tasks.names():
            sec, part = getattr(cfg.tasks, name), PARTS[name]
            if getattr(sec.data, "root", "") is None:
                raise DatasetError(
                    f"data.root is not set for the {name} task (--data-root DIR, or --set "
                    f"tasks.{name}.data.root=/path/to/{sec.data.format})"
                )
            train_set, self.val_sets[name] = part.datasets(sec, cfg.train.seed)
            for split, ds in (("train", train_set), ("val", self.val_sets[name])):
                if getattr(ds, "check_report", None) is not None:  # data/check.py's pre-pass
                    self.data_checks[f"{name}/{split}"] = ds.check_report.counts()
            n = getattr(train_set, "num_classes", None)
            if sec.num_classes is None:
                sec.num_classes = n
            elif n is not None and sec.num_classes != n:
                raise ConfigError(f"tasks.{name}.num_classes is {sec.num_classes} but the {name} data has {n}")
            names = getattr(train_set, "class_names", None)
            if names is not None and hasattr(sec.data, "class_names"):
                sec.data.class_names = list(names)
            batch = sec.batch_size or cfg.train.batch_size
            min_batch, why = getattr(part, "MIN_BATCH", (1, ""))
            if batch < min_batch and not (info.distributed and run.device.type == "cuda"):  # SyncBN lifts it
                raise ConfigError(f"{name} needs at least {min_batch} images per batch per process: {why}")
            groups = part.group_ids(train_set) if part.group_ids else None
            streams[name] = BatchStream(
                train_set,
                batch,
                seed=cfg.train.seed,
                rank=info.rank,
                world_size=info.world_size,
                num_workers=sec.data.num_workers,
                collate=part.collate,
                pin_memory=pin,
                accum_steps=cfg.train.accum_steps,
                group_ids=groups,
            )
        model = build_model(cfg, pretrained=not run.resuming)
        batch_size = sum(s.batch_size for s in streams.values())
        if not run.resuming:  # a resumed run keeps the lr it was saved with
            note = scale_lr(cfg, batch_size * info.world_size * cfg.train.accum_steps)
            if note and info.rank == 0:
                log.info(note)
        return Parts(
            model,
            MultiStream(streams),
            batch_size,
            ddp_find_unused=cfg.tasks.names() != ["segmentation"],
            sync_bn=True,
            weights_metadata={"backbone": cfg.backbone.name, "tasks": ",".join(streams)},
        )

    def train_step(self, model, batch, run):
        return model({name: PARTS[name].to_device(b, run.device) for name, b in batch.items()})

    def evaluate(self, model, run) -> dict[str, Any]:
        return evaluate(self.cfg, model, self.val_sets, run)

    def summary_extras(self, run) -> dict[str, Any]:
        """What the data pre-pass found: images checked, unusable files, out-of-range labels, skipped objects."""
        return {"data_check": getattr(self, "data_checks", {})}


def upgrade_state(state: dict, path: str) -> dict:
    if "loaders" not in state:
        raise CheckpointError(f"{path!r} is not a detection/segmentation checkpoint of this project")
    raise CheckpointError(
        f"checkpoint {path!r} was written by the detection/segmentation loop that preceded the "
        "engine (state format 1); its model and configuration layout changed and it cannot be "
        "resumed or evaluated by this version: train it again"
    )


def train(
    cfg: DenseConfig | None = None,
    resume: str | None = None,
    quiet: bool = False,
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    if_exists: str = "error",
    kind: str | None = None,
) -> dict:
    """Train from ``cfg``, or continue the run saved in ``resume`` (``sets``/``flags`` may change only what
    ``engine.state.RESUMABLE`` allows; ``kind``: the task the checkpoint must be, e.g. for ``train-det``);
    ``if_exists``: an existing run folder is an error, or ``"overwrite"``/``"suffix"`` (``engine.trainer.fit``).
    Returns the run's summary."""
    tasks = (kind,) if kind else KINDS
    return engine_train(
        DenseTask, DenseConfig, cfg, resume, quiet, sets, flags, upgrade_state, if_exists=if_exists, tasks=tasks
    )


def load_trained(path: str, device="cpu"):
    """(model in eval mode, config) from a dense training checkpoint (``last.pt``/``best.pt``)."""
    cfg, state = read_training_state(path, DenseConfig, upgrade_state, KINDS)
    model = build_model(cfg, pretrained=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg
