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
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str
    paper: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    input_size: int = 224


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(family: str, paper: dict | None = None, train: dict | None = None, input_size: int = 224):
    """Decorator for a factory ``f(**kwargs) -> nn.Module``; the function's name is the model name."""

    def wrap(fn):
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, fn, family, dict(paper or {}), dict(train or {}), input_size)
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
    if pretrained:
        from .weights import load_pretrained

        load_pretrained(model, pretrained)
    return model
