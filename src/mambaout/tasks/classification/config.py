"""The classification configuration: ``model``, ``data``, ``aug`` next to the shared ``optim``/``sched``/``train``.

Presets (``presets/classification/*.yaml``) fill it; docs/training.md explains every key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

from ...engine.recipe import OptimConfig, SchedConfig, TrainConfig, check_recipe, in_range, not_negative
from ...errors import ConfigError

REMODES = ("pixel", "rand", "const")  # timm RandomErasing
MIXUP_MODES = ("batch", "pair", "elem")  # timm Mixup
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "box", "hamming", "lanczos")  # timm's names (PIL filters)


@dataclass
class ModelConfig:
    name: str = "mambaout_tiny"
    pretrained: str | None = None  # weights (any supported format); the classifier is replaced if needed
    drop_path: float | None = None  # null: the variant's rate
    drop_rate: float = 0.0  # head dropout
    in_chans: int = 3
    stem_stride: int = 4
    freeze_stages: int = 0  # freeze the stem and the first N stages
    backbone_lr_scale: float = 1.0  # lr multiplier for everything but the classifier head
    grad_checkpointing: bool = False

    def check(self):
        if self.stem_stride not in (1, 2, 4):
            raise ConfigError(f"model.stem_stride must be 1, 2 or 4, got {self.stem_stride}")
        if self.in_chans < 1:
            raise ConfigError(f"model.in_chans must be positive, got {self.in_chans}")
        not_negative("model", freeze_stages=self.freeze_stages, backbone_lr_scale=self.backbone_lr_scale)
        in_range("model", 0, 1, closed=False, drop_path=self.drop_path, drop_rate=self.drop_rate)


@dataclass
class DataConfig:
    dataset: Literal["imagefolder", "fashion_mnist", "synthetic"] = "imagefolder"
    root: str | None = None  # ImageFolder root (train/<class>/*, val/<class>/*) or the IDX folder
    train_split: str = "train"
    val_split: str = "val"
    num_classes: int = 1000
    img_size: int = 224
    eval_img_size: int | None = None  # null: img_size
    crop_pct: float = 1.0  # eval: resize to img_size / crop_pct, then centre-crop
    interpolation: str = "bicubic"
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    train_subset: int | None = None  # the first N samples of a seeded shuffle
    val_subset: int | None = None
    holdout: int = 0  # >0: validate on this many training images (fixed shuffle); the test split stays unused
    verify_images: bool = False  # decode every file up front and drop unreadable ones
    num_workers: int = 8
    gpu_prefetch: bool | Literal["auto"] = "auto"  # uint8 batches normalised on the GPU (timm PrefetchLoader)
    device_augment: bool = False  # images held on the device, augmented a batch at a time (Fashion-MNIST)
    synthetic_train: int = 256  # synthetic data: samples per split and noise level
    synthetic_val: int = 128
    synthetic_noise: float = 0.5

    def check(self):
        for k in ("num_classes", "img_size", "eval_img_size", "train_subset", "val_subset", "synthetic_train"):
            if getattr(self, k) is not None and getattr(self, k) < 1:
                raise ConfigError(f"data.{k} must be positive, got {getattr(self, k)}")
        not_negative("data", holdout=self.holdout, num_workers=self.num_workers, synthetic_noise=self.synthetic_noise)
        if self.synthetic_val < 1:
            raise ConfigError(f"data.synthetic_val must be positive, got {self.synthetic_val}")
        if not 0 < self.crop_pct <= 1:
            raise ConfigError(
                f"data.crop_pct must be in (0, 1] (the share of the resized image kept), got {self.crop_pct}"
            )
        if self.interpolation not in INTERPOLATIONS:
            close = difflib.get_close_matches(self.interpolation, INTERPOLATIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"data.interpolation: unknown {self.interpolation!r}; {hint}known: {', '.join(INTERPOLATIONS)}"
            )
        if any(not s > 0 for s in self.std):
            raise ConfigError(f"data.std must be positive, got {self.std}")


@dataclass
class AugConfig:
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333333)
    hflip: float = 0.5
    color_jitter: float | None = 0.4  # timm ignores it whenever auto_augment is set
    auto_augment: str | None = None  # e.g. rand-m9-mstd0.5-inc1
    reprob: float = 0.0  # random erasing
    remode: str = "pixel"
    recount: int = 1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    smoothing: float = 0.1

    def check(self):
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"aug.scale must be [min, max] with 0 < min <= max <= 1 (area shares), got {list(self.scale)}"
            )
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"aug.ratio must be [min, max] with 0 < min <= max, got {list(self.ratio)}")
        in_range("aug", 0, 1, hflip=self.hflip, reprob=self.reprob, mixup_prob=self.mixup_prob)
        in_range("aug", 0, 1, mixup_switch_prob=self.mixup_switch_prob)
        in_range("aug", 0, 1, closed=False, smoothing=self.smoothing)
        not_negative("aug", color_jitter=self.color_jitter, mixup=self.mixup, cutmix=self.cutmix)
        if self.recount < 1:
            raise ConfigError(f"aug.recount must be positive, got {self.recount}")
        for key, value, known in (("remode", self.remode, REMODES), ("mixup_mode", self.mixup_mode, MIXUP_MODES)):
            if value not in known:
                raise ConfigError(f"aug.{key}: unknown {value!r}; known: {', '.join(known)}")


@dataclass
class ClassificationTrainConfig(TrainConfig):
    eval_batch_size: int = 128
    channels_last: bool = False
    eval_flip: bool = False  # evaluation averages the probabilities of each image and its mirror image

    def check(self):
        super().check()
        if self.eval_batch_size < 1:
            raise ConfigError(f"train.eval_batch_size must be a positive integer, got {self.eval_batch_size}")


@dataclass
class ClassificationConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=lambda: SchedConfig(epochs=300))
    train: ClassificationTrainConfig = field(default_factory=ClassificationTrainConfig)

    def validate(self) -> None:
        """Checks across sections (each section checks its own fields as they are set)."""
        from ...registry import model_info

        model_info(self.model.name)  # an unknown model: one line with a suggestion
        check_recipe(self)
        self._check_auto_augment()
        d, t = self.data, self.train
        sizes = {"data.train_subset": d.train_subset}  # the training set's size where the config tells it
        if d.dataset == "synthetic":
            sizes["data.synthetic_train"] = d.synthetic_train
        sizes = {k: v for k, v in sizes.items() if v is not None}
        if sizes:
            key = min(sizes, key=sizes.get)
            if sizes[key] < t.batch_size * t.accum_steps:
                raise ConfigError(
                    f"train.batch_size {t.batch_size} x train.accum_steps {t.accum_steps} is more than the "
                    f"{sizes[key]} training images ({key}): not one optimizer step per epoch"
                )
        if (self.aug.mixup > 0 or self.aug.cutmix > 0) and self.train.batch_size % 2:
            raise ConfigError("mixup/cutmix need an even train.batch_size")
        if self.data.device_augment:
            if self.data.dataset != "fashion_mnist":
                raise ConfigError("data.device_augment needs an in-memory data set (data.dataset: fashion_mnist)")
            a = self.aug
            if a.auto_augment or a.color_jitter or a.remode != "pixel" or a.recount != 1 or self.data.crop_pct != 1:
                raise ConfigError(
                    "data.device_augment does crop, flip and one-rectangle pixel erasing only: set "
                    "aug.auto_augment and aug.color_jitter to null, aug.remode pixel, aug.recount 1, data.crop_pct 1"
                )
        if len(self.data.mean) != self.model.in_chans or len(self.data.std) != self.model.in_chans:
            raise ConfigError(f"data.mean/std need {self.model.in_chans} values (model.in_chans)")

    def _check_auto_augment(self) -> None:
        """timm parses the policy string only when the data set is built: parse it now."""
        policy = self.aug.auto_augment
        if not policy:
            return
        from timm.data import create_transform

        try:
            create_transform(input_size=self.data.img_size, is_training=True, auto_augment=policy)
        except (AssertionError, ValueError, KeyError, IndexError) as e:
            why = f" ({str(e).strip()})" if str(e).strip() else ""
            raise ConfigError(
                f"aug.auto_augment {policy!r}: not a timm policy{why}; e.g. rand-m9-mstd0.5-inc1, augmix-m5, original"
            ) from None
