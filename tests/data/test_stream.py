"""The resumable training stream: positions, exact continuation, epochs back to back, grouped batches."""

import pytest
import torch
from torch.utils.data import Dataset

from mambaout.data.sampler import EpochSampler
from mambaout.data.stream import BatchStream, MultiStream, SpanBatchSampler
from mambaout.errors import DatasetError


class Noisy(Dataset):
    """Index plus a random number: equal items mean the same sample with the same augmentation draw."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.tensor([float(i), torch.rand(()).item()])


def _take(stream, n):
    return [stream.next() for _ in range(n)]


def test_positions_and_exact_continuation():
    ref = BatchStream(Noisy(), batch_size=3, seed=4)
    assert ref.batches_per_epoch == 3  # 10 samples, batch 3: the last partial batch is dropped
    first = _take(ref, 7)
    assert ref.position() == (2, 1)
    again = BatchStream(Noisy(), batch_size=3, seed=4)
    _take(again, 2)
    assert again.position() == (0, 2)
    _take(again, 1)
    assert again.epoch_done and again.position() == (1, 0)  # the epoch's last batch: position is the next epoch
    resumed = BatchStream(Noisy(), batch_size=3, seed=4)
    resumed.seek((1, 0))
    for a, b in zip(first[3:], _take(resumed, 4)):
        assert torch.equal(a, b)
    epochs = [sorted(int(v) for b in first[k : k + 3] for v in b[:, 0]) for k in (0, 3)]
    assert len(set(epochs[0])) == 9 and first[0][:, 0].tolist() != first[3][:, 0].tolist()  # reshuffled


def test_workers_and_accumulation_keep_the_order():
    one = BatchStream(Noisy(), batch_size=2, seed=1, accum_steps=2)
    assert one.batches_per_epoch == 4  # an epoch ends on a full optimizer step (2 micro-batches)
    workers = BatchStream(Noisy(), batch_size=2, seed=1, accum_steps=2, num_workers=2)
    for a, b in zip(_take(one, 9), _take(workers, 9)):
        assert torch.equal(a, b)


def test_multistream_positions():
    multi = MultiStream({"a": BatchStream(Noisy(), 5, seed=0), "b": BatchStream(Noisy(), 2, seed=0)})
    _take(multi, 3)
    assert multi.position() == {"a": (1, 1), "b": (0, 3)} and multi.batches_per_epoch == 2
    other = MultiStream({"a": BatchStream(Noisy(), 5, seed=0), "b": BatchStream(Noisy(), 2, seed=0)})
    other.seek(multi.position())
    assert all(torch.equal(x, y) for x, y in zip(multi.next().values(), other.next().values()))


def test_grouped_batches_keep_groups_and_counts():
    groups = [0, 1, 0, 1, 0, 0, 1, 0]
    spans = SpanBatchSampler(EpochSampler(8, 2, shuffle=False), 2, epoch=0, start=0, group_ids=groups)
    batches = [[i for i, _ in b] for b in spans.epoch_batches(0)]
    assert len(batches) == 4 and sorted(i for b in batches for i in b) == list(range(8))
    assert all(len({groups[i] for i in b}) == 1 for b in batches[:3])  # leftovers share the last batch


def test_data_set_smaller_than_one_update_is_a_user_error():
    """A traceback (ValueError) before; the CLI prints a MambaoutError as one line and exits with code 2."""
    with pytest.raises(DatasetError, match=r"has 5 samples, fewer than one optimizer step takes \(8 = batch 4 x 1"):
        EpochSampler(5, 4, batches_multiple=2)
    assert EpochSampler(8, 4, batches_multiple=2).batches_per_epoch == 2
