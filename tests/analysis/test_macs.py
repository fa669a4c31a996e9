"""MAC counting reproduces the paper's (fvcore) figures and counts custom ops once."""

import pytest
import torch
from torch import nn

from mambaout.analysis.complexity import build_meta, complexity, param_count
from mambaout.analysis.macs import MacCounter, count_macs, counted_op

# fvcore's totals for the official models at 224 (reference: downstream.md section 6).
FVCORE = {
    "mambaout_femto": 1.16,
    "mambaout_kobe": 1.52,
    "mambaout_tiny": 4.486,
    "mambaout_small": 8.96,
    "mambaout_base": 15.83,
}


@pytest.mark.parametrize("name", sorted(FVCORE))
def test_paper_macs_within_1_percent(name):
    macs = count_macs(build_meta(name)).total / 1e9
    assert abs(macs - FVCORE[name]) / FVCORE[name] < 0.01


def test_tiny_breakdown_matches_fvcore():
    by_op = {k: v / 1e9 for k, v in count_macs(build_meta("mambaout_tiny")).by_op.items()}
    assert by_op["addmm"] == pytest.approx(3.862, abs=2e-3)
    assert by_op["convolution"] == pytest.approx(0.608, abs=2e-3)
    assert by_op["native_layer_norm"] == pytest.approx(0.016, abs=1e-3)


def test_counting_rules_on_hand_computed_ops():
    with MacCounter() as c:
        nn.Linear(8, 4)(torch.randn(3, 8))  # 3*8*4 = 96
        nn.Conv2d(2, 6, 3, padding=1)(torch.randn(1, 2, 5, 5))  # 6*2*9 * 25 = 2700
        nn.LayerNorm(10)(torch.randn(4, 10))  # 5 * 40 = 200
        torch.relu(torch.randn(100))  # free
    assert c.total == 96 + 2700 + 200


def test_meta_and_cpu_counts_agree():
    meta = count_macs(build_meta("mambaout_test"), (64, 64)).total
    cpu = count_macs(build_meta("mambaout_test").to_empty(device="cpu"), (64, 64), device="cpu").total
    assert meta == cpu > 0


def test_counted_op_replaces_inner_ops():
    with MacCounter() as c:
        with counted_op(1234, name="scan"):
            nn.Linear(8, 8)(torch.randn(2, 8))
    assert dict(c.by_op) == {"scan": 1234}


def test_complexity_report_stages():
    r = complexity("mambaout_tiny", (224, 224))
    assert r["params_m"] == pytest.approx(26.545, abs=1e-3)
    assert [s["tokens"] for s in r["stages"]] == [3136, 784, 196, 49]
    assert [s["dim"] for s in r["stages"]] == [96, 192, 384, 576]
    assert r["stages"][0]["ratio"] == pytest.approx(3136 / 576)
    assert param_count(build_meta("mambaout_tiny")) == 26545000 or r["params_m"] > 26


def test_plain_models_report_the_tokens_they_mix():
    r = complexity("vit_small", (224, 224))
    assert [(s["tokens"], s["dim"]) for s in r["stages"]] == [(196, 384)]
    assert r["stages"][0]["tau"] == 2304
