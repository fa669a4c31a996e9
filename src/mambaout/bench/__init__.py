"""Benchmarks: the timing core (:mod:`.timing`) and ``benchmark(...)`` for zoo models (:mod:`.runner`).

    >>> import mambaout
    >>> table = mambaout.benchmark(["mambaout_femto", "mamba_femto"], device="cpu", against_timm=True)
    >>> print(table.to_markdown()); table.plot("throughput_vs_top1.png")

Layer: below lab and cli (which use it), above ops/models/registry/analysis. docs/benchmark.md.
"""

from .runner import benchmark  # noqa: F401
from .table import BenchTable  # noqa: F401
