"""Data held on the device: batch augmentation (crop, flip, normalise, erase) and the resumable TensorStream."""

import pytest
import torch
from torch.utils.data import TensorDataset

from mambaout.data.on_device import BatchAugment, TensorBatches, TensorStream, resize_normalize
from mambaout.data.stream import BatchStream

MEAN, STD = [0.3], [0.35]


def _images(n=6, c=1, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _identity(size, hflip=0.0, mean=MEAN, std=STD):
    return BatchAugment(size, mean, std, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=hflip, reprob=0.0)


# --- BatchAugment -------------------------------------------------------------------------------------


@pytest.mark.parametrize("src, size, c", [(28, 32, 1), (16, 16, 3)])
def test_identity_crop_is_resize_normalize_and_hflip_its_mirror(src, size, c):
    mean, std = ([0.3], [0.35]) if c == 1 else ([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    x = _images(5, c, src)
    ref = resize_normalize(x, size, mean, std)
    assert ref.shape == (5, c, size, size) and ref.dtype == torch.float32
    out = _identity(size, 0.0, mean, std)(x, _gen(0))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    mirrored = _identity(size, 1.0, mean, std)(x, _gen(0))
    torch.testing.assert_close(mirrored, ref.flip(-1), rtol=0, atol=1e-5)
    assert x.dtype == torch.uint8  # the input batch is left alone


def test_flip_is_drawn_per_image():
    x = _images(64, 1, 16)
    ref = resize_normalize(x, 16, MEAN, STD)
    out = _identity(16, 0.5)(x, _gen(3))
    plain = (out - ref).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - ref.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert (plain | mirrored).all()  # every image is itself or its mirror image
    assert 10 < int(mirrored.sum()) < 54


def test_same_seed_same_batch_other_seed_other_batch():
    aug = BatchAugment(32, MEAN, STD, scale=(0.08, 1.0), hflip=0.5, reprob=0.5)
    x = _images(8)
    a, b, c = aug(x, _gen(7)), aug(x, _gen(7)), aug(x, _gen(8))
    assert a.shape == (8, 1, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])
def test_crop_geometry_on_ramps(ratio):
    """Bilinear resampling reproduces a linear ramp exactly: the slope of the output gives the crop's side."""
    size, area = 32, 0.25
    ramp = torch.arange(size, dtype=torch.uint8) * 8  # 0..248 along one axis
    imgs = torch.stack([ramp.view(1, -1).expand(size, size), ramp.view(-1, 1).expand(size, size)]).unsqueeze(1)
    aug = BatchAugment(size, [0.0], [1.0], scale=(area, area), ratio=(ratio, ratio), hflip=0.0)
    for seed in range(4):
        out = aug(imgs, _gen(seed)) * 255  # in ramp units
        w, h = (area * ratio) ** 0.5, (area / ratio) ** 0.5  # fractions of the image's width and height
        inner = slice(3, size - 3)  # away from the border, where sampling may clamp
        dx = out[0, 0, :, 1:].diff(dim=-1)[inner, inner]
        dy = out[1, 0, 1:, :].diff(dim=-2)[inner, inner]
        torch.testing.assert_close(dx, torch.full_like(dx, 8 * w), rtol=0, atol=1e-3)
        torch.testing.assert_close(dy, torch.full_like(dy, 8 * h), rtol=0, atol=1e-3)
        assert out.min() >= -1e-3 and out.max() <= 248 + 1e-3  # inside the image


def _erased(x, out):
    return (out != x).any(1)  # (B, H, W): the pixels erasing changed (every channel the same rectangle)


@pytest.mark.parametrize("area", [(0.02, 1 / 3), (0.1, 0.1)])
def test_erasing_one_rectangle_per_image_in_the_area_range(area):
    b, c, hh, ww = 32, 2, 24, 32
    aug = BatchAugment(hh, [0.0, 0.0], [1.0, 1.0], reprob=1.0, erase_area=area)
    x = torch.full((b, c, hh, ww), 100.0)  # normal noise never hits 100
    out = aug.erase(x, _gen(0))
    changed = _erased(x, out)
    assert torch.equal((out != x).all(1), changed)  # all channels of the rectangle
    for i in range(b):
        rows = changed[i].any(1).nonzero().flatten()
        cols = changed[i].any(0).nonzero().flatten()
        assert len(rows) and len(cols), i
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        box = torch.zeros(hh, ww, dtype=torch.bool)
        box[top:bottom, left:right] = True
        assert torch.equal(changed[i], box), i  # one axis-aligned rectangle, nothing else
        h, w = bottom - top, right - left
        # sides are rounded (and kept inside the image): the drawn area lies within half a pixel of each side
        assert (h + 0.5) * (w + 0.5) >= area[0] * hh * ww - 1e-6, (h, w)
        assert (h - 0.5) * (w - 0.5) <= area[1] * hh * ww + 1e-6, (h, w)
    noise = out[changed.unsqueeze(1).expand_as(out)]
    assert abs(float(noise.mean())) < 0.2 and 0.8 < float(noise.std()) < 1.2  # per-pixel normal noise


def test_no_erasing_at_reprob_zero_and_some_at_one_half():
    x = torch.full((64, 1, 16, 16), 100.0)
    assert torch.equal(BatchAugment(16, MEAN, STD, reprob=0.0).erase(x, _gen(0)), x)
    images = _images(8, 1, 16)
    ident = _identity(16)  # reprob 0: __call__ does not erase
    torch.testing.assert_close(ident(images, _gen(1)), resize_normalize(images, 16, MEAN, STD), rtol=0, atol=1e-5)
    half = BatchAugment(16, MEAN, STD, reprob=0.5).erase(x, _gen(0))
    n = int(_erased(x, half).flatten(1).any(1).sum())
    assert 16 < n < 48


# --- TensorStream -----------------------------------------------------------------------------------


def _index_stream(n, batch, seed=0, rank=0, world=1, accum=1, augment=None):
    """A stream whose targets are the sample indices."""
    images = _images(n, 1, 8, seed=1)
    return TensorStream(
        images, torch.arange(n), batch, augment or (lambda x, g: x.float()), seed, rank, world, accum_steps=accum
    )


@pytest.mark.parametrize("batch, world, accum", [(4, 1, 1), (3, 2, 1), (2, 1, 3)])
def test_order_and_positions_match_batch_stream(batch, world, accum):
    n = 26
    images = _images(n, 1, 8, seed=1)
    for rank in range(world):
        ts = TensorStream(images, torch.arange(n), batch, lambda x, g: x, 5, rank, world, accum_steps=accum)
        bs = BatchStream(TensorDataset(images, torch.arange(n)), batch, 5, rank, world, accum_steps=accum)
        assert ts.batches_per_epoch == bs.batches_per_epoch
        assert ts.position() == bs.position() == (0, 0)
        for _ in range(3 * ts.batches_per_epoch + 1):  # three epochs and one batch
            (xt, yt), (xb, yb) = ts.next(), bs.next()
            assert torch.equal(yt, yb) and torch.equal(xt, xb)
            assert ts.position() == bs.position() and ts.epoch_done == bs.epoch_done
        assert ts.position() == (3, 1)


def test_position_at_epoch_end_and_seek_there():
    ts = _index_stream(10, 3)
    bs = BatchStream(TensorDataset(torch.zeros(10), torch.arange(10)), 3)
    for _ in range(3):
        ts.next(), bs.next()
    assert ts.epoch_done and ts.position() == bs.position() == (1, 0)  # the epoch's last batch: the next epoch
    following = ts.next()[1]
    for pos in ((1, 0), (0, 3)):  # (0, 3): epoch 0 with all its batches done
        again, other = _index_stream(10, 3), BatchStream(TensorDataset(torch.zeros(10), torch.arange(10)), 3)
        again.seek(pos)
        other.seek(pos)
        assert again.position() == other.position() == (1, 0)
        assert torch.equal(again.next()[1], following) and torch.equal(other.next()[1], following)
        assert again.position() == other.position() == (1, 1)


def test_seek_mid_epoch_reproduces_the_uninterrupted_batches():
    aug = BatchAugment(12, MEAN, STD, scale=(0.3, 1.0), hflip=0.5, reprob=0.5)
    ref = _index_stream(22, 5, seed=3, augment=aug)  # 4 batches an epoch
    batches = [ref.next() for _ in range(10)]
    assert not torch.equal(batches[0][0], batches[4][0])
    for cut in (2, 3, 4, 6):  # within the first epoch, at its end, at the start of and within the second
        resumed = _index_stream(22, 5, seed=3, augment=aug)
        part = [resumed.next() for _ in range(cut)]
        pos = resumed.position()
        fresh = _index_stream(22, 5, seed=3, augment=aug)
        fresh.seek(pos)
        for (a, ya), (b, yb) in zip(batches[cut:], [fresh.next() for _ in range(10 - cut)]):
            assert torch.equal(ya, yb) and torch.equal(a, b), (cut, pos)
        assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, part))
    other_seed = _index_stream(22, 5, seed=4, augment=aug)
    assert not torch.equal(other_seed.next()[1], batches[0][1])


