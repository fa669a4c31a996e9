"""The pre-training configuration: ``model`` (encoder, method, masking, decoder) next to the classification
task's ``data``/``aug`` sections (the same readers; labels are never used) and the shared ``optim``/``sched``/
``train``. Presets: ``presets/pretrain/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...engine.recipe import OptimConfig, SchedConfig, check_recipe
from ...errors import ConfigError
from ..classification.config import AugConfig, ClassificationTrainConfig, DataConfig


@dataclass
class PretrainModelConfig:
    name: str = "mambaout_femto"
    method: Literal["simmim", "fcmae"] = "fcmae"
    mask_ratio: float = 0.6  # share of patches hidden
    mask_patch: int | None = None  # side of a masked patch in pixels; null: the network's total stride
    norm_pix: bool = True  # fcmae: per-patch normalised targets
    decoder_dim: int = 128  # fcmae decoder width
    in_chans: int = 3
    stem_stride: int = 4
    drop_path: float = 0.0

    def check(self):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"model.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.mask_patch is not None and self.mask_patch < 1:
            raise ConfigError(f"model.mask_patch must be positive, got {self.mask_patch}")
        if self.stem_stride not in (1, 2, 4):
            raise ConfigError(f"model.stem_stride must be 1, 2 or 4, got {self.stem_stride}")
        if self.decoder_dim < 1 or self.in_chans < 1:
            raise ConfigError("model.decoder_dim and model.in_chans must be positive")


@dataclass
class PretrainConfig:
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=lambda: SchedConfig(epochs=100))
    train: ClassificationTrainConfig = field(default_factory=ClassificationTrainConfig)

    def validate(self, size_divisor: int | None = None) -> None:
        """Checks across sections; ``size_divisor`` (the encoder's total stride) checks the patch size too."""
        from ...registry import model_info

        model_info(self.model.name)
        check_recipe(self)
        m, size = self.model, self.data.img_size
        if len(self.data.mean) != m.in_chans or len(self.data.std) != m.in_chans:
            raise ConfigError(f"data.mean/std need {m.in_chans} values (model.in_chans)")
        if size_divisor is None:
            return
        patch = m.mask_patch or size_divisor
        if patch % size_divisor:
            raise ConfigError(
                f"model.mask_patch {patch} must be a multiple of {m.name}'s total stride {size_divisor} (stem_stride "
                f"{m.stem_stride}): every token of the last stage has to lie inside one patch"
            )
        if size % patch:
            raise ConfigError(f"data.img_size {size} is not divisible by the patch size {patch} (model.mask_patch)")
        if (size // patch) ** 2 < 2:
            raise ConfigError(
                f"data.img_size {size} holds one {patch}px patch: nothing left to hide and see (lower "
                "model.stem_stride or raise data.img_size)"
            )
