"""The lab's tasks, kept on the training device as tensors (no DataLoader: many small runs).

``ImageTask``      Fashion-MNIST images (the project's IDX reader), zero-padded 28 -> 32, normalised.
``PixelSeqTask``   the same images read as a pixel sequence (optionally average-pooled first), one
                   class read out at the last step: sequential, causal classification.
``NextPixelTask``  the same pixel sequence quantised to Q grey levels, modelled autoregressively: the
                   model reads a start token and levels 0..t-1 and predicts level t at every step;
                   metric: test negative log-likelihood in bits per pixel (lower is better).
``CopyTask``       selective copying: K data tokens scattered among L - K blank tokens, then K marker
                   tokens; the model must emit the data tokens, in order, at the marker steps. The
                   memory has to span the whole sequence. Loss and accuracy on the last K steps only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..data.fashion_mnist import MEAN, STD, FashionMNIST
from ..errors import LabError


def _subset(n: int, k: int | None, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)
    return idx[:k] if k and k < n else idx


class FashionTensors:
    """Train/test images (uint8, N x 28 x 28) and labels on ``device``; subsets drawn once (seed 0)."""

    def __init__(self, root: str | None, device, train_subset: int | None = None, test_subset: int | None = None):
        tr, te = FashionMNIST(root, "train"), FashionMNIST(root, "test")
        i, j = _subset(len(tr), train_subset, 0), _subset(len(te), test_subset, 1)
        self.train_x = torch.from_numpy(tr.images.copy())[i].to(device)
        self.train_y = tr.targets[i].to(device)
        self.test_x = torch.from_numpy(te.images.copy())[j].to(device)
        self.test_y = te.targets[j].to(device)
        self.device = device


class _FashionTask:
    """Batches of a :class:`FashionTensors` set: endless shuffled training batches and the test set in
    order. Subclasses say what the model reads and predicts from images + labels (``pair``)."""

    def __init__(self, data: FashionTensors, batch_size: int, eval_batch_size: int = 1000):
        self.data, self.batch_size, self.eval_batch_size = data, batch_size, eval_batch_size
        self.steps_per_epoch = max(1, len(data.train_y) // batch_size)

    def pair(self, x_uint8: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def batches(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled training batches (a fresh permutation every epoch, seeded)."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        n = len(self.data.train_y)
        while True:
            perm = torch.randperm(n, generator=g).to(self.data.device)
            for s in range(self.steps_per_epoch):
                idx = perm[s * self.batch_size : (s + 1) * self.batch_size]
                yield self.pair(self.data.train_x[idx], self.data.train_y[idx])

    def eval_batches(self, limit: int | None = None):
        n = len(self.data.test_y) if limit is None else min(limit, len(self.data.test_y))
        for s in range(0, n, self.eval_batch_size):
            e = min(n, s + self.eval_batch_size)
            yield self.pair(self.data.test_x[s:e], self.data.test_y[s:e])


def raster(x_uint8: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """(B, 28, 28) uint8 images -> (B, L) float pixel values in 0..255, raster order, ``pool`` x ``pool``
    average-pooled first (L = (28 / pool)^2)."""
    x = x_uint8.float()
    if pool > 1:
        x = F.avg_pool2d(x.unsqueeze(1), pool).squeeze(1)
    return x.flatten(1)


def _check_pool(pool: int) -> int:
    if pool < 1 or 28 % pool:
        raise LabError(f"pixel_pool must divide 28, got {pool}")
    return pool


class _Classification(_FashionTask):
    num_outputs = 10
    metric = "top1"
    chance = 10.0  # top-1 of a constant guess on balanced classes

    def inputs(self, x_uint8: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pair(self, x_uint8, y):
        return self.inputs(x_uint8), y

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y)

    def evaluate(self, model) -> dict:
        from ..tasks.classification.evaluate import evaluate

        r = evaluate(model, self.eval_batches(), self.data.device)
        return dict(top1=r["top1"], loss=r["loss"], count=r["count"])


class ImageTask(_Classification):
    def __init__(self, data: FashionTensors, batch_size: int, img_size: int = 32, **kw):
        super().__init__(data, batch_size, **kw)
        if img_size < 28:
            raise LabError(f"img_size must be >= 28, got {img_size}")
        self.pad = img_size - 28

    def inputs(self, x):
        x = (x.float().unsqueeze(1) / 255.0 - MEAN) / STD
        lo = self.pad // 2
        return F.pad(x, (lo, self.pad - lo, lo, self.pad - lo), value=-MEAN / STD)


class PixelSeqTask(_Classification):
    """Images as (B, L, 1) pixel sequences in raster order; ``pool`` > 1 average-pools first (L = (28/pool)^2)."""

    def __init__(self, data: FashionTensors, batch_size: int, pool: int = 1, **kw):
        super().__init__(data, batch_size, **kw)
        self.pool = _check_pool(pool)
        self.length = (28 // pool) ** 2

    def inputs(self, x):
        return ((raster(x, self.pool) / 255.0 - MEAN) / STD).unsqueeze(-1)


class NextPixelTask(_FashionTask):
    """Next-pixel prediction: the raster sequence quantised to ``levels`` grey levels (pixel value v ->
    floor(v / 256 * Q)), read shifted right by one behind a start token (id Q), with a Q-way prediction of
    the level at every step. Loss: mean cross-entropy over all steps. ``evaluate``: test NLL in bits per
    pixel (lower is better) and next-level accuracy on the first ``eval_images`` test images (all if None)."""

    metric = "bpp"
    lower_is_better = True

    def __init__(
        self,
        data: FashionTensors,
        batch_size: int,
        levels: int = 16,
        pool: int = 1,
        eval_images: int | None = None,
        **kw,
    ):
        super().__init__(data, batch_size, **kw)
        if not 2 <= levels <= 256:
            raise LabError(f"next-pixel levels must be in 2..256, got {levels}")
        self.levels, self.pool, self.eval_images = levels, _check_pool(pool), eval_images
        self.length = (28 // pool) ** 2
        self.num_inputs = levels + 1  # levels + the start token
        self.num_outputs = levels

    def quantise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """(B, 28, 28) uint8 -> (B, L) long levels in 0..Q-1."""
        return torch.floor(raster(x_uint8, self.pool) * (self.levels / 256.0)).long().clamp_(0, self.levels - 1)

    def pair(self, x_uint8, y):
        target = self.quantise(x_uint8)
        start = torch.full_like(target[:, :1], self.levels)
        return torch.cat((start, target[:, :-1]), dim=1), target

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        model.eval()
        nll, hit, tot = 0.0, 0, 0
        for x, target in self.eval_batches(self.eval_images):
            logits = model(x).float()
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum").item()
            hit += (logits.argmax(-1) == target).sum().item()
            tot += target.numel()
        nats = nll / max(1, tot)
        return dict(bpp=nats / math.log(2), acc=100.0 * hit / max(1, tot), loss=nats, count=tot)


class CopyTask:
    """Selective copying. Tokens: 0 blank, 1..V data, V+1 marker. Length L (K data + K markers inside)."""

    metric = "acc"

    def __init__(
        self,
        length: int,
        num_tokens: int,
        vocab: int,
        batch_size: int,
        steps_per_epoch: int,
        device,
        eval_size: int = 1024,
        eval_seed: int = 12345,
    ):
        if length < 3 * num_tokens or num_tokens < 1 or vocab < 2:
            raise LabError(
                f"selective copying needs length >= 3*tokens, tokens >= 1, vocab >= 2; "
                f"got L={length}, K={num_tokens}, V={vocab}"
            )
        self.length, self.k, self.vocab = length, num_tokens, vocab
        self.batch_size, self.steps_per_epoch, self.device = batch_size, steps_per_epoch, device
        self.num_inputs = vocab + 2
        self.num_outputs = vocab + 2
        self.chance = 100.0 / vocab  # a uniform guess over the data tokens
        g = torch.Generator(device="cpu").manual_seed(eval_seed)  # another seed: a validation set
        self._eval = [self.sample(min(eval_size - s, 256), g) for s in range(0, eval_size, 256)]

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        L, K = self.length, self.k
        ctx = L - K
        pos = torch.rand(n, ctx, generator=g).argsort(1)[:, :K].sort(1).values  # K distinct positions, in order
        data = torch.randint(1, self.vocab + 1, (n, K), generator=g)
        x = torch.zeros(n, L, dtype=torch.long)
        x.scatter_(1, pos, data)
        x[:, ctx:] = self.vocab + 1
        return x.to(self.device), data.to(self.device)

    def batches(self, seed: int):
        g = torch.Generator(device="cpu").manual_seed(seed)
        while True:
            yield self.sample(self.batch_size, g)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = logits[:, -self.k :].float()
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        model.eval()
        hit = tot = 0
        loss = 0.0
        for x, y in self._eval:
            logits = model(x)
            loss += self.loss(logits, y).item() * y.numel()
            hit += (logits[:, -self.k :].argmax(-1) == y).sum().item()
            tot += y.numel()
        return dict(acc=100.0 * hit / tot, loss=loss / tot, count=tot)
