"""MAC accounting of custom ops: :func:`counted_op` and the thread-local state it shares with the MAC counter.

The counter itself (:class:`mambaout.analysis.macs.MacCounter`, fvcore's per-op rules) registers here while it is
active; a custom op (the selective scan) charges its own MAC count through :func:`counted_op`, and the aten ops it
runs inside go uncounted.  It lives in ``ops`` so that the ops need not import the analysis package.
"""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def active_counters() -> list:
    """The MAC counters active in this thread (a counter appends itself on entry and removes itself on exit)."""
    if not hasattr(_state, "counters"):
        _state.counters, _state.suspended = [], 0
    return _state.counters


def counting_suspended() -> bool:
    """True inside :func:`counted_op`: the aten ops run there are part of the custom op's count."""
    return bool(getattr(_state, "suspended", 0))


@contextlib.contextmanager
def counted_op(macs: int, name: str = "custom"):
    """Run a custom op: add ``macs`` to every active counter and ignore the aten ops run inside."""
    counters = active_counters()
    for c in counters:
        c.add(name, macs)
    _state.suspended += 1
    try:
        yield
    finally:
        _state.suspended -= 1
