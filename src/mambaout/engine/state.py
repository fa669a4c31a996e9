"""Training state on disk: atomic checkpoints, their format, and the configuration a resumed run continues with.

    save_state("runs/x/last.pt", {"model": ..., "optimizer": ..., "step": 3, ...})
    state = load_state("runs/x/last.pt")          # torch.load(weights_only=True)
    cfg, state = load_for_resume("runs/x/last.pt", ClassificationConfig, sets=["data.root=/new/path"])

``save_state`` writes a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it
over the target and fsyncs the folder, so a process killed at any moment leaves either the old or the
new checkpoint, never a torn one; a write that fails (a full disk) removes its temp file and says so in one
line, and :func:`clean_temps` removes what a killed write left when the run folder is next opened. Everything
stored must be tensors or plain Python types (dict, list, tuple, str, int, float, bool, None) so that
``weights_only=True`` loading works.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..weights import load_torch
from . import config as C

# Version of the training-state layout written by engine.trainer (format 1: the per-task loops before it).
FORMAT = 2

# What a resume may change (fnmatch patterns of config keys), and why each is safe: the saved state keeps its
# meaning and the new value is applied from the current step. Everything else (the model, data, augmentation,
# batch shape, optimizer type and its other settings, seed, EMA, what "best" means) would not continue the same
# run and is refused with one line naming the key and both values.
RESUMABLE = (
    "sched.*",  # the length and shape of the lr schedule: rebuilt, taking over at the current step
    "optim.lr",  # the peak lr (or base_lr x batch / 1024): the schedule is rebuilt on it
    "optim.base_lr",
    "optim.clip_grad",  # read at every step (a remedy after a non-finite loss)
    "train.amp",  # fp32 master weights either way; a new fp16 scaler starts fresh
    "train.device",  # how and where it runs
    "train.compile",
    "train.cuda_graph",
    "train.channels_last",
    "train.deterministic",
    "data.gpu_prefetch",
    "train.save_every_steps",  # cadences of checks, rows, checkpoints and evaluations
    "train.log_every",
    "train.metrics_every",
    "train.eval_every",
    "train.eval_every_iters",
    "train.eval_batch_size",
    "train.tensorboard",
    "*.root",  # data moved elsewhere (the same files)
    "*.num_workers",
)


def resumable(key: str) -> bool:
    """May a resumed run change this config key? (:data:`RESUMABLE`)"""
    return any(fnmatch.fnmatch(key, p) for p in RESUMABLE)


def temp_path(path: str) -> str:
    """Where a file is written before ``os.replace`` puts it at ``path``: hidden, in the same folder, named by
    process, so that :func:`clean_temps` recognises what a killed write left behind."""
    path = os.fspath(path)
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp{os.getpid()}.{os.path.basename(path)}")


# today's temp names, and those of earlier versions (.last.pt.tmp123, model.safetensors.tmp123, metrics.csv.tmp)
_TEMP = re.compile(r"^\.tmp\d+\.|\.tmp\d*$")


def clean_temps(folder: str) -> list[str]:
    """Remove the temp files that killed writes left in a run folder; returns their names."""
    removed = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if _TEMP.search(name) and os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
            removed.append(name)
    return removed


def disk_full(e: BaseException) -> bool:
    """Was ``e`` (or what it wraps: torch re-raises a failed write as a RuntimeError) a full disk or quota?"""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    return False


def write_failed(path: str, e: BaseException, kept: str) -> CheckpointError:
    """The one line for a write that failed (no partial file is left; ``kept`` says what is still there)."""
    why = "no space left on device" if disk_full(e) else (getattr(e, "strerror", None) or str(e).split("\n")[0])
    return CheckpointError(f"cannot write {path}: {why}; nothing partial was left, {kept}")


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
    """Atomically write ``state`` to ``path`` (temp file + fsync + os.replace). A failed write (a full disk)
    removes its temp file and raises a one-line CheckpointError; the previous file stays as it was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        if not (isinstance(e, OSError) or disk_full(e)):
            raise
        kept = f"the previous {os.path.basename(path)} is kept" if os.path.exists(path) else "no checkpoint yet"
        raise write_failed(path, e, kept) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def copy_atomic(src: str, dst: str) -> None:
    """Copy a finished checkpoint (e.g. last -> best) with the same guarantees as ``save_state``."""
    folder = os.path.dirname(os.path.abspath(dst))
    tmp = temp_path(dst)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except OSError as e:
        raise write_failed(dst, e, f"{os.path.basename(src)} is complete") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def write_text_atomic(path: str, text: str) -> None:
    """A small text file (summary, config) replaced whole or not at all."""
    tmp = temp_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        kept = "the previous version is kept" if os.path.exists(path) else "it does not exist"
        raise write_failed(path, e, kept) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_state(path: str, map_location="cpu", mmap: bool = False) -> dict:
    """Load a checkpoint written by :func:`save_state` with ``weights_only=True``; a bad file is one line in our
    words (:func:`mambaout.weights.load_torch`)."""
    path = os.fspath(path)
    state = load_torch(path, map_location=map_location, mmap=mmap)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path!r}: not a training state (expected a dict)")
    return state


def checkpoint_step(path: str) -> int | None:
    """The optimizer step a training checkpoint was saved at (memory-mapped: cheap for big files); None if it
    cannot be read."""
    try:
        step = load_state(path, mmap=True).get("step")
    except CheckpointError:
        return None
    return int(step) if isinstance(step, int) else None


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
    tasks: Iterable[str] | None = None,
):
    """(config, state) to continue the run saved in ``path``: the saved configuration with ``flags`` and ``sets``
    on top, which may only change the keys in :data:`RESUMABLE` (``convert``, ``tasks``: see
    :func:`read_training_state`)."""
    cfg, state = read_training_state(path, cls, convert, tasks)
    before = _flat(C.to_dict(cfg))
    for key, value in (flags or {}).items():
        C.set_value(cfg, key, value)
    C.apply_sets(cfg, sets or [])
    after = _flat(C.to_dict(cfg))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key) and not resumable(key):
            raise ConfigError(
                f"--resume continues the saved run: {key} cannot change ({before.get(key)!r} -> {after.get(key)!r}); "
                "a resume may change the schedule and lr, clipping, precision, devices, cadences, data roots and "
                "workers (docs/training.md, 'Exact resume')"
            )
    return cfg, state
