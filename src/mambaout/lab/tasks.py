"""The lab's tasks, kept on the training device as tensors (no DataLoader: many small runs).

``ImageTask``      Fashion-MNIST images (the project's IDX reader), zero-padded 28 -> 32, normalised.
``PixelSeqTask``   the same images read as a pixel sequence (optionally average-pooled first), one
                   class read out at the last step: sequential, causal classification.
``CopyTask``       selective copying: K data tokens scattered among L - K blank tokens, then K marker
                   tokens; the model must emit the data tokens, in order, at the marker steps. The
                   memory has to span the whole sequence. Loss and accuracy on the last K steps only.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from ..data.fashion_mnist import MEAN, STD, FashionMNIST
from .errors import LabError


def _subset(n: int, k: Optional[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)
    return idx[:k] if k and k < n else idx


class FashionTensors:
    """Train/test images (uint8, N x 28 x 28) and labels on ``device``; subsets drawn once (seed 0)."""

    def __init__(self, root: Optional[str], device, train_subset: Optional[int] = None,
                 test_subset: Optional[int] = None):
        tr, te = FashionMNIST(root, "train"), FashionMNIST(root, "test")
        i, j = _subset(len(tr), train_subset, 0), _subset(len(te), test_subset, 1)
        self.train_x = torch.from_numpy(tr.images.copy())[i].to(device)
        self.train_y = tr.targets[i].to(device)
        self.test_x = torch.from_numpy(te.images.copy())[j].to(device)
        self.test_y = te.targets[j].to(device)
        self.device = device


class _Classification:
    num_outputs = 10
    metric = "top1"

    def __init__(self, data: FashionTensors, batch_size: int, eval_batch_size: int = 1000):
        self.data, self.batch_size, self.eval_batch_size = data, batch_size, eval_batch_size
        self.steps_per_epoch = max(1, len(data.train_y) // batch_size)

    def inputs(self, x_uint8: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batches(self, seed: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled training batches (a fresh permutation every epoch, seeded)."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        n = len(self.data.train_y)
        while True:
            perm = torch.randperm(n, generator=g).to(self.data.device)
            for s in range(self.steps_per_epoch):
                idx = perm[s * self.batch_size:(s + 1) * self.batch_size]
                yield self.inputs(self.data.train_x[idx]), self.data.train_y[idx]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y)

    def eval_batches(self):
        for s in range(0, len(self.data.test_y), self.eval_batch_size):
            yield self.inputs(self.data.test_x[s:s + self.eval_batch_size]), self.data.test_y[s:s + self.eval_batch_size]

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
        if pool < 1 or 28 % pool:
            raise LabError(f"pixel_pool must divide 28, got {pool}")
        self.pool = pool
        self.length = (28 // pool) ** 2

    def inputs(self, x):
        x = (x.float().unsqueeze(1) / 255.0 - MEAN) / STD
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return x.flatten(1).unsqueeze(-1)


class CopyTask:
    """Selective copying. Tokens: 0 blank, 1..V data, V+1 marker. Length L (K data + K markers inside)."""

    metric = "acc"

    def __init__(self, length: int, num_tokens: int, vocab: int, batch_size: int, steps_per_epoch: int,
                 device, eval_size: int = 1024):
        if length < 3 * num_tokens or num_tokens < 1 or vocab < 2:
            raise LabError(f"selective copying needs length >= 3*tokens, tokens >= 1, vocab >= 2; "
                           f"got L={length}, K={num_tokens}, V={vocab}")
        self.length, self.k, self.vocab = length, num_tokens, vocab
        self.batch_size, self.steps_per_epoch, self.device = batch_size, steps_per_epoch, device
        self.num_inputs = vocab + 2
        self.num_outputs = vocab + 2
        g = torch.Generator(device="cpu").manual_seed(12345)
        self._eval = [self.sample(min(eval_size - s, 256), g) for s in range(0, eval_size, 256)]

    def sample(self, n: int, g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
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
        out = logits[:, -self.k:].float()
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        model.eval()
        hit = tot = 0
        loss = 0.0
        for x, y in self._eval:
            logits = model(x)
            loss += self.loss(logits, y).item() * y.numel()
            hit += (logits[:, -self.k:].argmax(-1) == y).sum().item()
            tot += y.numel()
        return dict(acc=100.0 * hit / tot, loss=loss / tot, count=tot)
