"""Where a command will write: checked before any work starts, so a bad path is one line, not a traceback after
minutes of work (every package may use these; the engine re-exports ``check_output``)."""

from __future__ import annotations

import os
import tempfile

from ..errors import ConfigError


def check_output(folder: str, what: str) -> None:
    """``folder`` can be created or written in, else one line starting with ``what`` (before any work starts)."""
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):  # the nearest existing parent decides
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ConfigError(f"{what}: {probe!r} is a file, not a folder")
    try:
        if not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
        tempfile.TemporaryFile(dir=probe).close()  # root passes os.access; a read-only file system does not
    except OSError as e:
        raise ConfigError(f"{what}: cannot write in {probe!r} ({(e.strerror or str(e)).lower()})") from None


def check_output_file(path: str, what: str, suffixes: tuple[str, ...] = ()) -> None:
    """``path`` can be written as a file: not a folder, its folder writable, and (given ``suffixes``) one of them."""
    if os.path.isdir(path):
        raise ConfigError(f"{what}: {path!r} is a folder; name the file to write")
    if suffixes and not path.lower().endswith(suffixes):
        listed = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise ConfigError(f"{what}: {path!r} must end in {listed}")
    check_output(os.path.dirname(os.path.abspath(path)), what)
