"""GatedBlock's fused switch: on CPU the default stays the reference ops; set_fused reaches every block."""

import pytest
import torch

import mambaout.models  # noqa: F401  (registers the models)
from mambaout.models import blocks
from mambaout.registry import create_model


def test_cpu_default_is_the_reference_block(monkeypatch):
    monkeypatch.delenv("MAMBAOUT_FUSED", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)

    def fail(*a, **k):
        raise AssertionError("the fused op ran on CPU by default")

    monkeypatch.setattr(blocks, "gated_dwconv", fail)
    blk = blocks.GatedBlock(8)
    assert blk.fused is None and blk._fused_act() == "gelu"
    assert blk(torch.randn(1, 3, 3, 8)).shape == (1, 3, 3, 8)
    blk.fused = True  # asked for explicitly, the block uses the op (here: the stand-in that fails)
    with pytest.raises((AssertionError, RuntimeError)):
        blk(torch.randn(1, 3, 3, 8))


def test_fused_act_names_and_unsupported_mixers():
    assert blocks.GatedBlock(8, act_layer="silu")._fused_act() == "silu"
    assert blocks.GatedBlock(8, act_layer="relu")._fused_act() == "relu"
    assert blocks.GatedBlock(8, act_layer=torch.nn.Tanh)._fused_act() is None
    assert blocks.GatedBlock(8, mixer="identity")._fused_act() is None
    off = blocks.GatedBlock(8)
    off.fused = False
    assert off._fused_act() is None


def test_set_fused_reaches_every_block():
    model = blocks.set_fused(create_model("mambaout_test", num_classes=3), False)
    flags = {m.fused for m in model.modules() if isinstance(m, blocks.GatedBlock)}
    assert flags == {False}
