"""lab dense-long --tiny: both views, both variants, MambaOut vs its SSM pair, on scenes written to disk and
read back with the COCO and ADE20K readers (Fashion-MNIST stand-in)."""

from __future__ import annotations

import json
import math
import os

import pytest

from mambaout.cli import main


@pytest.mark.slow
def test_dense_long_tiny(tmp_path, fashion_standin, capsys):
    fm = fashion_standin(str(tmp_path / "fm"))
    out = str(tmp_path / "lab")
    assert main(["lab", "dense-long", "--tiny", "--out", out, "--device", "cpu", "--data-root", fm]) == 0
    folder = os.path.join(out, "dense-long")
    res = json.load(open(os.path.join(folder, "results.json")))
    rows = [r for r in res["rows"] if "error" not in r]
    assert len(rows) == len(res["rows"]) == 2 * 2 * 2  # views x variants x backbones, one seed
    for r in rows:
        assert r["train_ips"] > 0 and r["infer_ips"] > 0
        if r["view"] == "segmentation":
            assert 0 <= r["mIoU"] <= 100 and 0 <= r["item_acc"] <= 100
        else:
            assert 0 <= r["box_AP"] <= 100 and not math.isnan(r["mask_AP"])
    gaps = [e for e in res["summary"] if e["model"] == "mamba"]
    assert gaps and all("gap" in e and e["train_cost_ratio"] > 0 for e in gaps)
    params = {(e["view"], e["model"]): e["params"] for e in res["summary"]}
    assert abs(params["segmentation", "mambaout"] / params["segmentation", "mamba"] - 1) < 0.05  # matched size
    assert {s["stage"] for s in res["stages"]} == {1, 2, 3, 4} and all(s["ratio"] > 0 for s in res["stages"])
    assert res["data"]["S64-context"]["bound"]["max_accuracy"] == pytest.approx(0.1)
    assert len(res["verdicts"]) == 3
    for f in ("report.md", "gap_vs_ratio.png", "cost_vs_L.png", "runs.csv", "data/S64-local/CARD.md"):
        assert os.path.isfile(os.path.join(folder, f)), f


def test_verdicts_need_trained_models():
    """No accuracy verdict from untrained pairs; a clear SSM win on learned context scenes is 'supported'."""
    from mambaout.lab.dense_long import _verdicts

    def pair(size, variant, acc, gap, outcome, ratio):
        base = dict(size=size, variant=variant, view="segmentation", L16=size, r16=size / 100)
        return [
            dict(base, model="mambaout", item_acc=acc, box_AP=0.0),
            dict(base, model="mamba", item_acc=acc + gap, gap=gap, gap_se=0.1, outcome=outcome, train_cost_ratio=ratio),
        ]

    def summary(acc):
        return [
            *pair(64, "local", acc, 0.0, "no clear difference", 1.5),
            *pair(64, "context", acc, 1.0, "b>a", 1.5),
            *pair(128, "local", acc, -0.1, "no clear difference", 2.0),
            *pair(128, "context", acc, 3.0, "b>a", 2.0),
        ]

    trained = {v["claim"].split(":")[1].split()[1]: v["verdict"] for v in _verdicts(summary(60.0), [64, 128])}
    assert trained["local"].startswith("supported") and trained["context"].startswith("supported")
    untrained = _verdicts(summary(5.0), [64, 128])
    assert all(v["verdict"].startswith("not seen (undertrained") for v in untrained[:2])
    assert untrained[2]["verdict"].startswith("supported")  # cost 1.5 -> 2.0: a rise past 10%
