"""The recipe's model: ``create_model`` with the options of a classification config."""

from __future__ import annotations

from torch import nn

from ...errors import ConfigError, first_line
from ...registry import create_model
from .config import ClassificationConfig


def create_recipe_model(cfg: ClassificationConfig, **kwargs) -> nn.Module:
    """``create_model`` with the recipe's model options. ``stem_stride`` is a hierarchical model's option: it is
    passed only where it differs from the stem's default 4, so that isotropic models (a patch embedding, no
    stem) train with the recipes too; a model that refuses an option is a one-line error naming it."""
    m = cfg.model
    if m.stem_stride != 4:
        kwargs["stem_stride"] = m.stem_stride
    try:
        return create_model(m.name, num_classes=cfg.data.num_classes, in_chans=m.in_chans, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise ConfigError(f"{m.name} cannot be built with this recipe: {first_line(e)}") from None
