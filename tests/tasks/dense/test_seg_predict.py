"""tasks/dense/predict.py on a segmentor: the image is resized as the validation set is (test_scale, or
data.scale when test_scale is null), and the class map comes back at the image's size."""

import numpy as np
import pytest
import torch
from PIL import Image

from mambaout.tasks.dense import task as dense_task
from mambaout.tasks.dense.config import DenseConfig, SegmentationTask, Tasks
from mambaout.tasks.dense.predict import predict_image


class Recorder(torch.nn.Module):
    size_divisor = 1  # no padding: the sizes seen are the resized image's

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)


@pytest.mark.parametrize("test_scale, seen", [(None, (43, 64)), ((96, 96), (64, 96))])
def test_predict_resizes_like_the_validation_set(tmp_path, monkeypatch, test_scale, seen):
    cfg = DenseConfig(tasks=Tasks(segmentation=SegmentationTask(num_classes=4)))
    sec = cfg.tasks.segmentation
    sec.data.scale, sec.data.test_scale, sec.eval.mode = (64, 64), test_scale, "whole"
    net = Recorder()
    model = type("Model", (), {"heads": {"segmentation": net}})
    monkeypatch.setattr(dense_task, "load_trained", lambda path, device: (model, cfg))
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(img)
    r = predict_image("ckpt.pt", str(img), str(tmp_path / "out.png"))
    assert net.sizes == [seen]  # keep-ratio fit of 32x48 into the scale
    assert Image.open(r["output"]).size == (48, 32) and sum(r["classes_present"].values()) == 32 * 48
