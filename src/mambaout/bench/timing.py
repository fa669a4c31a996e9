"""The timing core every benchmark of the package uses: warm-up, timed repeats, medians, peak memory.

    step = make_step(model, x, mode="train")          # forward (+ loss, backward, optimizer step)
    t = time_calls(step, device, warmup=3, repeats=10)  # t.median_ms, t.p95_ms, t.times_ms
    extra = peak_memory(step, device)                 # bytes allocated at the peak of one call

GPU: each repeat is timed with a pair of ``torch.cuda.Event`` (GPU time between them, synchronised after
the repeat). CPU: ``time.perf_counter`` around the call. Warm-up calls (autotuning, compilation, the
allocator's first allocations) are run and not timed. Peak memory is what one call allocates at its peak
above what was allocated before it (weights, inputs and optimizer state that exist before the call are not
counted; activations, workspaces and gradients are): ``torch.cuda.max_memory_allocated`` on GPU, the
profiler's allocation trace on CPU (PyTorch has no CPU peak counter).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Timing:
    """Per-repeat times (ms, one call each) and their median and percentiles."""

    times_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)  # wall time of each warm-up call (compile time)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def percentile(self, q: float) -> float:
        """Linear interpolation between order statistics (numpy's default), q in [0, 100]."""
        xs = sorted(self.times_ms)
        pos = (len(xs) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    @property
    def p95_ms(self) -> float:
        return self.percentile(95)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device, warmup: int = 3, repeats: int = 10) -> Timing:
    """``warmup`` untimed calls (each one's wall time kept), then ``repeats`` timed calls."""
    device = torch.device(device)
    if warmup < 0 or repeats < 1:
        raise UsageError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    out = Timing()
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.warmup_ms.append((time.perf_counter() - t0) * 1e3)
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.times_ms.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            out.times_ms.append((time.perf_counter() - t0) * 1e3)
    return out


def peak_memory(fn: Callable[[], object], device) -> int:
    """Bytes allocated at the peak of one call of ``fn`` above what was allocated before it."""
    device = torch.device(device)
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    return _cpu_peak(fn)


@contextlib.contextmanager
def _native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak(fn) -> int:
    """The CPU allocator reports every allocation to the profiler with a running total; its maximum is the
    peak (relative to the total when profiling started)."""
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced():  # libkineto prints its start/stop and a GPU probe's failure on fd 2
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f).get("traceEvents", [])
    finally:
        os.remove(path)
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and "args" in e]
    return max([0] + totals)


def autocast(device, amp: str = "none", cache: bool = True):
    """autocast for ``amp`` in bf16 | fp16 | none (none: a no-op context). ``cache=False`` for CUDA-graph
    capture (the cast-weight cache would hold tensors from outside the graph)."""
    if amp not in AMP_DTYPES:
        raise UsageError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=cache)


def default_loss(out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy for logits with integer targets, else the mean square (a block's output)."""
    if target is not None:
        return F.cross_entropy(out.float(), target)
    return out.float().pow(2).mean()


def make_step(
    model: nn.Module,
    x: torch.Tensor,
    mode: str = "infer",
    target: torch.Tensor | None = None,
    amp: str = "none",
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable = default_loss,
    static_grads: bool = False,
) -> Callable[[], torch.Tensor]:
    """One inference call (eval, no_grad) or one full training step (train mode: forward, loss, backward,
    optimizer step; AdamW unless ``optimizer`` is given). ``static_grads`` (for CUDA-graph capture) keeps
    gradient buffers between steps (zeroed, not freed), makes AdamW capturable and turns autocast's cache
    off. fp16 training uses a GradScaler."""
    if mode not in ("infer", "train"):
        raise UsageError(f"--mode must be infer or train, got {mode!r}")
    device = x.device
    ctx = lambda: autocast(device, amp, cache=not static_grads)  # noqa: E731  (a fresh context per call)
    if mode == "infer":
        model.eval()

        def infer():
            with torch.no_grad(), ctx():  # not inference_mode: models cache index tensors reused in training
                return model(x)

        return infer
    model.train()
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=static_grads and device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def train():
        with ctx():
            loss = loss_fn(model(x), target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=not static_grads)
        return loss.detach()

    train.optimizer = opt
    return train
