"""The dense-prediction configuration: one backbone and one or more task heads, each with its own data.

    backbone:  {name, pretrained, drop_path, stage_norm}
    tasks:
      detection:     {weight, batch_size, num_classes, head: {...}, data: {...}, eval: {...}}
      segmentation:  {...}
      classification: {...}          # multi-task runs only
    optim / sched / train:           the engine's shared sections

A detection or segmentation run is the one-task case of this shape; a multi-task run lists several tasks and
minimises sum_t weight_t * loss_t with one batch of each task per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ...engine.recipe import OptimConfig, SchedConfig, TrainConfig, check_recipe, in_range, not_negative
from ...errors import ConfigError


def _positive(section: str, **values) -> None:
    """Each set value (numbers or pairs of numbers) > 0."""
    for name, v in values.items():
        if v is not None and not all(x > 0 for x in (v if isinstance(v, (list, tuple)) else [v])):
            raise ConfigError(f"{section}.{name} must be positive, got {list(v) if isinstance(v, tuple) else v!r}")


@dataclass
class BackboneConfig:
    name: str = "mambaout_tiny"
    pretrained: str | None = None  # a classification checkpoint (its head is dropped)
    drop_path: float = 0.3  # tiny 0.3, small 0.3, base 0.6 (the paper's dense settings)
    stage_norm: bool = True  # LayerNorm on every stage output (the authors, MambaOut issue #251)

    def check(self):
        in_range("backbone", 0, 1, closed=False, drop_path=self.drop_path)


def _check_task(section: str, task) -> None:
    not_negative(section, weight=task.weight)
    _positive(section, batch_size=task.batch_size, num_classes=task.num_classes)


# --- detection -------------------------------------------------------------------------------------------


@dataclass
class DetectionHead:
    masks: bool = True  # Mask R-CNN; false: Faster R-CNN
    min_size: int = 800  # shorter side (torchvision's GeneralizedRCNNTransform)
    max_size: int = 1333
    rcnn: dict[str, Any] = field(default_factory=dict)  # extra MaskRCNN kwargs (fpn_channels, rpn_*, box_*, ...)

    def check(self):
        _positive("head", min_size=self.min_size, max_size=self.max_size)


@dataclass
class DetectionData:
    format: Literal["coco", "voc"] = "coco"
    root: str | None = None
    train_images: str = "train2017"  # coco: folders and annotation files under root
    train_ann: str = "annotations/instances_train2017.json"
    val_images: str = "val2017"
    val_ann: str = "annotations/instances_val2017.json"
    train_split: str = "trainval"  # voc: ImageSets/Main/<split>.txt
    val_split: str = "test"
    hflip: float = 0.5
    num_workers: int = 4
    class_names: list[str] | None = None  # filled from the data when a run starts

    def check(self):
        in_range("data", 0, 1, hflip=self.hflip)
        not_negative("data", num_workers=self.num_workers)


@dataclass
class DetectionEval:
    batch_size: int = 1
    iou_types: list[Literal["bbox", "segm"]] = field(default_factory=lambda: ["bbox", "segm"])
    # also report VOC mAP@0.5 ('voc_mAP', mmdet's eval_map): 11points = VOC2007, area = VOC2010+; null: off
    voc_mode: Literal["11points", "area"] | None = None

    def check(self):
        _positive("eval", batch_size=self.batch_size)


@dataclass
class DetectionTask:
    weight: float = 1.0  # loss weight (multi-task)
    batch_size: int | None = None  # per process; null: train.batch_size
    num_classes: int | None = None  # null: from the data (categories + background)
    head: DetectionHead = field(default_factory=DetectionHead)
    data: DetectionData = field(default_factory=DetectionData)
    eval: DetectionEval = field(default_factory=DetectionEval)

    def check(self):
        _check_task("tasks.detection", self)


# --- segmentation ----------------------------------------------------------------------------------------


@dataclass
class SegmentationHead:
    channels: int = 512  # UPerHead width
    aux: bool = True  # FCN auxiliary head on stage 3 (training only)
    aux_channels: int = 256
    aux_weight: float = 0.4
    # pixel CE: False = mmseg's default (sum over non-ignored pixels / all pixels); True = / non-ignored pixels
    avg_non_ignore: bool = False

    def check(self):
        _positive("head", channels=self.channels, aux_channels=self.aux_channels)
        not_negative("head", aux_weight=self.aux_weight)


@dataclass
class SegmentationData:
    format: Literal["ade20k", "voc", "cityscapes"] = "ade20k"
    root: str | None = None  # .../ADEChallengeData2016, .../VOC2012 or the Cityscapes root
    train_split: str = "training"
    val_split: str = "validation"
    reduce_zero_label: bool = True  # ade20k: label 0 ("other") ignored, 1..150 -> 0..149
    num_classes: int = 150  # label values the files may hold (ade20k)
    crop_size: tuple[int, int] = (512, 512)
    scale: tuple[int, int] = (2048, 512)  # random resize to scale x ratio, aspect kept
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    hflip: float = 0.5
    photometric: bool = True
    test_scale: tuple[int, int] | None = (2048, 512)  # test-time resize (null: data.scale)
    on_bad_label: Literal["error", "ignore"] = "error"
    num_workers: int = 4
    class_names: list[str] | None = None

    def check(self):
        _positive(
            "data",
            num_classes=self.num_classes,
            crop_size=self.crop_size,
            scale=self.scale,
            ratio_range=self.ratio_range,
            test_scale=self.test_scale,
        )
        if self.ratio_range[0] > self.ratio_range[1]:
            raise ConfigError(f"data.ratio_range must be [min, max], got {list(self.ratio_range)}")
        in_range("data", 0, 1, hflip=self.hflip, cat_max_ratio=self.cat_max_ratio)
        not_negative("data", num_workers=self.num_workers)


@dataclass
class SegmentationEval:
    mode: Literal["slide", "whole"] = "whole"  # mmseg Swin UperNet test_cfg; slide uses crop / stride
    crop: tuple[int, int] = (512, 512)
    stride: tuple[int, int] = (341, 341)
    ms_scales: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    ms_flip: bool = True

    def check(self):
        _positive("eval", crop=self.crop, stride=self.stride, ms_scales=self.ms_scales)
        if not self.ms_scales:
            raise ConfigError("eval.ms_scales must list at least one scale")


@dataclass
class SegmentationTask:
    weight: float = 1.0
    batch_size: int | None = None
    num_classes: int | None = None  # null: from the data
    head: SegmentationHead = field(default_factory=SegmentationHead)
    data: SegmentationData = field(default_factory=SegmentationData)
    eval: SegmentationEval = field(default_factory=SegmentationEval)

    def check(self):
        _check_task("tasks.segmentation", self)


# --- classification (a head of multi-task runs) ------------------------------------------------------------


@dataclass
class ClassificationData:
    format: Literal["synthetic"] = "synthetic"
    num_samples: int = 64
    num_val: int = 32
    num_classes: int = 4
    img_size: int = 64
    num_workers: int = 0

    def check(self):
        _positive("data", num_samples=self.num_samples, num_val=self.num_val, num_classes=self.num_classes)
        _positive("data", img_size=self.img_size)
        not_negative("data", num_workers=self.num_workers)


@dataclass
class ClassificationTask:
    weight: float = 1.0
    batch_size: int | None = None
    num_classes: int | None = None
    data: ClassificationData = field(default_factory=ClassificationData)

    def check(self):
        _check_task("tasks.classification", self)


@dataclass
class Tasks:
    """The heads of the run, in this order (the first task's epochs are the run's epochs)."""

    classification: ClassificationTask | None = None
    segmentation: SegmentationTask | None = None
    detection: DetectionTask | None = None

    def names(self) -> list[str]:
        return [k for k in ("classification", "segmentation", "detection") if getattr(self, k) is not None]


@dataclass
class AutoScaleLR:
    """mmengine's ``auto_scale_lr``: lr x global batch / ``base_batch_size`` when enabled (off by default, as in
    mmdet/mmseg; the recipes' lrs are for 16 images per step)."""

    enable: bool = False
    base_batch_size: int = 16

    def check(self):
        _positive("auto_scale_lr", base_batch_size=self.base_batch_size)


