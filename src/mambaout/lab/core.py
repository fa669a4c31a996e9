"""Lab presets and the context every experiment runs in.

A preset (``presets/lab/<experiment>.yaml``) holds ``tiny``, ``cpu`` and ``full`` mappings (tiny: tests,
seconds; cpu: a small 5-seed run for a shared 2-core CPU, ~13 min; full: one GPU, split into calls of
< 9 min). Budgets are training steps (``steps``; :mod:`.budget`), never wall-clock. The CLI
picks one (``--tiny`` or ``--mode``; a section may name another as its ``_base_``), then applies ``--set key=value``
overrides (dotted keys, parsed as the replaced value's type: the engine's rules) and the
shortcuts ``--seeds``, ``--epochs`` (epochs x steps per epoch replaces the preset's steps).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field

import torch

from ..bench.timing import AMP_DTYPES
from ..engine import config as C
from ..errors import ConfigError, LabError

log = logging.getLogger("mambaout.lab")

RUN_BY_ALL = ("long-seq", "zoo", "length", "causal", "framing", "ssl")  # the order `all` runs them (cheap first)
EXPERIMENTS = RUN_BY_ALL + ("dense-long",)  # dense-long is a sweep of its own, not part of `all` (GPU budget)


MODES = ("tiny", "cpu", "full")


def _section(preset: dict, mode: str, seen=()) -> dict:
    """A mode's section with the section it names in ``_base_`` merged underneath; a model set to null in
    ``models`` is dropped (e.g. a CPU section without the slow pure-torch Vim)."""
    if mode not in preset or not isinstance(preset[mode], dict):
        raise LabError(f"lab preset has no {mode!r} section")
    if mode in seen:
        raise LabError(f"lab preset sections inherit in a cycle: {' -> '.join(seen + (mode,))}")
    own = dict(preset[mode])
    base = own.pop("_base_", None)
    merged = C.merge(_section(preset, base, seen + (mode,)), own) if base else own
    if isinstance(merged.get("models"), dict):
        merged["models"] = {k: v for k, v in merged["models"].items() if v is not None}
    return merged


def load_lab_preset(experiment: str, tiny: bool, overrides: list[str] | None = None, mode: str | None = None) -> dict:
    """The experiment preset's ``tiny``/``cpu``/``full`` section (after its ``_base_`` section), then the
    ``key=value`` overrides, each parsed as the type of the value it replaces (``+key=value`` adds a key)."""
    if experiment not in EXPERIMENTS:
        raise LabError(f"unknown lab experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}, all")
    mode = mode or ("tiny" if tiny else "full")
    if mode not in MODES:
        raise LabError(f"unknown lab mode {mode!r}; known: {', '.join(MODES)}")
    preset = C.load_preset("lab", experiment.replace("-", "_"))
    if mode not in preset:
        raise LabError(f"lab preset {experiment!r} has no {mode!r} section")
    sel = copy.deepcopy(_section(preset, mode))
    sel["mode"] = mode
    for item in overrides or []:
        key = item.partition("=")[0].strip().lstrip("+")
        old = _lookup(sel, key)
        try:
            C.apply_sets(sel, [item])
        except ConfigError as e:
            raise LabError(str(e)) from None
        _check_shape(key, old, _lookup(sel, key))
    check_values(sel, f"lab {experiment} ({mode})")
    return sel


def with_verdict_rules(experiment: str, cfg: dict) -> dict:
    """A saved run's config with the preset's current ``verdict`` section (same mode) where the run predates
    it: re-rendering an old results.json applies the rules the preset states now."""
    if "verdict" in cfg:
        return cfg
    rules = load_lab_preset(experiment, False, mode=cfg.get("mode", "cpu"))["verdict"]
    when = "written after this run and applied to its saved results without retraining"
    return {**cfg, "verdict": {**rules, "when": when}}


# --- values: presets are plain mappings, so a --set value is checked here before any run starts ---------------


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ints(v, low: int) -> bool:
    return isinstance(v, list) and bool(v) and all(_int(x) and x >= low for x in v)


# key (at any depth of a section) -> (what it must be, test); a mapping under such a key (dense-long's steps per
# view) is checked value by value
VALUE_RULES = {
    **dict.fromkeys(
        ("steps", "steps_per_epoch", "batch_size", "batch", "repeats", "patch", "max_tokens", "mask_patch", "pool")
        + ("levels", "length", "tokens", "vocab", "val", "eval_size", "train_scenes", "val_scenes", "train_images"),
        ("a positive integer", lambda v: _int(v) and v > 0),
    ),
    **dict.fromkeys(
        ("train_subset", "test_subset", "pretrain_images", "test_images", "eval_images"),
        ("a positive integer or null (all)", lambda v: v is None or (_int(v) and v > 0)),
    ),
    "warmup": ("a non-negative integer", lambda v: _int(v) and v >= 0),
    **dict.fromkeys(("lr", "max_call_s", "budget_s"), ("a positive number", lambda v: _num(v) and v > 0)),
    **dict.fromkeys(("weight_decay", "clip_grad"), ("a non-negative number", lambda v: _num(v) and v >= 0)),
    "warmup_frac": ("a number in [0, 1)", lambda v: _num(v) and 0 <= v < 1),
    "mask_ratio": ("a number in (0, 1)", lambda v: _num(v) and 0 < v < 1),
    "label_fractions": (
        "a non-empty list of numbers in (0, 1]",
        lambda v: isinstance(v, list) and v and all(_num(x) and 0 < x <= 1 for x in v),
    ),
    "grid": (
        "a non-empty list of positive numbers (lrs)",
        lambda v: isinstance(v, list) and v and all(_num(x) and x > 0 for x in v),
    ),
    "seeds": ("a non-empty list of distinct non-negative integers", lambda v: _ints(v, 0) and len(set(v)) == len(v)),
    "dims": ("a non-empty list of positive integers", lambda v: _ints(v, 1)),
    "amp": (f"one of {', '.join(AMP_DTYPES)}", lambda v: v in AMP_DTYPES),
    "sides": ("an increasing list of positive integers (L = side^2)", lambda v: _ints(v, 1) and v == sorted(set(v))),
    "sizes": (
        "a non-empty list of multiples of 32, at least 64 (scene sides)",
        lambda v: _ints(v, 64) and not any(x % 32 for x in v),
    ),
}


def check_values(section: dict, where: str, path: str = "") -> None:
    """Every key of :data:`VALUE_RULES` in ``section`` holds what it must (one line naming the key otherwise)."""
    for key, value in section.items():
        here = f"{path}.{key}" if path else str(key)
        if key in VALUE_RULES:
            what, ok = VALUE_RULES[key]
            for sub, v in value.items() if isinstance(value, dict) else [("", value)]:
                if not ok(v):
                    raise LabError(f"{where}: {here}{'.' if sub else ''}{sub} must be {what}, got {v!r}")
        elif isinstance(value, dict):
            check_values(value, where, here)


_MISSING = object()


def _lookup(section: dict, key: str):
    for part in key.split("."):
        if not isinstance(section, dict) or part not in section:
            return _MISSING
        section = section[part]
    return section


def _check_shape(key: str, old, new) -> None:
    """A --set keeps the preset's shape: a list stays a list, a list of numbers stays one (the engine's rules
    check scalars by the type they replace)."""
    if not isinstance(old, list):
        return
    if not isinstance(new, list) or (old and all(_num(x) for x in old) and not all(_num(x) for x in new)):
        raise LabError(f"--set {key}: expected a list like {old}, got {new!r}")


def parse_seeds(text: str) -> list[int]:
    """'3' -> [0, 1, 2]; '0,4,7' -> [0, 4, 7]."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise LabError(f"--seeds takes a count (3) or a comma list (0,4,7), got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise LabError(f"--seeds: need distinct non-negative seeds, got {text!r}")
    return seeds


