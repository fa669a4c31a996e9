"""Progress: tqdm bars on rank 0 when stderr is a terminal; in cluster logs (stderr a file or a pipe) the
training loop prints a plain line instead, with the rate and an ETA, at each of its host syncs (every
``train.log_every`` optimizer steps, and at metrics rows and checkpoints). ``quiet`` silences both."""

from __future__ import annotations

import sys
import time

from . import distributed


def enabled(quiet: bool = False) -> bool:
    return not quiet and distributed.is_main() and sys.stderr.isatty()


def progress(iterable=None, total=None, desc: str = "", quiet: bool = False, **kwargs):
    """A tqdm bar, or a no-op stand-in with the same ``update``/``set_postfix``/``close`` methods."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled(quiet), dynamic_ncols=True, leave=False, **kwargs)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {text}" if days else text


class StepLines:
    """The training loop's progress in a log: one line each time ``set_postfix`` gets the synced values."""

    def __init__(self, total: int, initial: int, desc: str):
        self.total, self.n, self.desc = total, initial, desc
        self.n0, self.t0 = initial, time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        elapsed = time.monotonic() - self.t0
        done = self.n - self.n0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((self.total - self.n) / rate) if rate > 0 else "?"
        shown = "".join(f", {k} {v}" for k, v in values.items())
        print(
            f"{time.strftime('%H:%M:%S')} {self.desc}: step {self.n}/{self.total} "
            f"({100 * self.n / max(self.total, 1):.1f}%){shown}, {rate:.3g} steps/s, "
            f"elapsed {_clock(elapsed)}, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass


def step_progress(total: int, initial: int = 0, desc: str = "", quiet: bool = False):
    """The training loop's progress: a bar on a terminal, :class:`StepLines` in a log, nothing when quiet or
    not rank 0."""
    if not quiet and distributed.is_main() and not sys.stderr.isatty():
        return StepLines(total, initial, desc)
    return progress(total=total, initial=initial, desc=desc, quiet=quiet)
