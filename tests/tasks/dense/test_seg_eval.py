"""tasks/dense/segmentation.py evaluate: mmseg's aug test (scales x flip) never below single scale on a model
that the augmentations cannot fool, predictions at the label's size, AMP on the forward only."""

import torch
import torch.nn.functional as F

from mambaout.tasks.dense.segmentation import evaluate

CPU = torch.device("cpu")


class Oracle(torch.nn.Module):
    """The image is the one-hot class map; logits = 8 x image (a blend of classes never names a third one)."""

    size_divisor = 32

    def forward(self, x):
        return 8 * x


class OverflowingOracle(Oracle):
    """The same in fp32; inf logits (a half-precision overflow) under autocast."""

    def forward(self, x):
        y = super().forward(x)
        return y * float("inf") if torch.is_autocast_enabled(x.device.type) else y


def _dataset(n=3, size=(40, 56), label_size=(80, 112), classes=3):
    """Blocky label maps; the image (at ``size``, as after a test resize) is their one-hot map."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        label = torch.randint(0, classes, (1, 1, 5, 7), generator=g).float()
        label = F.interpolate(label, size=label_size, mode="nearest")[0, 0].long()
        label[:4] = 255  # ignored rows
        small = F.interpolate(label.clamp(max=classes - 1)[None, None].float(), size=size, mode="nearest")[0, 0]
        out.append((F.one_hot(small.long(), classes).permute(2, 0, 1).float(), label))
    return out


def test_aug_test_at_label_size_not_below_single_scale():
    ds, m = _dataset(), Oracle()
    single = evaluate(m, ds, CPU, 3, "whole")["mIoU"]
    assert single == 1.0
    for mode in ("whole", "slide"):
        ms = evaluate(m, ds, CPU, 3, mode, (32, 32), (24, 24), scales=[0.75, 1.0, 1.25], flip=True)["mIoU"]
        assert ms >= single - 0.005, (mode, ms, single)


def test_amp_overflow_does_not_turn_into_class_zero():
    ds = _dataset()
    want = evaluate(Oracle(), ds, CPU, 3, "whole", scales=[0.75, 1.0], flip=True)["mIoU"]
    got = evaluate(OverflowingOracle(), ds, CPU, 3, "whole", scales=[0.75, 1.0], flip=True, amp="bf16")
    assert got["mIoU"] == want  # NaN probabilities used to win the argmax: class 0 everywhere
