"""The models the demo offers: untrained zoo models, and checkpoints given on the command line or found under
the working directory (``runs/*/best.pt`` and ``model.safetensors``). Each is loaded on first use with
``explain.inputs.load_model`` and kept in a small cache; a lock per model serialises the requests that use it
(the explainers put hooks on the model, which two threads must not share)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.fashion_mnist import CLASSES as FASHION_CLASSES
from ..errors import UsageError
from ..explain.inputs import load_model
from ..registry import list_models

# Untrained models are built as the Fashion-MNIST recipe builds them (presets/classification/fashion_mnist):
# one input channel, 10 classes, stem stride 2. Their predictions mean nothing; their maps show the mixers.
UNTRAINED = ("mambaout_femto", "mamba_femto")
UNTRAINED_KWARGS = dict(in_chans=1, num_classes=10, stem_stride=2)
UNTRAINED_STRIDE = UNTRAINED_KWARGS["stem_stride"] * 2**3  # their total stride: the stem, then 3 downsamplings
CHECKPOINT_FILES = ("model.safetensors", "best.pt")  # one per run folder, the first found in this order
_SKIP = {"node_modules", "__pycache__", "site-packages", "venv"}


def discover(root: str = ".", max_depth: int = 4, limit: int = 20) -> list[str]:
    """Paths (``root`` joined with the path below it) of a run folder's model.safetensors (its final weights), else its best.pt,
    at most ``max_depth`` folders down, hidden folders and virtual environments skipped; sorted, at most
    ``limit``."""
    found = []
    for folder, dirs, files in os.walk(root):
        depth = os.path.relpath(folder, root).count(os.sep) + (os.path.relpath(folder, root) != ".")
        dirs[:] = [] if depth >= max_depth else sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP)
        name = next((f for f in CHECKPOINT_FILES if f in files), None)
        if name:
            found.append(os.path.normpath(os.path.join(folder, name)))
    return sorted(found)[:limit]


@dataclass
class Entry:
    label: str  # what the page shows
    name: str | None  # registered model (None: the one the checkpoint records)
    checkpoint: str | None = None


@dataclass
class Loaded:
    model: nn.Module
    name: str
    img_size: int
    in_chans: int
    classes: list[str]
    trained: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


def class_names(num_classes: int, in_chans: int) -> list[str]:
    """Fashion-MNIST's names for a 10-class one-channel model (the project's data set), else 'class k'."""
    if num_classes == len(FASHION_CLASSES) and in_chans == 1:
        return list(FASHION_CLASSES)
    return [f"class {k}" for k in range(num_classes)]


class ModelBank:
    """Labels -> lazily loaded models (at most ``cache_size`` in memory)."""

    def __init__(self, checkpoints=(), untrained=UNTRAINED, img_size: int = 64, cache_size: int = 4):
        known = set(list_models())
        for name in untrained:
            if name not in known:
                raise UsageError(f"unknown model {name!r} (mambaout list-models)")
        for path in checkpoints:
            if not os.path.exists(path):
                raise UsageError(f"checkpoint {path!r} not found")
        self.img_size, self.cache_size = img_size, cache_size
        self.entries: dict[str, Entry] = {}
        for path in dict.fromkeys(checkpoints):  # given and found may name the same file
            self.entries[f"checkpoint: {path}"] = Entry(f"checkpoint: {path}", None, path)
        for name in untrained:
            self.entries[f"{name} (untrained)"] = Entry(f"{name} (untrained)", name)
        self._cache: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.entries)

    @property
    def checkpoint_labels(self) -> list[str]:
        return [k for k, e in self.entries.items() if e.checkpoint]

    def get(self, label: str) -> Loaded:
        if label not in self.entries:  # a client can send any string: only listed labels load anything
            raise UsageError(f"unknown model choice {label!r}")
        with self._lock:
            if label in self._cache:
                self._cache.move_to_end(label)
                return self._cache[label]
            loaded = self._load(self.entries[label])
            self._cache[label] = loaded
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return loaded

    def _load(self, e: Entry) -> Loaded:
        if e.checkpoint is None:
            with torch.random.fork_rng(devices=[]):  # the same random weights on every start
                torch.manual_seed(0)
                model = load_model(e.name, None, **UNTRAINED_KWARGS)
        else:
            model = load_model(e.name, e.checkpoint)
        info = getattr(model, "checkpoint_info", {}) or {}
        in_chans = int(getattr(model, "in_chans", 3))
        num_classes = int(getattr(model, "num_classes", 0) or 0)
        return Loaded(
            model=model,
            name=getattr(model, "model_name", e.name or "?"),
            img_size=int(info.get("img_size") or self.img_size),
            in_chans=in_chans,
            classes=class_names(num_classes, in_chans),
            trained=e.checkpoint is not None,
        )
