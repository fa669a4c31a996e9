"""Model registry: names -> factories plus what the papers report about each model."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from .errors import UnknownModelError


@dataclass(frozen=True)
class ModelInfo:
    """A registered model.

    paper: figures its paper reports at 224x224 (``params`` in M, ``macs`` in G, ``top1`` in %), with
    ``source`` naming where they come from. train: recipe defaults (e.g. ``drop_path``) used by presets.
    data: how its published weights are evaluated, in timm's ``pretrained_cfg`` keys (``crop_pct``,
    ``test_input_size`` as a side); unset keys take timm's defaults.
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str
    paper: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    input_size: int = 224
    data: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    family: str, paper: dict | None = None, train: dict | None = None, input_size: int = 224, data: dict | None = None
):
    """Decorator for a factory ``f(**kwargs) -> nn.Module``; the function's name is the model name."""

    def wrap(fn):
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name, fn, family, dict(paper or {}), dict(train or {}), input_size, dict(data or {})
        )
        return fn

    return wrap


def _ensure_loaded():
    from . import models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style wildcard (``'mambaout_*'``)."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if family:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


def match_models(patterns: str | list[str] | None) -> list[str]:
    """The models named by ``patterns`` (wildcards or names; None: all), in order, without repeats; a pattern that
    matches no model is an error naming it, since a silent empty selection reads like an empty result."""
    if patterns is None:
        return list_models()
    names = []
    for pat in [patterns] if isinstance(patterns, str) else patterns:
        found = list_models(pat)
        if not found:
            if not any(c in pat for c in "*?["):
                model_info(pat)  # a plain name: "unknown model", with close matches
            raise UnknownModelError(f"no model matches {pat!r}; see `mambaout list-models`")
        names.extend(found)
    return list(dict.fromkeys(names))


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `mambaout list-models`"
        raise UnknownModelError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def create_model(name: str, pretrained: str | None = None, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build a registered model; ``pretrained`` is a local checkpoint path (official, timm or our layout,
    .pth/.pt/.bin or .safetensors). Loading into a different ``num_classes`` replaces the classifier."""
    info = model_info(name)
    model = info.factory(num_classes=num_classes, **kwargs)
    model.model_name = name
    model.pretrained_cfg = model.default_cfg = pretrained_cfg(info, model, num_classes, kwargs.get("in_chans", 3))
    if pretrained:
        from .weights import load_pretrained

        load_pretrained(model, pretrained)
    return model


def pretrained_cfg(info: ModelInfo, model: nn.Module, num_classes: int, in_chans: int = 3) -> dict:
    """timm's ``pretrained_cfg`` for a model of ours, so that timm's data helpers (``resolve_data_config``,
    ``create_transform``) preprocess images as the published weights were evaluated."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    mean, std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    if in_chans != 3:  # one value per input channel: the RGB average
        mean, std = (sum(mean) / 3,) * in_chans, (sum(std) / 3,) * in_chans
    head = model.get_classifier() if getattr(model, "head", None) is not None else None  # none: features_only
    first_conv = classifier = None
    for n, m in model.named_modules():  # one walk for both names
        if first_conv is None and isinstance(m, nn.Conv2d):
            first_conv = n
        if head is not None and m is head:
            classifier = n
    size = info.input_size
    cfg = dict(
        architecture=info.name,
        input_size=(in_chans, size, size),
        interpolation="bicubic",
        crop_pct=0.875,
        crop_mode="center",
        mean=tuple(mean),
        std=tuple(std),
        num_classes=num_classes,
        first_conv=first_conv,
        classifier=classifier,
    )
    cfg.update({k: v for k, v in info.data.items() if k != "test_input_size"})
    if "test_input_size" in info.data:
        cfg["test_input_size"] = (in_chans, info.data["test_input_size"], info.data["test_input_size"])
    return cfg
