"""Every user-facing error in one place: the CLI prints their message on one line and exits with code 2.

Anything else that escapes is a bug and keeps its traceback. Each class names what the user got wrong.
"""

from __future__ import annotations

import os


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, at most ``limit`` characters ("" if none): what a
    one-line error quotes of a library's multi-line complaint."""
    return next((line.strip()[:limit] for line in str(e).splitlines() if line.strip()), "")


class MambaoutError(Exception):
    """Base class for errors caused by user input (bad names, files, sizes, arguments)."""


class UsageError(MambaoutError):
    """A bad command line (argparse's complaints, contradictory flags)."""


class ConfigError(MambaoutError):
    """A bad preset, override or configuration value."""


class UnknownModelError(MambaoutError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(MambaoutError):
    """A weights or training-state file that cannot be read or does not fit."""


class InputError(MambaoutError, ValueError):
    """A tensor or image of the wrong shape or size for a model."""


class DatasetError(MambaoutError):
    """A wrong dataset root/layout or a dataset file that cannot be used; ``path`` names the file."""

    def __init__(self, message: str, path: str | None = None):
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class NonFiniteLossError(MambaoutError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


class DependencyError(MambaoutError):
    """An optional package a command needs is not installed."""


class LabError(MambaoutError):
    """A bad lab experiment name, preset or override."""


class ExportError(MambaoutError):
    """A model that cannot be exported to a format, or whose export does not reproduce it (the reason in one line)."""
