"""Lab ssl's parts: matched models, the encoder hand-over, digits, and the verdicts re-rendered from the committed
CPU run. (The whole experiment runs in --tiny mode in test_lab.py's `lab all`.)"""

from __future__ import annotations

import json
import os
import shutil

import torch

from mambaout.lab.ssl import digits, from_start, matched_builds, pretrain_cell, rerender
from mambaout.lab.tasks import ImageTask

SPECS = {
    "mambaout": dict(kind="mambaout", depths=[1, 1, 1], dims=[8, 12, 16], stem_stride=2),
    "mamba": dict(kind="mamba", depths=[1, 1, 1], dims=[8, 12, 16], stem_stride=2, d_state=4),
}


def test_pretrained_encoder_reaches_the_classifier():
    builds = matched_builds(SPECS)
    assert abs(builds["mambaout"][1] - builds["mamba"][1]) <= 0.05 * builds["mamba"][1]
    g = torch.Generator().manual_seed(0)
    data = type("D", (), {})()
    data.train_x = torch.randint(0, 255, (64, 28, 28), dtype=torch.uint8, generator=g)
    data.train_y = torch.zeros(64, dtype=torch.long)
    data.device = torch.device("cpu")
    task = ImageTask(data, 16)
    p = dict(steps=2, mask_ratio=0.5, mask_patch=8, decoder_dim=8)
    r = pretrain_cell(builds["mamba"][0], "fcmae", task, 4, p, 0, torch.device("cpu"), dict(lr=1e-3))
    assert len(r["curve"]) == 2 and r["final_loss"] > 0
    model = from_start(builds["mamba"][0], r["state"])
    own = model.state_dict()
    enc = {k.removeprefix("encoder."): v for k, v in r["state"].items() if k.startswith("encoder.")}
    assert enc and all(torch.equal(own[k], v) for k, v in enc.items())
    assert not any(k.startswith("head.") for k in enc)  # the classifier's head starts fresh
    fresh = from_start(builds["mamba"][0], None).state_dict()
    assert not all(torch.equal(fresh[k], v) for k, v in enc.items())


def test_digits_upsampled_and_split():
    d = digits(torch.device("cpu"), 100, 50)
    assert d.train_x.shape == (100, 28, 28) and d.test_x.shape == (50, 28, 28)
    assert d.train_x.dtype == torch.uint8 and int(d.train_x.max()) > 200
    assert set(d.train_y.tolist()) <= set(range(10))


def test_rerender_applies_the_preset_rules(tmp_path):
    """The committed CPU run, judged again without training: 4 claims over 20 paired comparisons, Holm over
    all 40 hypotheses, the preset's rules printed, and the seeds' numbers unchanged."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "lab", "ssl_cpu", "results.json")
    shutil.copy(src, tmp_path / "results.json")
    saved = json.load(open(src))
    r = rerender(str(tmp_path))
    assert len(r["claims"]) == 4 and len(r["records"]) == 20
    assert {c["rule"] for c in r["claims"]} == {"gain"} and r["verdict_cfg"]["margins"]["top1"] == 0.5
    rec = r["records"]["ssl:pretrain:mambaout:fcmae:0.1"]
    scratch = {
        x["seed"]: x["top1"]
        for x in saved["runs"]
        if (x["model"], x["start"], x["fraction"]) == ("mambaout", "scratch", 0.1)
    }
    fcmae = {
        x["seed"]: x["top1"]
        for x in saved["runs"]
        if (x["model"], x["start"], x["fraction"]) == ("mambaout", "fcmae", 0.1)
    }
    assert rec["test"] == "paired t" and rec["n_a"] == 3 and rec["family"] == 40
    assert abs(rec["diff"] - sum(fcmae[k] - scratch[k] for k in scratch) / 3) < 1e-9
    report = (tmp_path / "report.md").read_text()
    assert "Verdict rules" in report and "Holm" in report and "TOST" in report
    again = json.load(open(tmp_path / "results.json"))
    assert again["runs"] == saved["runs"] and "comparisons" in again and again["config"]["verdict"]
