"""train.cuda_graph: the set-ups it refuses, with one-line errors (capture itself is tested in tests/gpu)."""

import pytest
import torch

from mambaout.engine import cuda_graph
from mambaout.errors import ConfigError
from mambaout.tasks.classification import resolve_config

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize("value", [None, False])
def test_off_needs_nothing(value):
    assert cuda_graph.check(value, torch.device("cpu"), distributed=True, compile_=True) is False


@pytest.mark.parametrize(
    "device, distributed, compile_, message",
    [
        (torch.device("cpu"), False, False, "needs a CUDA device"),
        (CUDA, True, False, "single process"),
        (CUDA, False, True, "exclusive"),
    ],
)
def test_refused_set_ups(device, distributed, compile_, message):
    with pytest.raises(ConfigError, match=message):
        cuda_graph.check(True, device, distributed, compile_)
    assert cuda_graph.check(True, CUDA, False, False) is True


@pytest.mark.parametrize(
    "device, distributed, compile_, expected",
    [
        (CUDA, False, False, True),
        (torch.device("cpu"), False, False, False),
        (CUDA, True, False, False),
        (CUDA, False, True, False),
    ],
)
def test_auto_uses_graphs_only_where_they_run(device, distributed, compile_, expected):
    assert cuda_graph.check("auto", device, distributed, compile_) is expected
    assert cuda_graph.check("auto", device, distributed, compile_, grad_checkpointing=True) is False


def test_bad_value_is_a_config_error():
    with pytest.raises(ConfigError, match="train.cuda_graph.*got 'sometimes'"):
        resolve_config("synthetic", ["train.cuda_graph=sometimes"])
    assert resolve_config("synthetic", ["train.cuda_graph=true"]).train.cuda_graph is True
    assert resolve_config("synthetic", ["train.cuda_graph=auto"]).train.cuda_graph == "auto"
