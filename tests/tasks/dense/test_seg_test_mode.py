"""Issue #18 item 1: single-scale segmentation test is whole-image inference (mmseg's Swin UperNet test_cfg),
slide stays an option; whole mode pads to the size divisor and crops the padding off."""

import pytest
import torch

from mambaout.models.upernet import _forward_padded, build_upernet, predict_logits
from mambaout.tasks.dense.task import resolve_config


@pytest.mark.parametrize("preset", ["ade20k_upernet_160k", "cityscapes_upernet_80k", "voc_upernet_40k"])
def test_real_data_presets_test_whole_image(preset):
    ev = resolve_config("segmentation", preset).tasks.segmentation.eval
    assert ev.mode == "whole"
    slide = resolve_config("segmentation", preset, ["tasks.segmentation.eval.mode=slide"]).tasks.segmentation.eval
    assert slide.mode == "slide" and slide.stride[0] == 341


class Shift(torch.nn.Module):
    """Logits at pixel (i, j) = the image at (i, j + 1): the right-most column sees the zero padding."""

    size_divisor = 32

    def forward(self, x):
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
        return torch.cat([x[..., 1:], x[..., :1] * 0], -1)


def test_whole_mode_returns_the_image_size_with_padding_cropped():
    x = torch.randn(1, 3, 70, 90)
    logit = _forward_padded(Shift(), x)
    assert logit.shape == (1, 3, 70, 90)
    assert torch.equal(logit[..., :-1], x[..., 1:]) and torch.equal(logit[..., -1], torch.zeros(1, 3, 70))
    model = build_upernet("mambaout_test", num_classes=4, channels=16, aux_channels=8).eval()
    p = predict_logits(model, x, "whole")
    assert p.shape == (1, 4, 70, 90) and torch.allclose(p.sum(1), torch.ones(1, 70, 90), atol=1e-4)
