"""Lab ssl's parts: matched models, the encoder hand-over, digits, paired statistics and the verdict wording.
(The whole experiment runs in --tiny mode in test_lab.py's `lab all`.)"""

from __future__ import annotations

import torch

from mambaout.lab.ssl import digits, from_start, matched_builds, paired, pretrain_cell, verdict_word
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


def test_paired_statistics_and_wording():
    a, b = {0: 50.0, 1: 52.0, 2: 51.0}, {0: 55.0, 1: 56.5, 2: 55.5}
    r = paired(a, b)
    assert r["outcome"] == "b>a" and abs(r["diff"] - 4.666666) < 1e-4
    assert paired(b, a)["outcome"] == "a>b"
    assert paired(a, {0: 50.1, 1: 51.9, 2: 51.0})["outcome"] == "no clear difference"
    assert paired({0: 1.0}, {0: 2.0})["outcome"] == "inconclusive"
    assert verdict_word(["b>a"] * 4).startswith("supports")
    assert verdict_word(["b>a", "b>a", "no clear difference", "no clear difference"]).startswith("partly supports")
    assert verdict_word(["b>a", "no clear difference", "no clear difference"]).startswith("not seen at this scale")
    assert verdict_word(["b>a", "a>b"]).startswith("mixed")
    assert verdict_word(["a>b", "a>b"]).startswith("contradicts")
    assert verdict_word(["a>b", "no clear difference"]).startswith("partly contradicts")
    assert verdict_word(["a>b", "no clear difference", "no clear difference"]).startswith("not seen at this scale")
