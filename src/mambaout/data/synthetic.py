"""A deterministic, learnable synthetic classification set for tests and smoke runs.

Each class has a fixed random low-frequency pattern (from ``seed`` and the class id); sample i is its
class pattern plus Gaussian noise drawn from (seed, i), already normalised to about zero mean, unit
variance. Labels cycle through the classes, so every class has the same number of samples.

``uint8=True`` returns the same samples as uint8 images "before normalisation", as a GPU prefetcher that
normalises on the device expects: ``u = clamp(round(255 * (x * std + mean)), 0, 255)``, so that
``(u - 255 * mean) / (255 * std)`` gives ``x`` back, quantised to steps of ``1 / (255 * std)`` and clipped to
``[-mean / std, (1 - mean) / std]`` (+-4 with the defaults mean 0.5, std 0.125). A quarter of the bytes per
sample to collate, pin and copy to the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class SyntheticClassification(Dataset):
    def __init__(
        self,
        num_samples: int = 256,
        num_classes: int = 4,
        img_size: int = 32,
        in_chans: int = 3,
        noise: float = 0.5,
        seed: int = 0,
        split: str = "train",
        uint8: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        self.num_samples, self.num_classes, self.img_size = num_samples, num_classes, img_size
        self.in_chans, self.noise, self.uint8 = in_chans, noise, uint8
        self.seed = seed * 2 + (0 if split == "train" else 1)  # train and val draw different noise
        g = torch.Generator().manual_seed(seed)
        self.coarse = torch.randn(num_classes, in_chans, 4, 4, generator=g)  # upsampled per sample: no big cache
        self.targets = [i % num_classes for i in range(num_samples)]
        mean = torch.tensor(mean if mean is not None else [0.5] * in_chans, dtype=torch.float32)
        std = torch.tensor(std if std is not None else [0.125] * in_chans, dtype=torch.float32)
        self._scale, self._shift = (255 * std).view(-1, 1, 1), (255 * mean).view(-1, 1, 1)

    def pattern(self, y: int) -> torch.Tensor:
        p = F.interpolate(
            self.coarse[y : y + 1], size=(self.img_size, self.img_size), mode="bilinear", align_corners=False
        )[0]
        return p / p.std()

    def __len__(self):
        return self.num_samples

    def __getitem__(self, i):
        y = self.targets[i]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        p = self.pattern(y)
        x = p + self.noise * torch.randn(p.shape, generator=g)
        if self.uint8:
            x = x.mul_(self._scale).add_(self._shift).round_().clamp_(0, 255).to(torch.uint8)
        return x, y
