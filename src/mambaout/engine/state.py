"""Training state on disk: atomic checkpoints, their format, and the configuration a resumed run continues with.

    save_state("runs/x/last.pt", {"model": ..., "optimizer": ..., "step": 3, ...})
    state = load_state("runs/x/last.pt")          # torch.load(weights_only=True)
    cfg, state = load_for_resume("runs/x/last.pt", ClassificationConfig, sets=["data.root=/new/path"])

``save_state`` writes a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it
over the target and fsyncs the folder, so a process killed at any moment leaves either the old or the
new checkpoint, never a torn one. Everything stored must be tensors or plain Python types (dict, list,
tuple, str, int, float, bool, None) so that ``weights_only=True`` loading works.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from . import config as C

# Version of the training-state layout written by engine.trainer (format 1: the per-task loops before it).
FORMAT = 2

# What may change when a run is resumed: paths, workers, cadences, the length of the schedule. Anything else
# would not continue the same run.
RESUMABLE = (
    "sched.epochs",
    "sched.max_iters",
    "train.save_every_steps",
    "train.eval_every",
    "train.eval_every_iters",
    "train.log_every",
    "train.metrics_every",
    "train.tensorboard",
    "train.device",
    "*.root",
    "*.num_workers",
)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_state(path: str, state: dict) -> None:
    """Atomically write ``state`` to ``path`` (temp file + fsync + os.replace)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def copy_atomic(src: str, dst: str) -> None:
    """Copy a finished checkpoint (e.g. last -> best) with the same guarantees as ``save_state``."""
    folder = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(folder, f".{os.path.basename(dst)}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)
    _fsync_dir(folder)


def load_state(path: str, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_state` with ``weights_only=True``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r}: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path!r}: cannot be read ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path!r}: not a training state (expected a dict)")
    return state


def _flat(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def read_training_state(
    path: str,
    cls,
    convert: Callable[[dict, str], dict] | None = None,
    tasks: Iterable[str] | None = None,
    hint: str = "",
):
    """(config, state) of a training checkpoint of this project, in today's format: ``convert(state, path)``
    upgrades an older format (or raises CheckpointError saying why it cannot); ``tasks``: the task names the
    caller can use. ``hint`` ends the message for a file that is not a training checkpoint."""
    state = load_state(path)
    if "config" not in state or "model" not in state:
        raise CheckpointError(f"checkpoint {path!r}: not a training checkpoint of this project (no config/model){hint}")
    version = state.get("format", 1)
    if version != FORMAT:
        if convert is None or version > FORMAT:
            raise CheckpointError(
                f"checkpoint {path!r}: training-state format {version} cannot be resumed by this version "
                f"(format {FORMAT})"
            )
        state = convert(state, path)
    if tasks is not None and state.get("task") not in tasks:
        raise CheckpointError(f"checkpoint {path!r}: a {state.get('task')} checkpoint, not {' or '.join(tasks)}")
    try:
        return C.from_dict(cls, state["config"]), state
    except ConfigError as e:  # e.g. a classification checkpoint given to --resume of a dense command
        raise CheckpointError(
            f"checkpoint {path!r}: a {state.get('task')} checkpoint that does not fit ({e})"
        ) from None


def load_for_resume(
    path: str,
    cls,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] | None = None,
    convert: Callable[[dict, str], dict] | None = None,
):
    """(config, state) to continue the run saved in ``path``: the saved configuration with ``flags`` and ``sets``
    on top, which may only change the keys in :data:`RESUMABLE` (``convert``: see :func:`read_training_state`)."""
    cfg, state = read_training_state(path, cls, convert)
    before = _flat(C.to_dict(cfg))
    for key, value in (flags or {}).items():
        C.set_value(cfg, key, value)
    C.apply_sets(cfg, sets or [])
    after = _flat(C.to_dict(cfg))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key) and not any(fnmatch.fnmatch(key, p) for p in RESUMABLE):
            raise ConfigError(
                f"--resume continues the saved run: {key} cannot change ({before.get(key)!r} -> "
                f"{after.get(key)!r}); what may: {', '.join(RESUMABLE)}"
            )
    return cfg, state
