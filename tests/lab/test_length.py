"""`mambaout lab length`: the tiny sweep end to end, its stop rule, and the crossover arithmetic."""

from __future__ import annotations

import json
import math
import os

import pytest

from mambaout.cli import main
from mambaout.lab.length import build_block, crossover, quadratic_linear_point

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tiny_sweep_writes_table_plot_and_crossovers(tmp_path, capsys):
    out = str(tmp_path / "lab")
    assert main(["lab", "length", "--tiny", "--out", out, "--set", "dims=[16,32]", "--set", "sides=[4,6,8,10]"]) == 0
    folder = os.path.join(out, "length")
    assert sorted(os.listdir(folder)) == ["length_sweep.csv", "length_sweep.png", "report.md", "results.json"]
    res = json.load(open(os.path.join(folder, "results.json")))
    cfg = res["config"]
    assert len(res["rows"]) == len(cfg["dims"]) * 3 * 2 * len(cfg["sides"]) and not res["stops"]
    assert {r["tokens"] for r in res["rows"]} == {s * s for s in cfg["sides"]}
    assert all(r["ms"] > 0 and r["mem_mib"] >= 0 for r in res["rows"])
    assert [(c["dim"], c["tau"]) for c in res["crossovers"] if c["phase"] == "infer"] == [(16, 96), (32, 192)]
    report = open(os.path.join(folder, "report.md")).read()
    assert "attn quad = lin (fit)" in report and "conv+SSM ms" in report
    assert open(os.path.join(folder, "length_sweep.png"), "rb").read(4) == b"\x89PNG"


def test_stop_rule_names_where_each_series_stopped(tmp_path, capsys):
    out = str(tmp_path / "lab")
    assert main(["lab", "length", "--tiny", "--out", out, "--set", "max_call_s=1e-9", "--set", "dims=[16]"]) == 0
    res = json.load(open(os.path.join(out, "length", "results.json")))
    assert {r["tokens"] for r in res["rows"]} == {16}  # every series measured its first L only
    assert len(res["stops"]) == 6 and all("stopped before L=36" in s for s in res["stops"])


def test_blocks_take_the_same_token_map():
    import torch

    x = torch.randn(1, 3, 5, 16)
    for kind in ("dwconv", "conv_ssm", "attention"):
        assert build_block(kind, 16)(x).shape == x.shape


def test_crossover_interpolates_log_log():
    a = [(100, 1.0), (400, 2.0), (1600, 16.0)]  # attention
    b = [(100, 2.0), (400, 4.0), (1600, 8.0)]  # ratio a/b: 1/2, 1/2, 2 -> log ratio crosses 0 halfway
    assert crossover(a, b) == pytest.approx(math.exp((math.log(400) + math.log(1600)) / 2))  # = 800
    assert crossover(b, a) == "< 100" and crossover(a[:2], b[:2]) == "> 400"


def test_quadratic_equals_linear_point():
    series = [(L, 0.5 + 3e-3 * L + 1e-6 * L * L) for L in (49, 196, 784, 3136, 12544)]
    assert quadratic_linear_point(series) == pytest.approx(3000, rel=1e-6)  # a / b
    assert quadratic_linear_point(series[:3]) is None  # too few points for a 3-term fit
