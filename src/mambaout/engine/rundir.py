"""Run folders: each run writes its own, and no second run writes it unless the user asks.

    folder = claim("runs", "tiny-in1k", auto=False)          # a new run: runs/tiny-in1k, made now
    folder = claim("runs", "tiny-20250101-120000", auto=True)  # taken? then -1, -2, ... (os.mkdir decides)
    folder = claim("runs", "tiny-in1k", auto=False, if_exists="overwrite")  # the old one set aside
    folder = reopen("runs/tiny-in1k")                        # --resume: the run's own folder
    ...                                                      # build and check everything
    folder.commit()      # from here the run writes; before it, folder.rollback() leaves things as they were

The rules: a name the user chose is never reused silently (an existing run is refused, or replaced with
``if_exists="overwrite"``); a generated name gets the first free suffix, chosen by ``os.mkdir``, so two runs
started at the same moment get two folders; a new folder is removed again (and a replaced run put back) when
the command fails before :meth:`RunFolder.commit`; while a run is going, a lock (``.run.lock``, released by the
kernel even on SIGKILL) keeps a second process, a resume included, out of its folder; opening a folder removes
the temp files of writes that were killed.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil

from ..errors import ConfigError
from .recipe import check_output
from .state import clean_temps

LOCK = ".run.lock"
# files only a run writes: a folder holding one of them is a run folder (which --overwrite may replace)
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "summary.json", "metrics.jsonl", "train.log", "model.safetensors")

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the claim by os.mkdir still holds
    fcntl = None


class RunFolder:
    """``created``: made by this process (removed by a rollback); ``emptied``: an empty folder taken over (emptied
    again by a rollback); ``aside``: where a replaced run waits until :meth:`commit`."""

    def __init__(self, path: str, created: bool = False, aside: str | None = None, emptied: bool = False):
        self.path, self.created, self.aside, self.emptied, self.committed = path, created, aside, emptied, False
        self._lock = None

    def lock(self) -> None:
        """Hold ``.run.lock`` for the life of this process (refused if another process holds it)."""
        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    f"run folder {self.path} is in use by another process (pid {other}); wait for it to end"
                ) from None
            except OSError:  # a file system without locks (some NFS): the mkdir claim still holds
                pass
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd

    def commit(self) -> None:
        """The run's configuration passed every check: from here on it writes, and a replaced run is gone."""
        if self.aside:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None
        self.committed = True

    def rollback(self) -> None:
        """Undo the claim of a command that failed before :meth:`commit`."""
        if self.committed:
            return
        self.release()
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.emptied:
            for entry in os.scandir(self.path):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.remove(entry.path)
        if self.aside:
            os.rename(self.aside, self.path)
            self.aside = None

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None


def _refuse_if_busy(path: str, keep: bool = False) -> int | None:
    """Refuse a folder whose lock another process holds, without writing to it; ``keep``: return the held lock's
    descriptor (None where there is no lock file)."""
    try:
        fd = os.open(os.path.join(path, LOCK), os.O_RDONLY)
    except OSError:
        return None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"run folder {path} is in use by another process (pid {other}); wait for it to end") from None
    except OSError:  # no locks on this file system
        pass
    if keep:
        return fd
    os.close(fd)
    return None


def _stray(path: str) -> str:
    """Where an --overwrite killed before its new run started left the run it was replacing, if it did."""
    parent, base = os.path.split(path)
    left = sorted(glob.glob(os.path.join(glob.escape(parent or "."), f".{glob.escape(base)}.replaced-*")))
    return f" (an interrupted --overwrite left the run it replaced in {left[0]})" if left else ""


def _is_run_folder(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in RUN_FILES)


def _make_parent(output: str) -> None:
    check_output(output, f"train.output {output!r}")  # the CLI's rule: a file or an unwritable folder
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"train.output {output!r}: cannot create the folder ({e.strerror})") from None


def _mkdir(path: str) -> bool:
    """True if this process made ``path``; False if it exists already."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise ConfigError(f"run folder {path}: cannot create it ({e.strerror})") from None


def _take(path: str) -> RunFolder | None:
    """``path`` as a new run's folder: made now by ``os.mkdir``, or an existing empty one (e.g. made by a job
    scheduler for its logs); of several processes trying at once, the one that gets the lock has it."""
    created = _mkdir(path)
    if not created and not (os.path.isdir(path) and set(os.listdir(path)) <= {LOCK}):
        return None
    folder = RunFolder(path, created=created, emptied=not created)
    try:
        folder.lock()
    except (ConfigError, OSError):  # another process holds it (or removed it again)
        return None
    if set(os.listdir(path)) - {LOCK}:  # taken and written meanwhile: not ours
        folder.release()
        return None
    return folder


def claim(output: str, name: str, auto: bool, if_exists: str = "error") -> RunFolder:
    """The folder of a new run: ``<output>/<name>``, locked by this process.

    ``auto`` (a generated name) and ``if_exists="suffix"``: the first of name, name-1, name-2, ... that is free.
    Otherwise an existing run is refused in one line, or with ``if_exists="overwrite"`` moved aside (deleted at
    :meth:`RunFolder.commit`, put back at :meth:`RunFolder.rollback`)."""
    if not name or name in (".", "..") or os.path.isabs(name) or ".." in name.split(os.sep):
        raise ConfigError(f"train.name {name!r}: not a folder name inside train.output")
    path = os.path.join(output, name)
    _make_parent(os.path.dirname(path) or ".")
    if auto or if_exists == "suffix":
        for i in itertools.count():
            folder = _take(path if i == 0 else f"{path}-{i}")
            if folder is not None:
                return folder
    folder = _take(path)
    if folder is not None:
        return folder
    if not os.path.isdir(path):
        raise ConfigError(f"run folder {path} exists and is not a folder: choose another --name")
    if if_exists != "overwrite" or not _is_run_folder(path):
        if if_exists == "overwrite":
            raise ConfigError(
                f"--overwrite: {path} is not a run folder (no config.yaml, last.pt, ...): not replacing it{_stray(path)}"
            )
        _refuse_if_busy(path)
        last = os.path.join(path, "last.pt")
        resume = f"--resume {last} continues it, " if os.path.isfile(last) else ""
        if not _is_run_folder(path):
            raise ConfigError(
                f"run folder {path} is not empty and holds no run: choose another --name or --output{_stray(path)}"
            )
        raise ConfigError(
            f"run folder {path} already holds a run: {resume}--overwrite replaces it, or choose another --name"
        )
    held = _refuse_if_busy(path, keep=True)  # and held while it is moved, so that no resume starts there
    try:
        aside = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.replaced-{os.getpid()}")
        os.rename(path, aside)
    finally:
        if held is not None:
            os.close(held)
    folder = _take(path)
    if folder is None:  # another run took the name in between: put the old run back
        os.rename(aside, path)
        raise ConfigError(f"run folder {path} was just taken by another run: choose another --name")
    folder.aside = aside
    return folder


def reopen(path: str) -> RunFolder:
    """The folder of a resumed run: locked, and cleared of the temp files of killed writes."""
    folder = RunFolder(path)
    try:
        folder.lock()
    except PermissionError:
        raise ConfigError(
            f"run folder {path}: cannot write there (permission denied); a resumed run continues in its "
            "checkpoint's folder"
        ) from None
    clean_temps(path)
    return folder