@dataclass
class DenseConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    tasks: Tasks = field(default_factory=Tasks)
    optim: OptimConfig = field(
        # mmdet/mmseg's Swin/ConvNeXt rule (issue #18 item 3): no decay on names with 'norm', biases, 1-D params
        default_factory=lambda: OptimConfig(
            lr=1e-4, bias_decay=False, no_decay_keys=["norm", "pos_embed", "bias_table"]
        )
    )
    sched: SchedConfig = field(default_factory=lambda: SchedConfig(sched="poly", max_iters=160000))
    train: TrainConfig = field(default_factory=TrainConfig)
    auto_scale_lr: AutoScaleLR = field(default_factory=AutoScaleLR)

    @property
    def kind(self) -> str:
        """'detection', 'segmentation' or 'multitask'."""
        names = self.tasks.names()
        return names[0] if len(names) == 1 else "multitask"

    def validate(self) -> None:
        from ...registry import model_info

        model_info(self.backbone.name)
        check_recipe(self)
        if not self.tasks.names():
            raise ConfigError("tasks: name at least one of classification, segmentation, detection")
        if self.auto_scale_lr.enable and self.optim.lr is None:
            raise ConfigError("auto_scale_lr needs optim.lr (the lr for auto_scale_lr.base_batch_size images)")


def scale_lr(cfg: DenseConfig, global_batch: int) -> str | None:
    """Apply ``auto_scale_lr`` to ``cfg`` for a run of ``global_batch`` images per optimizer step: lr and the
    warm-up's start lr (mmengine's warm-up is a factor of the lr) x global_batch / base_batch_size; ``min_lr``
    stays (mmengine's ``eta_min`` is absolute). Returns the line to log, or None when nothing changed."""
    a, base = cfg.auto_scale_lr, cfg.auto_scale_lr.base_batch_size
    if global_batch == base:
        return None
    if not a.enable:
        return (
            f"global batch {global_batch} differs from the recipe's {base}: lr {cfg.optim.lr:g} kept "
            "(auto_scale_lr.enable=true scales it by the ratio, as mmengine)"
        )
    factor = global_batch / base
    lr, warm = cfg.optim.lr, cfg.sched.warmup_lr
    cfg.optim.lr, cfg.sched.warmup_lr = lr * factor, warm * factor
    return (
        f"auto_scale_lr: global batch {global_batch} vs {base}: lr {lr:g} -> {cfg.optim.lr:g}, "
        f"warm-up from {warm:g} -> {cfg.sched.warmup_lr:g}"
    )
