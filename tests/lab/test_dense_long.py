"""lab dense-long --tiny: both views, both variants, MambaOut vs its SSM pair, on scenes written to disk and
read back with the COCO and ADE20K readers (Fashion-MNIST stand-in)."""

from __future__ import annotations

import json
import math
import os
import shutil

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


def _rows(acc, gaps, costs):
    """Per-seed rows of a cpu-like run: segmentation at S = 64, 128, both variants, 5 seeds. ``gaps``: SSM −
    MambaOut mIoU per (variant, S); ``costs``: MambaOut / SSM training-throughput ratio per S."""
    rows = []
    for (variant, size), gap in gaps.items():
        for seed in range(5):
            base = dict(size=size, variant=variant, view="segmentation", seed=seed, item_acc=acc)
            jitter = 0.05 * (seed - 2)
            rows.append(dict(base, label="mambaout", mIoU=40.0 + 3 * seed, train_ips=10.0))
            rows.append(dict(base, label="mamba", mIoU=40.0 + 3 * seed + gap + jitter, train_ips=10.0 / costs[size]))
    return rows


def _summary(rows):
    out = {}
    for r in rows:
        key = (r["size"], r["variant"], r["label"])
        out[key] = dict(
            size=r["size"], variant=r["variant"], view="segmentation", model=r["label"], item_acc=r["item_acc"]
        )
    return list(out.values())


def test_verdicts_paired_by_seed_and_need_trained_models():
    """Seed-to-seed spread of 12 mIoU points with a steady per-seed gap: paired, the verdicts are clear; no
    accuracy verdict from untrained pairs."""
    from mambaout.lab.core import load_lab_preset
    from mambaout.lab.dense_long import _claims
    from mambaout.lab.verdicts import decide

    cfg = load_lab_preset("dense-long", False, mode="cpu")
    gaps = {("local", 64): 0.0, ("local", 128): -0.1, ("context", 64): 1.0, ("context", 128): 3.0}
    rows = _rows(60.0, gaps, {64: 1.5, 128: 2.0})
    claims, records = _claims(rows, _summary(rows), cfg)
    got = [v["verdict"] for v in decide(claims, records)]
    assert got == ["supports", "supports", "supports"]  # equivalent / grows 1 -> 3 / cost 1.5 -> 2.0
    assert all(r["test"] == "paired t" and r["n_a"] == 5 for r in records.values())
    rows = _rows(5.0, gaps, {64: 1.5, 128: 1.5})
    claims, records = _claims(rows, _summary(rows), cfg)
    got = [v["verdict"] for v in decide(claims, records)]
    assert all(v.startswith("not seen (undertrained") for v in got[:2])
    assert got[2].startswith("contradicts (no effect")  # equal ratios: equivalent within ±0.1


def test_rerender_from_committed_results(tmp_path):
    from mambaout.lab.dense_long import rerender

    src = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "lab", "dense_long_cpu", "results.json")
    shutil.copy(src, tmp_path / "results.json")
    r = rerender(str(tmp_path))
    assert len(r["verdicts"]) == 3 and len(r["records"]) == 9  # 3 + 4 + 2 paired comparisons
    assert r["verdicts"][0]["verdict"].startswith("not seen (undertrained")
    res = json.load(open(tmp_path / "results.json"))
    assert res["rows"] == json.load(open(src))["rows"] and "Verdict rules" in (tmp_path / "report.md").read_text()
