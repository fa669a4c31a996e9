"""The framing experiment's ERF section (lab/erf_section.py) on tiny models: the untrained model is the trained
one's start, the lab's models expose explain's stages, the paragraph follows the numbers."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from mambaout.errors import LabError
from mambaout.lab.erf_section import check_stages, erf_section, paragraph, untrained_model
from mambaout.lab.models import build_image_model
from mambaout.lab.runner import train_cell

SPECS = dict(
    mambaout=dict(kind="mambaout", depths=[1, 1, 1, 1], dims=[8, 8, 16, 16], kernel_size=3),
    mamba=dict(kind="mamba", depths=[1, 1, 1, 1], dims=[8, 8, 16, 16], kernel_size=3, d_state=4),
    vit=dict(kind="vit", depth=4, dim=16, num_heads=2, patch_size=4),
)
NAMES = dict(mambaout="MambaOut", mamba="Mamba", vit="ViT")


def _cell(label):
    return dict(label=label, params=0, build=lambda s=SPECS[label]: build_image_model(s))


class _NoSteps:  # a task for train_cell with 0 steps: only evaluate is called
    metric = "top1"

    def batches(self, seed):
        return iter(())

    def evaluate(self, model):
        return dict(top1=0.0)


def test_untrained_model_is_the_trained_models_start():
    cell = _cell("mamba")
    start = train_cell(cell["build"], _NoSteps(), 0, 3, torch.device("cpu"), dict(lr=1e-3), keep_model=True)["model"]
    again = untrained_model(cell["build"], 3, torch.device("cpu"))
    other = untrained_model(cell["build"], 4, torch.device("cpu"))
    a, b, c = (m.state_dict() for m in (start, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_lab_models_expose_explains_stages():
    for label in SPECS:
        assert check_stages(_cell(label)["build"](), label) == 4
    with pytest.raises(LabError, match="no stages"):
        check_stages(nn.Linear(2, 2), "linear")


def test_erf_section_with_a_missing_trained_model(tmp_path):
    cells = [_cell(k) for k in SPECS]
    trained = {k: untrained_model(c["build"], 1, torch.device("cpu")) for k, c in zip(SPECS, cells) if k != "vit"}
    images = torch.randn(2, 1, 32, 32)
    png = str(tmp_path / "erf.png")
    rec, md = erf_section(cells, trained, images, 0, torch.device("cpu"), NAMES, png, stages=(-1,))
    assert os.path.getsize(png) > 0 and rec["missing_trained"] == ["ViT"]
    assert len(rec["rows"]) == 5 and {r["stage"] for r in rec["rows"]} == {3}
    for r in rec["rows"]:
        sides = [r["table"][k] for k in ("0.2", "0.3", "0.5", "0.99")]
        assert sides == sorted(sides) and sides[-1] <= 1
    assert "No trained model for ViT" in md and "| 3 (last) |" in md.replace("  ", " ")


def _row(label, weights, s50, s99=1.0, stage=3):
    return dict(label=label, weights=weights, stage=stage, num_stages=4, table={"0.5": s50, "0.99": s99})


def test_paragraph_follows_the_numbers():
    rows = [
        _row("mambaout", "untrained", 0.5),
        _row("mambaout", "trained", 0.6),
        _row("mamba", "untrained", 0.5),
        _row("mamba", "trained", 0.4, s99=0.9),
        _row("vit", "untrained", 0.2),
        _row("vit", "trained", 0.2),
        _row("vit", "trained", 0.9, stage=0),  # stage 0: not in the last-stage sentences
    ]
    text = paragraph(rows, NAMES)
    assert "After training, the 50% square at the last stage is largest for MambaOut (0.60" in text
    assert "smallest for ViT (0.20)" in text
    assert "At random init, the 50% square at the last stage is largest for MambaOut and Mamba (0.50" in text
    assert "MambaOut's 50% square (0.60) is larger than its SSM pair's (0.40)" in text
    assert "MambaOut grows (0.50 → 0.60); Mamba shrinks (0.50 → 0.40); ViT stays (0.20 → 0.20)" in text
    assert "covers the whole image for MambaOut and ViT." in text
