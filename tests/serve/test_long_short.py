"""The calculator against the paper's numbers and analysis.long_sequence's table."""

import pytest

from mambaout.analysis.long_sequence import long_seq_table
from mambaout.errors import InputError
from mambaout.serve.long_short import calculator, model_stages, zoo


def test_isotropic_rows_match_the_papers_table():
    for paper in long_seq_table():  # ImageNet / COCO / ADE20K x ViT-S / ViT-B, patch 16
        (row,) = calculator(paper.height, paper.width, paper.patch, paper.dim, stages=1)
        assert row["tokens"] == paper.tokens and row["tau"] == paper.tau
        assert row["ratio"] == pytest.approx(paper.ratio) and row["verdict"] == paper.verdict
        assert row["quadratic_share"] == pytest.approx(paper.quadratic_share)


def test_paper_verdicts():
    (imagenet,) = calculator(224, 224, 16, 384)
    assert imagenet["tokens"] == 196 and imagenet["ratio"] == pytest.approx(196 / 2304)
    assert imagenet["verdict"] == "short"
    (coco,) = calculator(800, 1280, 16, 768)
    assert coco["tokens"] == 4000 and coco["verdict"] == "near"  # r = 0.87: the paper counts it as long
    (coco_s,) = calculator(800, 1280, 16, 384)
    assert coco_s["verdict"] == "long"


def test_hierarchical_halves_the_grid_and_doubles_the_width():
    rows = calculator(224, 224, 4, 96, stages=4)
    assert [(r["height"], r["tokens"], r["dim"]) for r in rows] == [
        (56, 3136, 96),
        (28, 784, 192),
        (14, 196, 384),
        (7, 49, 768),
    ]
    assert rows[0]["verdict"] == "long" and rows[-1]["verdict"] == "short"
    # a 40x40 input at patch 8: stages of 5, 2 and 1 cells, then nothing left to cut
    assert len(calculator(40, 40, 8, 32, stages=4)) == 3


def test_model_stages_read_the_zoo_model():
    rows = model_stages("mambaout_femto", 224, 224)
    assert [(r["tokens"], r["dim"]) for r in rows] == [(3136, 48), (784, 96), (196, 192), (49, 288)]


@pytest.mark.parametrize(
    "args", [(224, 224, 0, 384), (224, 224, 16, 0), (0, 224, 16, 384), (10**6, 224, 16, 384), ("a", 1, 1, 1)]
)
def test_bad_numbers_are_one_line_errors(args):
    with pytest.raises(InputError):
        calculator(*args)


def test_zoo_rows_have_the_paper_columns():
    rows = zoo("mambaout_femto")
    assert len(rows) == 1 and rows[0]["paper_top1"] == pytest.approx(78.9)
    assert rows[0]["params_m"] == pytest.approx(7.3, abs=0.1)
