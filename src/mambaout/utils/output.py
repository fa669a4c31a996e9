"""``--json`` output: the JSON alone on stdout, everything else a command prints goes to stderr.

with json_stdout(args.json):     # cli.main, around the command
    ...                          # print(), progress, summaries: on stderr while --json is on
    print_json(result)           # the only text on the real stdout
"""

from __future__ import annotations

import contextlib
import json
import sys

_stdout = None  # the real stdout while a --json command runs


@contextlib.contextmanager
def json_stdout(enabled: bool):
    global _stdout
    if not enabled:
        yield
        return
    _stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _stdout = None


def print_json(obj, indent: int | None = 2) -> None:
    print(json.dumps(obj, indent=indent, default=str), file=_stdout or sys.stdout, flush=True)
