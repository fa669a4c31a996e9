"""The shared COCO/ADE writer: RLE (scanning only the columns a mask touches) decodes back to the mask."""

from __future__ import annotations

import numpy as np

from mambaout.data.dense_layout import coco_annotation, rle_counts
from mambaout.data.masks import decode_segmentation


def test_rle_round_trip_and_box():
    rng = np.random.default_rng(0)
    masks = [np.zeros((5, 7), bool), np.ones((5, 7), bool)]
    masks += [rng.random(tuple(rng.integers(1, 12, 2))) < p for p in rng.random(60)]
    edge = np.zeros((6, 6), bool)
    edge[2:4, 5] = True  # last column only
    masks.append(edge)
    for m in masks:
        h, w = m.shape
        r = rle_counts(m)
        assert r["size"] == [h, w] and sum(r["counts"]) == h * w and min(r["counts"][1:], default=1) > 0
        assert np.array_equal(decode_segmentation(r, h, w).astype(bool), m)
    a = coco_annotation(1, 2, 3, edge)
    assert a["bbox"] == [5.0, 2.0, 1.0, 2.0] and a["area"] == 2.0
