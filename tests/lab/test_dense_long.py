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