@dataclass
class LabContext:
    out: str
    device: torch.device
    tiny: bool = False
    mode: str | None = None
    seeds: list[int] | None = None
    epochs: float | None = None
    data_root: str | None = None
    overrides: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _fashion: dict = field(default_factory=dict)

    def config(self, experiment: str) -> dict:
        """The experiment's preset section with the overrides; ``EXP:key=value`` targets one experiment."""
        mine = []
        for o in self.overrides:
            head, sep, rest = o.partition(":")
            if sep and "=" not in head:
                if head not in EXPERIMENTS:
                    raise LabError(f"--set {o!r}: unknown experiment {head!r}; known: {', '.join(EXPERIMENTS)}")
                if head == experiment:
                    mine.append(rest)
            else:
                mine.append(o)
        cfg = load_lab_preset(experiment, self.tiny, mine, self.mode)
        if self.seeds is not None:
            cfg["seeds"] = list(self.seeds)
        if self.epochs is not None:
            if not 0 < self.epochs < math.inf:
                raise LabError(f"--epochs must be positive and finite, got {self.epochs}")
            cfg["epochs"] = self.epochs
        return cfg

    def folder(self, name: str) -> str:
        path = os.path.join(self.out, name)
        os.makedirs(path, exist_ok=True)
        return path

    def fashion(self, train_subset: int | None, test_subset: int | None):
        """Fashion-MNIST tensors on the device, loaded once per subset size."""
        from .tasks import FashionTensors

        key = (train_subset, test_subset)
        if key not in self._fashion:
            self._fashion[key] = FashionTensors(self.data_root, self.device, train_subset, test_subset)
        return self._fashion[key]
