"""Small image datasets held on the device and augmented a whole batch at a time there.

For data sets that fit in device memory (Fashion-MNIST: 47 MB as uint8), per-sample CPU transforms and
worker processes are the bottleneck, not the model: a 6 M-parameter network at 32x32 trains faster than
eight workers can crop images. Here the uint8 images live on the device; :class:`BatchAugment` does timm's
training transform (random-resized crop, horizontal flip, normalisation, random erasing in ``pixel`` mode)
for a whole batch in a few kernels, and :class:`TensorStream` has :class:`.stream.BatchStream`'s interface
(epochs, resumable positions, rank sharding), with each batch's randomness a function of (seed, epoch,
batch), so a resumed run sees exactly the batches it would have seen.

Differences from timm's per-sample transform: the crop is resampled bilinearly (timm: bicubic with PIL) and a
crop whose side would exceed the image is clamped to it (timm redraws up to ten times, then centre-crops).
Evaluation images go through the same bilinear resize (:func:`resize_normalize`), so train and test agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .sampler import EpochSampler, sample_seed
from .stream import StreamPosition


def resize_normalize(images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, size, size), bilinear, normalised."""
    x = images.float().div_(255)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
    return _normalize(x, mean, std)


def _normalize(x, mean, std):
    """mean/std: sequences or (1, C, 1, 1) tensors already on x's device (no copy, no host sync)."""
    if not isinstance(mean, torch.Tensor):
        mean = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1).to(x.device)
        std = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1).to(x.device)
    return (x - mean) / std


def _uniform(n, lo, hi, g, device):
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


class BatchAugment:
    """timm's training transform for a batch of uint8 images: crop, flip, normalise, erase."""

    def __init__(
        self,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        reprob: float = 0.0,
        erase_area: Sequence[float] = (0.02, 1 / 3),
        erase_aspect: float = 0.3,
    ):
        self.size, self.mean, self.std = size, list(mean), list(std)
        self.scale, self.log_ratio = tuple(scale), (math.log(ratio[0]), math.log(ratio[1]))
        self.hflip, self.reprob = hflip, reprob
        self.erase_area, self.erase_log_aspect = tuple(erase_area), (math.log(erase_aspect), -math.log(erase_aspect))
        self._stats = {}  # device -> (mean, std) tensors: a blocking copy per batch would stall the host

    def _mean_std(self, device: torch.device):
        if device not in self._stats:
            self._stats[device] = tuple(
                torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1).to(device) for v in (self.mean, self.std)
            )
        return self._stats[device]

    def crop_flip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """x float (B, C, H, W) in [0, 1] -> (B, C, size, size): one affine resampling per image."""
        b, dev = x.shape[0], x.device
        area = _uniform(b, *self.scale, g, dev)
        r = torch.exp(_uniform(b, *self.log_ratio, g, dev))
        w = torch.sqrt(area * r).clamp(max=1.0)  # fractions of the image's width and height
        h = torch.sqrt(area / r).clamp(max=1.0)
        # centre offsets in normalised [-1, 1] coordinates keep the crop inside the image
        cx = _uniform(b, -1.0, 1.0, g, dev) * (1 - w)
        cy = _uniform(b, -1.0, 1.0, g, dev) * (1 - h)
        flip = torch.where(torch.rand(b, generator=g, device=dev) < self.hflip, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        grid = F.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random erasing (``pixel`` mode: per-pixel normal noise), one rectangle per chosen image."""
        b, _, hh, ww = x.shape
        dev = x.device
        area = _uniform(b, *self.erase_area, g, dev) * hh * ww
        aspect = torch.exp(_uniform(b, *self.erase_log_aspect, g, dev))
        h = torch.sqrt(area * aspect).round().clamp(1, hh - 1)
        w = torch.sqrt(area / aspect).round().clamp(1, ww - 1)
        top = torch.floor(torch.rand(b, generator=g, device=dev) * (hh - h + 1))
        left = torch.floor(torch.rand(b, generator=g, device=dev) * (ww - w + 1))
        on = torch.rand(b, generator=g, device=dev) < self.reprob
        rows = torch.arange(hh, device=dev).view(1, hh, 1)
        cols = torch.arange(ww, device=dev).view(1, 1, ww)
        inside = (rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
        inside = inside & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))
        mask = (inside & on.view(-1, 1, 1)).unsqueeze(1)
        noise = torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
        return torch.where(mask, noise, x)

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = self.crop_flip(images.float().div_(255), g)
        x = _normalize(x, *self._mean_std(x.device))
        return self.erase(x, g) if self.reprob > 0 else x


class TensorStream(StreamPosition):
    """Endless, resumable training batches from tensors on the device (see the module docstring).

    images: uint8 (N, C, H, W); augment(images_uint8, generator) -> float batch. The order is
    :class:`.sampler.EpochSampler`'s, so it matches :class:`.stream.BatchStream` over the same samples.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        accum_steps: int = 1,
    ):
        super().__init__(EpochSampler(len(images), batch_size, world_size, rank, seed, batches_multiple=accum_steps))
        self.images, self.targets, self.augment = images, targets, augment
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self._order = (None, None)  # (epoch, permutation on the device)

    def next(self):
        if self.epoch_done:
            self.epoch, self.batch = self.epoch + 1, 0
        if self._order[0] != self.epoch:
            self._order = (self.epoch, self.sampler._order(self.epoch).to(self.images.device))
        chunk = self.batch * self.world + self.rank
        idx = self._order[1][chunk * self.batch_size : (chunk + 1) * self.batch_size]
        g = torch.Generator(device=self.images.device)
        g.manual_seed(sample_seed(self.seed, self.epoch, chunk))
        batch = self.augment(self.images[idx], g), self.targets[idx]
        self.batch += 1
        return batch

    def close(self) -> None:
        pass


class TensorBatches:
    """Evaluation batches of tensors already on the device, this rank's share (r, r+W, ...)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1):
        self.images, self.targets = images[rank::world], targets[rank::world]
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.targets) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.targets), self.batch_size):
            yield self.images[i : i + self.batch_size], self.targets[i : i + self.batch_size]
