"""timm's AutoAugment / RandAugment / AugMix operations, made to behave the same under every Pillow we allow.

timm's ``PosterizeIncreasing`` keeps ``4 - int(level / 10 * 4)`` bits, so 0 bits at the top level 10; with
``rand-m9-mstd0.5`` the level is drawn from N(9, 0.5) clipped to [0, 10], which is 10 in 2.3% of draws (about
0.2% of samples). Pillow <= 12's ``ImageOps.posterize(img, 0)`` built the mask ``~(2**8 - 1)`` and so turned
every pixel to 0; Pillow 13 raises ``ValueError`` instead, which killed the data workers of the ImageNet
recipe. :func:`harden` swaps timm's posterize for :func:`posterize`, which keeps Pillow <= 12's result, so
the recipe trains the same (and as the official runs did) under either.
"""

from __future__ import annotations

from PIL import Image, ImageOps


def posterize(img: Image.Image, bits_to_keep, **_) -> Image.Image:
    """Keep the ``bits_to_keep`` high bits of each channel; <= 0 bits gives 0 everywhere (Pillow <= 12)."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep < 1:
        return img.point([0] * 256 * len(img.getbands()))
    return ImageOps.posterize(img, int(bits_to_keep))


def _augment_ops(obj):
    """timm's AugmentOp objects inside a transform (Compose, RandAugment, AutoAugment, AugMixAugment)."""
    if isinstance(obj, (list, tuple)):  # AutoAugment's policy is a list of sub-policies (lists of ops)
        for child in obj:
            yield from _augment_ops(child)
    elif hasattr(obj, "aug_fn") and hasattr(obj, "name"):
        yield obj
    else:
        for attr in ("transforms", "ops", "policy"):  # Compose; RandAugment, AugMix; AutoAugment
            yield from _augment_ops(getattr(obj, attr, ()))


def harden(transform):
    """``transform`` with every posterize operation replaced by :func:`posterize` (in place; returned)."""
    for op in _augment_ops(transform):
        if op.name.startswith("Posterize"):  # Posterize, PosterizeIncreasing, PosterizeOriginal
            op.aug_fn = posterize
    return transform
