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
import os
import time
from dataclasses import dataclass, field

import torch

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
    try:
        C.apply_sets(sel, overrides or [])
    except ConfigError as e:
        raise LabError(str(e)) from None
    return sel


def with_verdict_rules(experiment: str, cfg: dict) -> dict:
    """A saved run's config with the preset's current ``verdict`` section (same mode) where the run predates
    it: re-rendering an old results.json applies the rules the preset states now."""
    if "verdict" in cfg:
        return cfg
    rules = load_lab_preset(experiment, False, mode=cfg.get("mode", "cpu"))["verdict"]
    when = "written after this run and applied to its saved results without retraining"
    return {**cfg, "verdict": {**rules, "when": when}}


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
            if self.epochs <= 0:
                raise LabError(f"--epochs must be positive, got {self.epochs}")
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
