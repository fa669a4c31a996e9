"""Data order as a pure function of (seed, epoch), sharded over ranks, resumable mid-epoch.

``EpochSampler`` shuffles with a generator seeded by (seed, epoch), cuts the permutation into chunks of
the per-process batch size and deals chunk j to rank ``j % world_size``. So one process with batch 2B (or
batch B and 2 accumulation steps) sees exactly the samples that two processes with batch B see together.
It yields ``(index, sample_seed)`` pairs; wrap the dataset in :class:`SeededDataset` so that random
augmentations of a sample depend only on (seed, epoch, index), whatever the number of workers and
wherever a run was resumed. ``set_epoch(epoch, start_batch=k)`` skips the first k batches of the epoch;
``set_span(epoch, start_batch, end_epoch)`` makes one iterator run through several epochs back to back, so a
DataLoader's workers prepare the next epoch's first batches while the current epoch ends (no stall at
epoch starts) -- each epoch's batches are exactly those ``set_epoch`` gives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from ..errors import ConfigError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 1) * 1_000_000_007 + index & 0x7FFF_FFFF_FFFF_FFFF


class EpochSampler(Sampler):
    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        batches_multiple: int = 1,
    ):
        """batch_size: per process; batches_multiple: the accumulation steps (an epoch ends on a full update)."""
        self.n, self.batch_size, self.world, self.rank = num_samples, batch_size, world_size, rank
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start_batch, self.end_epoch = 0, 0, 1
        group = batch_size * world_size * batches_multiple
        self.batches_per_epoch = (num_samples // group) * batches_multiple  # per process
        if self.batches_per_epoch == 0:
            raise ConfigError(  # a user's batch size larger than the data set: one line, not a traceback
                f"{num_samples} training samples are fewer than one update "
                f"(batch {batch_size} x {world_size} processes x {batches_multiple} accumulation): lower the batch size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.set_span(epoch, start_batch, epoch + 1)

    def set_span(self, epoch: int, start_batch: int, end_epoch: int) -> None:
        """Iterate epochs ``epoch .. end_epoch - 1``, starting at batch ``start_batch`` of the first."""
        if end_epoch <= epoch:
            raise ValueError(f"empty span: epochs {epoch}..{end_epoch - 1}")
        self.epoch, self.start_batch, self.end_epoch = epoch, start_batch, end_epoch

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        b = self.batch_size
        for epoch in range(self.epoch, self.end_epoch):
            order = self._order(epoch).tolist()
            for k in range(self.start_batch if epoch == self.epoch else 0, self.batches_per_epoch):
                chunk = k * self.world + self.rank
                for idx in order[chunk * b : (chunk + 1) * b]:
                    yield idx, sample_seed(self.seed, epoch, idx)

    def __len__(self) -> int:
        epochs = self.end_epoch - self.epoch
        return (epochs * self.batches_per_epoch - self.start_batch) * self.batch_size


class ShardedEvalSampler(Sampler):
    """Every sample exactly once over all ranks (rank r gets r, r+W, ...); no padding, so counts are exact."""

    def __init__(self, num_samples: int, world_size: int = 1, rank: int = 0):
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class SeededDataset(Dataset):
    """Makes a dataset's random transforms a function of the sample seed the sampler passes along.

    Accepts ``(index, seed)`` (training) or a plain index (evaluation: no reseeding). In the main process
    (num_workers=0) the global RNG states are saved and restored around the sample, so model-side
    randomness (drop path, mixup) is unaffected by data loading.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # pass through classes, counters, ...
        if name == "dataset" or name.startswith("__"):  # e.g. Subset.__getitems__ must not leak through
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item):
        if not isinstance(item, (tuple, list)):
            return self.dataset[item]
        index, seed = item
        in_main = get_worker_info() is None
        if in_main:
            saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        # the CPU generator only: what torch.manual_seed sets for the CPU, without its per-call accelerator
        # seeding (~80 us a sample, more than the whole Fashion-MNIST transform)
        torch.default_generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            if in_main:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])
