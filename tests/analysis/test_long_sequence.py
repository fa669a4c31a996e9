import pytest

from mambaout.analysis.long_sequence import long_seq_table, threshold, tokens_for, transformer_block_flops, verdict
from mambaout.errors import InputError


def test_paper_numbers():
    assert threshold(384) == 2304 and threshold(768) == 4608
    assert tokens_for(224, 224, 16) == 196
    assert tokens_for(800, 1280, 16) == 4000
    assert tokens_for(512, 2048, 16) == 4096


def test_eq6_terms_and_ratio():
    f = transformer_block_flops(196, 384)
    assert f["linear"] == 24 * 384**2 * 196 and f["quadratic"] == 4 * 384 * 196**2
    assert f["ratio"] == pytest.approx(f["quadratic"] / f["linear"])
    assert transformer_block_flops(2304, 384)["ratio"] == 1.0


def test_table_verdicts():
    rows = {(r.task.split()[0], r.model): r for r in long_seq_table()}
    assert rows[("ImageNet", "ViT-S")].verdict == "short" and rows[("ImageNet", "ViT-B")].verdict == "short"
    assert rows[("COCO", "ViT-S")].verdict == "long" and rows[("ADE20K", "ViT-S")].verdict == "long"
    assert rows[("ADE20K", "ViT-B")].ratio == pytest.approx(4096 / 4608)
    assert verdict(0.5) == "short" and verdict(0.9) == "near" and verdict(1.01) == "long"


def test_bad_values():
    with pytest.raises(InputError):
        tokens_for(224, 224, 0)