def test_two_ranks_partition_the_epoch_and_interleave_the_single_process_stream():
    aug = BatchAugment(8, MEAN, STD, scale=(0.3, 1.0), hflip=0.5, reprob=0.5)
    single = _index_stream(41, 4, seed=2, augment=aug)  # 10 batches an epoch, one sample left out
    ranks = [_index_stream(41, 4, seed=2, rank=r, world=2, augment=aug) for r in range(2)]
    assert single.batches_per_epoch == 10 and ranks[0].batches_per_epoch == 5
    for epoch in range(2):
        seen = []
        for k in range(5):
            for r in range(2):
                x, y = ranks[r].next()
                sx, sy = single.next()  # chunk 2k + r: the same samples and the same augmentation
                assert torch.equal(y, sy) and torch.equal(x, sx), (epoch, k, r)
                seen += y.tolist()
        assert len(seen) == len(set(seen)) == 40  # disjoint, and every sample but one
        assert all(s.position() == (epoch + 1, 0) for s in [*ranks, single])


def test_tensor_batches_shards_cover_every_sample_once():
    n = 23
    images, targets = _images(n, 1, 4), torch.arange(n)
    seen = []
    for world in (1, 3):
        seen = []
        for rank in range(world):
            tb = TensorBatches(images, targets, 4, rank, world)
            batches = list(tb)
            assert len(batches) == len(tb) and all(len(y) <= 4 for _, y in batches)
            for x, y in batches:
                assert torch.equal(x, images[y])
                seen += y.tolist()
        assert sorted(seen) == list(range(n))
    assert list(TensorBatches(images[:0], targets[:0], 4)) == [] and len(TensorBatches(images[:0], targets[:0], 4)) == 0
