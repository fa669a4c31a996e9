"""Progress bars: tqdm on rank 0, only when stderr is a terminal and not ``quiet``."""

from __future__ import annotations

import sys

from . import distributed


def enabled(quiet: bool = False) -> bool:
    return not quiet and distributed.is_main() and sys.stderr.isatty()


def progress(iterable=None, total=None, desc: str = "", quiet: bool = False, **kwargs):
    """A tqdm bar, or a no-op stand-in with the same ``update``/``set_postfix``/``close`` methods."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled(quiet), dynamic_ncols=True, leave=False, **kwargs)
