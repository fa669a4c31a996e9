"""Training batches as an endless, resumable stream over epochs.

    stream = BatchStream(dataset, batch_size=32, seed=0, rank=r, world_size=w, num_workers=8)
    images, targets = stream.next()
    stream.position()          # (epoch, batches of it consumed): stored in checkpoints
    stream.seek((3, 120))      # continue exactly there: the same batches in the same order

Data order is a function of (seed, epoch) (:class:`.sampler.EpochSampler`, sharded over ranks) and a sample's
random augmentation a function of (seed, epoch, index) (:class:`.sampler.SeededDataset`), so a resumed run sees
exactly the batches it would have seen. One DataLoader iterator runs through every epoch back to back: the
workers prepare the next epoch's first batches while the current one ends (no stall at epoch starts).
``group_ids`` batches images of one aspect-ratio group together within an epoch (detection); ``wrap`` wraps the
DataLoader (e.g. timm's PrefetchLoader, which normalises on the GPU). :class:`MultiStream` draws one batch from
each of several streams per call (multi-task training).
"""

from __future__ import annotations

import itertools
import signal
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from .sampler import EpochSampler, SeededDataset


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: SIGTERM and SIGINT sent to every process of a job (a scheduler's
    preemption, Ctrl-C in a terminal) are for the main process, which finishes its step, saves and shuts the
    workers down; torch's own worker handler would die on SIGTERM and fail the main process under that step."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SpanBatchSampler(Sampler):
    """Batches of (index, seed) pairs for epoch ``epoch`` from batch ``start`` on, then every later epoch."""

    def __init__(
        self, sampler: EpochSampler, batch_size: int, epoch: int, start: int, group_ids: Sequence[int] | None = None
    ):
        self.sampler, self.batch_size, self.epoch, self.start = sampler, batch_size, epoch, start
        self.group_ids = list(group_ids) if group_ids is not None else None

    def epoch_batches(self, epoch: int) -> list[list]:
        self.sampler.set_epoch(epoch)
        items, b = list(self.sampler), self.batch_size
        if self.group_ids is None:
            return [items[i : i + b] for i in range(0, len(items), b)]
        buffers, batches = defaultdict(list), []
        for item in items:  # full batches of one group as they fill, then the leftovers together
            g = self.group_ids[item[0]]
            buffers[g].append(item)
            if len(buffers[g]) == b:
                batches.append(buffers[g])
                buffers[g] = []
        rest = [i for g in sorted(buffers) for i in buffers[g]]
        return batches + [rest[i : i + b] for i in range(0, len(rest), b)]

    def __iter__(self) -> Iterator[list]:
        for epoch in itertools.count(self.epoch):
            yield from self.epoch_batches(epoch)[self.start if epoch == self.epoch else 0 :]


class StreamPosition:
    """Where a stream is: (epoch, batches of it consumed), from its ``sampler``'s batches per epoch."""

    def __init__(self, sampler: EpochSampler):
        self.sampler = sampler
        self.epoch, self.batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    @property
    def epoch_done(self) -> bool:
        """The last batch returned was the epoch's last."""
        return self.batch == self.batches_per_epoch

    def position(self) -> tuple[int, int]:
        return (self.epoch + 1, 0) if self.epoch_done else (self.epoch, self.batch)

    def seek(self, position) -> None:
        self.epoch, self.batch = int(position[0]), int(position[1])


class BatchStream(StreamPosition):
    def __init__(
        self,
        dataset,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        collate: Callable | None = None,
        pin_memory: bool = False,
        accum_steps: int = 1,
        group_ids: Sequence[int] | None = None,
        wrap: Callable | None = None,
    ):
        """batch_size: per process; accum_steps: an epoch ends on a full optimizer step."""
        super().__init__(EpochSampler(len(dataset), batch_size, world_size, rank, seed, batches_multiple=accum_steps))
        self.dataset = SeededDataset(dataset)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.collate, self.pin_memory, self.group_ids, self.wrap = collate, pin_memory, group_ids, wrap
        self._it = None

    def seek(self, position) -> None:
        super().seek(position)
        self._it = None

    def _start(self):
        self.epoch, self.batch = self.position()
        spans = SpanBatchSampler(self.sampler, self.batch_size, self.epoch, self.batch, self.group_ids)
        workers = self.num_workers
        loader = DataLoader(
            self.dataset,
            batch_sampler=spans,
            num_workers=workers,
            collate_fn=self.collate,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.seed),
            prefetch_factor=4 if workers else None,
            worker_init_fn=ignore_stop_signals,
        )
        self._it = iter(self.wrap(loader) if self.wrap else loader)

    def next(self):
        if self._it is None:
            self._start()
        if self.epoch_done:
            self.epoch, self.batch = self.epoch + 1, 0
        batch = next(self._it)
        self.batch += 1
        return batch

    def close(self) -> None:
        self._it = None  # shuts the workers down


class MultiStream:
    """One batch from each named stream per call; the first stream's epochs are the run's epochs."""

    def __init__(self, streams: dict[str, BatchStream]):
        if not streams:
            raise ValueError("MultiStream needs at least one stream")
        self.streams = dict(streams)
        self.primary = next(iter(self.streams.values()))

    @property
    def batches_per_epoch(self) -> int:
        return self.primary.batches_per_epoch

    @property
    def epoch(self) -> int:
        return self.primary.epoch

    @property
    def batch(self) -> int:
        return self.primary.batch

    @property
    def epoch_done(self) -> bool:
        return self.primary.epoch_done

    def position(self) -> dict[str, tuple[int, int]]:
        return {k: s.position() for k, s in self.streams.items()}

    def seek(self, position: dict[str, Sequence[int]]) -> None:
        for k, s in self.streams.items():
            s.seek(position[k])

    def next(self) -> dict:
        return {k: s.next() for k, s in self.streams.items()}

    def close(self) -> None:
        for s in self.streams.values():
            s.close()
