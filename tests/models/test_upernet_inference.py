"""UperNet inference (models/upernet.py): mmseg's aug test — sizes, padding, flip, fp32 averaging, AMP."""

import pytest
import torch

from mambaout.models.upernet import aug_size, predict_logits, slide_inference


class Pointwise(torch.nn.Module):
    """A 1x1 conv 'segmentor' (logits at the input size): translation and flip equivariant, so every
    augmentation that is undone correctly gives back the plain prediction. Records its input sizes."""

    def __init__(self, size_divisor: int = 32, classes: int = 3):
        super().__init__()
        self.size_divisor = size_divisor
        self.conv = torch.nn.Conv2d(3, classes, 1)
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)


class Overflows(Pointwise):
    """Finite logits in fp32; inf (a half-precision overflow) whenever autocast is on."""

    def forward(self, x):
        y = super().forward(x)
        return y * float("inf") if torch.is_autocast_enabled(x.device.type) else y


def test_aug_sizes_round_like_mmcv():
    assert aug_size(70, 90, 0.75) == (53, 68) and aug_size(70, 90, 1.25) == (88, 113)
    m = Pointwise(size_divisor=1)
    predict_logits(m, torch.randn(1, 3, 70, 90), "whole", scales=(0.75, 1.0, 1.25))
    assert m.sizes == [(53, 68), (70, 90), (88, 113)]  # floor (scale_factor) gave 52x67 and 87x112


def test_mean_of_fp32_probabilities_at_out_size():
    m = Pointwise()
    x = torch.randn(1, 3, 70, 90)
    p = predict_logits(m, x, "slide", (64, 64), (48, 48), scales=(0.5, 1.0, 1.5), flip=True, out_size=(35, 45))
    assert p.dtype == torch.float32 and p.shape == (1, 3, 35, 45)
    assert torch.allclose(p.sum(1), torch.ones(1, 35, 45), atol=1e-5)  # a mean of softmaxes, not a sum


def test_padding_cropped_and_flip_undone():
    m = Pointwise(size_divisor=32)
    x = torch.randn(1, 3, 70, 90)  # not a multiple of 32: padded to 96x96 inside
    want = m(x).softmax(1)
    for mode in ("whole", "slide"):
        for flip in (False, True):
            p = predict_logits(m, x, mode, (64, 64), (48, 48), flip=flip)
            assert torch.allclose(p, want, atol=1e-5), (mode, flip)
    assert torch.allclose(slide_inference(m, x, (64, 64), (48, 48)), m(x), atol=1e-5)


def test_postprocessing_is_fp32_inside_an_outer_autocast():
    m = Pointwise()
    x = torch.randn(1, 3, 40, 56)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = predict_logits(m, x, "whole", scales=(0.75, 1.0), flip=True, amp_dtype=torch.bfloat16)
    assert p.dtype == torch.float32 and torch.allclose(p.sum(1), torch.ones(1, 40, 56), atol=1e-5)
    want = predict_logits(m, x, "whole", scales=(0.75, 1.0), flip=True)
    assert torch.allclose(p, want, atol=0.02)  # bf16 forward, fp32 everything after


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_half_precision_overflow_is_recomputed_in_fp32(mode, caplog):
    m = Overflows()
    x = torch.randn(1, 3, 64, 80)
    args = (m, x, mode, (64, 64), (48, 48), (1.0, 1.25), True)
    p = predict_logits(*args, amp_dtype=torch.bfloat16)
    assert torch.isfinite(p).all() and torch.allclose(p, predict_logits(*args), atol=1e-6)
    assert "non-finite" in caplog.text
