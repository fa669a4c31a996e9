"""The timing core: warm-up calls are run and not timed, medians/percentiles, train steps the optimizer,
peak memory sees a step's allocations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mambaout.bench.timing import Timing, make_step, peak_memory, time_calls
from mambaout.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_warmup_calls_are_run_but_not_timed():
    calls = []
    t = time_calls(lambda: calls.append(1), "cpu", warmup=3, repeats=5)
    assert len(calls) == 8 and len(t.warmup_ms) == 3 and len(t.times_ms) == 5


def test_median_and_percentiles():
    t = Timing(times_ms=[5.0, 1.0, 3.0, 2.0, 4.0])
    assert t.median_ms == 3.0 and t.percentile(0) == 1.0 and t.percentile(100) == 5.0
    assert t.p95_ms == pytest.approx(4.8)  # numpy's linear rule: 4 + 0.8 * (5 - 4)
    assert Timing(times_ms=[1.0, 2.0, 10.0, 11.0]).median_ms == 6.0


def test_bad_counts_are_usage_errors():
    with pytest.raises(UsageError):
        time_calls(lambda: None, "cpu", warmup=-1, repeats=1)
    with pytest.raises(UsageError):
        time_calls(lambda: None, "cpu", warmup=0, repeats=0)


def test_train_mode_steps_the_optimizer():
    model = nn.Linear(8, 4)
    before = model.weight.detach().clone()
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    step = make_step(model, x, "train", target=y)
    time_calls(step, "cpu", warmup=1, repeats=2)
    assert model.training and not torch.equal(before, model.weight)
    assert step.optimizer.state[model.weight]["step"].item() == 3  # every call is one optimizer step
    assert model.weight.grad is None  # zeroed (set to None) after each step


def test_infer_mode_changes_nothing_and_keeps_no_graph():
    model = nn.Linear(8, 4)
    before = model.weight.detach().clone()
    out = make_step(model, torch.randn(2, 8), "infer")()
    assert not model.training and not out.requires_grad and torch.equal(before, model.weight)


def test_peak_memory_counts_what_a_call_allocates():
    x = torch.randn(256, 256)  # 256 KiB live before: not counted

    def three_buffers():
        a = x * 2
        b = a + 1
        c = b * a
        return c.sum()

    peak = peak_memory(three_buffers, "cpu")
    assert 3 * 256 * 1024 <= peak < 5 * 256 * 1024  # three 256 KiB results live at once, not x


def test_interleaved_alternates_the_order_every_round():
    from mambaout.bench.runner import interleaved

    calls = []
    timings = interleaved([lambda: calls.append("a"), lambda: calls.append("b")], torch.device("cpu"), 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [len(t.times_ms) for t in timings] == [3, 3]
