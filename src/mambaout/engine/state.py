"""Atomic training-state checkpoints.

    save_state("runs/x/last.pt", {"model": ..., "optimizer": ..., "epoch": 3, ...})
    state = load_state("runs/x/last.pt")          # torch.load(weights_only=True)

``save_state`` writes a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it
over the target and fsyncs the folder, so a process killed at any moment leaves either the old or the
new checkpoint, never a torn one. Everything stored must be tensors or plain Python types (dict, list,
tuple, str, int, float, bool, None) so that ``weights_only=True`` loading works.
"""
from __future__ import annotations

import os
import pickle
import shutil
import zipfile

import torch

from ..errors import CheckpointError


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
