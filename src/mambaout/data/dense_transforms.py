"""Transforms for (image, target) pairs. Images are float (3, H, W) in [0, 1].

Detection: horizontal flip (boxes and masks follow); resizing and normalisation are done inside the
detector (torchvision's GeneralizedRCNNTransform: shorter side 800, longer <= 1333, ImageNet mean/std).

Segmentation (mmseg's ADE20K pipeline): random resize to ``scale`` x ratio in [0.5, 2.0] keeping the
aspect ratio, random crop (cat_max_ratio 0.75), flip 0.5, photometric distortion, normalisation and
padding to the crop size (image 0, label 255). Test: resize to fit ``scale`` keeping the aspect ratio.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from .files import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)  # = mmseg's (123.675, 116.28, 103.53) / 255
STD = (0.229, 0.224, 0.225)


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


# --- detection ------------------------------------------------------------------------------------


class DetHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, target):
        if random.random() < self.p:
            w = image.shape[-1]
            image = image.flip(-1)
            target = dict(target)
            b = target["boxes"].clone()
            b[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
            target["boxes"] = b
            if "masks" in target:
                target["masks"] = target["masks"].flip(-1)
        return image, target


def detection_transforms(train: bool, flip_prob: float = 0.5):
    return Compose([DetHorizontalFlip(flip_prob)]) if train else None


# --- segmentation ---------------------------------------------------------------------------------


def _rescale_size(h: int, w: int, scale: Sequence[int]) -> tuple[int, int]:
    """mmcv 'keep ratio' rescale: fit the long side within max(scale) and the short within min(scale)."""
    long_s, short_s = max(scale), min(scale)
    f = min(long_s / max(h, w), short_s / min(h, w))
    return max(int(h * f + 0.5), 1), max(int(w * f + 0.5), 1)


def resize_image(image: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def resize_label(label: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(label[None, None].float(), size=tuple(size), mode="nearest")[0, 0].long()


class SegRandomResize:
    def __init__(self, scale=(2048, 512), ratio_range=(0.5, 2.0)):
        self.scale, self.ratio_range = tuple(scale), tuple(ratio_range)

    def __call__(self, image, label):
        r = random.uniform(*self.ratio_range)
        size = _rescale_size(*image.shape[-2:], [int(s * r) for s in self.scale])
        return resize_image(image, size), resize_label(label, size)


class SegRandomCrop:
    """Random crop; retried up to 10 times while one class covers more than ``cat_max_ratio`` of it."""

    def __init__(self, size=(512, 512), cat_max_ratio: float = 0.75):
        self.size, self.cat_max_ratio = tuple(size), cat_max_ratio

    def _box(self, h, w):
        ch, cw = self.size
        y, x = random.randint(0, max(h - ch, 0)), random.randint(0, max(w - cw, 0))
        return y, x, min(y + ch, h), min(x + cw, w)

    def __call__(self, image, label):
        h, w = label.shape
        box = self._box(h, w)
        if self.cat_max_ratio < 1.0:
            for _ in range(10):
                crop = label[box[0] : box[2], box[1] : box[3]]
                _, counts = torch.unique(crop[crop != IGNORE_INDEX], return_counts=True)
                if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                    break
                box = self._box(h, w)
        y1, x1, y2, x2 = box
        return image[:, y1:y2, x1:x2], label[y1:y2, x1:x2]


class SegFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, label):
        if random.random() < self.p:
            return image.flip(-1), label.flip(-1)
        return image, label


class PhotoMetricDistortion:
    """mmseg's: brightness +-32/255, contrast 0.5-1.5 (before or after), saturation 0.5-1.5, hue +-18/180,
    each applied with probability 0.5."""

    def __call__(self, image, label):
        if random.random() < 0.5:
            image = image + random.uniform(-32, 32) / 255
        contrast_first = random.random() < 0.5

        def contrast(img):
            return img * random.uniform(0.5, 1.5) if random.random() < 0.5 else img

        if contrast_first:
            image = contrast(image)
        image = image.clamp(0, 1)
        if random.random() < 0.5:
            image = TF.adjust_saturation(image, random.uniform(0.5, 1.5))
        if random.random() < 0.5:
            image = TF.adjust_hue(image, random.uniform(-0.1, 0.1))
        if not contrast_first:
            image = contrast(image)
        return image.clamp(0, 1), label


class Normalize:
    def __init__(self, mean=MEAN, std=STD):
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, image, label):
        return (image - self.mean) / self.std, label


class Pad:
    def __init__(self, size=(512, 512)):
        self.size = tuple(size)

    def __call__(self, image, label):
        ph, pw = max(self.size[0] - image.shape[-2], 0), max(self.size[1] - image.shape[-1], 0)
        if ph or pw:
            image = F.pad(image, (0, pw, 0, ph), value=0.0)
            label = F.pad(label, (0, pw, 0, ph), value=IGNORE_INDEX)
        return image, label


class SegTestResize:
    """Resize the image to fit ``scale`` (keep ratio); the label stays at full resolution for the metric."""

    def __init__(self, scale=(2048, 512)):
        self.scale = tuple(scale) if scale else None

    def __call__(self, image, label):
        if self.scale:
            image = resize_image(image, _rescale_size(*image.shape[-2:], self.scale))
        return image, label


def segmentation_transforms(
    train: bool,
    crop_size=(512, 512),
    scale=(2048, 512),
    ratio_range=(0.5, 2.0),
    cat_max_ratio: float = 0.75,
    flip_prob: float = 0.5,
    photometric: bool = True,
    test_scale: Sequence[int] | None = None,
):
    if train:
        ts = [SegRandomResize(scale, ratio_range), SegRandomCrop(crop_size, cat_max_ratio), SegFlip(flip_prob)]
        if photometric:
            ts.append(PhotoMetricDistortion())
        return Compose(ts + [Normalize(), Pad(crop_size)])
    return Compose([SegTestResize(test_scale if test_scale is not None else scale), Normalize()])
