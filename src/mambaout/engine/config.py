"""Presets (plain YAML files) and command-line overrides.

    cfg = load_preset("classification", "fashion_mnist")     # a shipped preset, or a path to a .yaml
    cfg = apply_overrides(cfg, ["optim.lr=1e-3", "data.root=/data/in1k"])
    save_config(cfg, "runs/x/config.yaml")

A preset is a nested mapping. Keys are addressed with dots (``train.batch_size``). Override values are
parsed as YAML scalars/lists (``1e-3`` -> float, ``[1,2]`` -> list, ``null`` -> None, ``true`` -> bool).
An override must name an existing key unless it is prefixed with ``+`` (``+data.extra=1``), so typos
fail loudly. A preset may hold an ``on_cpu`` mapping of dotted keys applied when no CUDA device is used
(see :func:`apply_device_defaults`).
"""
from __future__ import annotations

import copy
import difflib
import os
from importlib import resources
from typing import Any, Iterable, List, Mapping

import yaml

from ..errors import ConfigError


def preset_dir(task: str) -> str:
    return str(resources.files("mambaout") / "presets" / task)


def list_presets(task: str) -> List[str]:
    folder = preset_dir(task)
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def load_yaml(path: str) -> dict:
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config {path!r} must hold a mapping at its top level")
    return cfg


def load_preset(task: str, name_or_path: str) -> dict:
    """A shipped preset by name (``presets/<task>/<name>.yaml``) or any YAML file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        if not os.path.isfile(name_or_path):
            raise ConfigError(f"preset file {name_or_path!r} does not exist")
        return load_yaml(name_or_path)
    path = os.path.join(preset_dir(task), name_or_path + ".yaml")
    if not os.path.isfile(path):
        known = list_presets(task)
        close = difflib.get_close_matches(name_or_path, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown {task} preset {name_or_path!r}; {hint}known: {', '.join(known) or 'none'} "
                          "(or pass a path to a .yaml file)")
    return load_yaml(path)


def parse_value(text: str) -> Any:
    """YAML scalar/list parsing, plus numbers YAML 1.1 leaves as strings (``1e-3``)."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def get(cfg: Mapping, key: str, default: Any = None) -> Any:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_key(cfg: dict, key: str, value: Any, create: bool = False) -> None:
    """Set a dotted key; unless ``create``, every part of it must already exist."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {'.'.join(parts[:i])!r} is not a section")
        if part not in node:
            if not create:
                close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
                hint = f" (did you mean {'.'.join(parts[:i] + close)!r}?)" if close else ""
                raise ConfigError(f"unknown config key {key!r}{hint}; prefix with '+' to add a new key")
            node[part] = value if last else {}
        elif last:
            if isinstance(node[part], dict) and not isinstance(value, dict):
                raise ConfigError(f"cannot set {key!r}: it is a section, not a value")
            node[part] = value
        node = node[part]


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of ``cfg`` with ``key=value`` strings applied (``+key=value`` adds a new key)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"bad --set {item!r}: expected key=value, e.g. train.epochs=10")
        key, text = item.split("=", 1)
        key = key.strip()
        create = key.startswith("+")
        key = key.lstrip("+")
        if not key or any(not p for p in key.split(".")):
            raise ConfigError(f"bad --set {item!r}: empty key")
        set_key(cfg, key, parse_value(text), create=create)
    return cfg


def apply_device_defaults(cfg: dict, device_type: str) -> dict:
    """Apply the preset's ``on_<device_type>`` section (e.g. ``on_cpu``: smaller subset, fewer epochs)."""
    cfg = copy.deepcopy(cfg)
    section = cfg.pop(f"on_{device_type}", None) or {}
    for other in [k for k in cfg if isinstance(k, str) and k.startswith("on_")]:
        cfg.pop(other)
    for key, value in section.items():
        set_key(cfg, key, value)
    return cfg


def save_config(cfg: Mapping, path: str) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        yaml.safe_dump(_plain(cfg), f, sort_keys=False, default_flow_style=None)
    os.replace(tmp, path)


def _plain(obj):
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
