"""Datasets, transforms, the training stream and evaluation loaders for classification (``data``/``aug``).

Three paths:

* ``data.device_augment`` (in-memory data sets): the images live on the device and whole batches are
  augmented there (:mod:`mambaout.data.on_device`); no workers;

and otherwise, chosen by ``data.gpu_prefetch`` (:func:`gpu_prefetch`):

* off (CPU runs): the workers return normalised float images (random erasing included), the loop copies
  each batch to the device;
* on (``auto`` on CUDA): timm's design -- the workers return uint8 CHW images (``create_transform(...,
  use_prefetcher=True)``), ``fast_collate`` batches them, and timm's ``PrefetchLoader`` copies the next batch
  to the GPU on a side stream while the current one trains, then normalises and randomly erases it there. The
  workers skip the float conversion and normalisation, and a quarter of the bytes are pinned and copied.
"""

from __future__ import annotations

import os

import torch
from timm.data import create_transform
from timm.data.loader import PrefetchLoader, fast_collate
from torch.utils.data import DataLoader, Subset

from ...data import FashionMNIST, RobustImageFolder, SyntheticClassification
from ...data.augment import harden
from ...data.on_device import BatchAugment, TensorBatches, TensorStream, resize_normalize
from ...data.sampler import ShardedEvalSampler
from ...data.stream import BatchStream, ignore_stop_signals
from ...errors import ConfigError, DatasetError

HOLDOUT_SEED = 20240513  # the held-out validation images are the same for every training seed


def _input_size(cfg, size: int):
    return (cfg.model.in_chans, size, size)


def gpu_prefetch(cfg, device: torch.device) -> bool:
    """``data.gpu_prefetch``: ``auto`` (on when the device is CUDA), true or false. ``true`` on a CPU runs the
    same prefetcher code, normalising in the main process (useful for tests only)."""
    value = cfg.data.gpu_prefetch
    return device.type == "cuda" if value == "auto" else value


def train_transform(cfg, uint8: bool = False):
    """uint8: end with uint8 CHW tensors, not normalised, no random erasing (the prefetcher does both)."""
    d, a = cfg.data, cfg.aug
    transform = create_transform(
        input_size=_input_size(cfg, d.img_size),
        is_training=True,
        scale=tuple(a.scale),
        ratio=tuple(a.ratio),
        hflip=a.hflip,
        color_jitter=a.color_jitter,
        auto_augment=a.auto_augment,
        interpolation=d.interpolation,
        mean=tuple(d.mean),
        std=tuple(d.std),
        re_prob=a.reprob,
        re_mode=a.remode,
        re_count=a.recount,
        use_prefetcher=uint8,
    )
    return harden(transform)  # timm's posterize at the top RandAugment level fails under Pillow >= 13


def eval_transform(cfg, img_size: int | None = None, uint8: bool = False):
    d = cfg.data
    size = img_size or d.eval_img_size or d.img_size
    return create_transform(
        input_size=_input_size(cfg, size),
        is_training=False,
        interpolation=d.interpolation,
        crop_pct=d.crop_pct,
        mean=tuple(d.mean),
        std=tuple(d.std),
        use_prefetcher=uint8,
    )


def source_split(cfg, split: str) -> str:
    """The split a split's images come from: with ``data.holdout`` the validation images are training ones."""
    return "train" if split == "train" or cfg.data.holdout else "val"


def split_indices(cfg, split: str, n: int) -> list[int] | None:
    """Indices of ``split``'s samples among the ``n`` of its source split (None: all of them).

    ``data.holdout`` k: a fixed shuffle (the same for every seed) of the training split gives k validation
    images and the rest train. ``data.train_subset``/``val_subset`` then keep the first N of a seeded shuffle
    (every class in expectation)."""
    d = cfg.data
    pool = None
    if d.holdout:
        if d.holdout >= n:
            raise ConfigError(f"data.holdout {d.holdout} leaves no training images (the split has {n})")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
        pool = (perm[d.holdout :] if split == "train" else perm[: d.holdout]).sort().values.tolist()
    limit = d.train_subset if split == "train" else d.val_subset
    size = n if pool is None else len(pool)
    if limit and limit < size:
        g = torch.Generator().manual_seed(cfg.train.seed + 12345)
        keep = torch.randperm(size, generator=g)[:limit].sort().values.tolist()
        pool = keep if pool is None else [pool[i] for i in keep]
    return pool


def _select(cfg, split: str, ds):
    idx = split_indices(cfg, split, len(ds))
    if idx is None:
        return ds
    sub = Subset(ds, idx)
    sub.num_classes = ds.num_classes
    sub.base = ds
    return sub


def build_dataset(
    cfg, split: str, run_dir: str | None = None, img_size: int | None = None, classes=None, uint8: bool = False
):
    """split: 'train' or 'val'. Returns a dataset with ``num_classes`` (and ``classes`` for folders).
    uint8: samples are uint8 CHW images, not normalised (for the prefetcher, see :func:`gpu_prefetch`)."""
    d = cfg.data
    is_train = split == "train"
    from_train = source_split(cfg, split) == "train"
    if d.dataset == "synthetic":
        size = d.img_size if is_train else (img_size or d.eval_img_size or d.img_size)
        ds = SyntheticClassification(
            d.synthetic_train if from_train else d.synthetic_val,
            d.num_classes,
            size,
            cfg.model.in_chans,
            d.synthetic_noise,
            seed=cfg.train.seed,
            split="train" if from_train else "val",
            uint8=uint8,
            mean=d.mean,
            std=d.std,
        )
    elif d.dataset == "fashion_mnist":
        tf = train_transform(cfg, uint8) if is_train else eval_transform(cfg, img_size, uint8)
        ds = FashionMNIST(d.root, "train" if from_train else "test", transform=tf, rgb=cfg.model.in_chans == 3)
    else:
        if not d.root:
            raise DatasetError(
                "data.root is not set: pass --data-root DIR (an ImageFolder with train/<class>/* and val/<class>/*)"
            )
        tf = train_transform(cfg, uint8) if is_train else eval_transform(cfg, img_size, uint8)
        log_path = os.path.join(run_dir, f"bad_images_{split}.txt") if run_dir else None
        ds = RobustImageFolder(
            d.root,
            d.train_split if from_train else d.val_split,
            transform=tf,
            mode="RGB" if cfg.model.in_chans == 3 else "L",
            bad_files_log=log_path,
            classes=classes,
            training=is_train,
        )
        if d.verify_images:
            ds.verify()
    if ds.num_classes != d.num_classes:
        raise DatasetError(
            f"data.num_classes is {d.num_classes} but the {split} set has {ds.num_classes} "
            f"classes; pass --set data.num_classes={ds.num_classes}"
        )
    return _select(cfg, split, ds)


def bad_files(ds):
    base = getattr(ds, "base", ds)
    return list(getattr(base, "bad_files", []))


def train_stream(cfg, ds, rank: int, world: int, pin: bool, prefetch_to: torch.device | None = None):
    """The resumable training stream. prefetch_to: a device for timm's PrefetchLoader (``ds`` must then return
    uint8 images), which normalises and randomly erases there."""
    t, workers = cfg.train, cfg.data.num_workers
    wrap = None
    if prefetch_to is not None:
        a = cfg.aug
        # synthetic samples get no augmentation on the CPU path (no transforms): none here either
        re_prob = 0.0 if cfg.data.dataset == "synthetic" else a.reprob

        def wrap(loader):
            return _prefetcher(cfg, loader, prefetch_to, re_prob=re_prob, re_mode=a.remode, re_count=a.recount)

    return BatchStream(
        ds,
        t.batch_size,
        seed=t.seed,
        rank=rank,
        world_size=world,
        num_workers=workers,
        collate=fast_collate if prefetch_to is not None else None,
        pin_memory=pin,
        accum_steps=t.accum_steps,
        wrap=wrap,
    )


def eval_loader(cfg, ds, rank: int, world: int, pin: bool, prefetch_to: torch.device | None = None):
    workers = cfg.data.num_workers
    loader = DataLoader(
        ds,
        batch_size=cfg.train.eval_batch_size,
        sampler=ShardedEvalSampler(len(ds), world, rank),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,  # evaluated every epoch: no worker start-up each time
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=ignore_stop_signals,  # SIGTERM/Ctrl-C: the main process saves and stops (engine.trainer)
        **({"collate_fn": fast_collate} if prefetch_to is not None else {}),
    )
    # timm 1.0.29's PrefetchLoader fails on an empty loader (a rank with no validation samples): nothing to
    # normalise there anyway.
    return _prefetcher(cfg, loader, prefetch_to) if prefetch_to is not None and len(loader) else loader


def _prefetcher(cfg, loader, device, **erasing):
    d = cfg.data
    return PrefetchLoader(
        loader, mean=tuple(d.mean), std=tuple(d.std), channels=cfg.model.in_chans, device=device, **erasing
    )


def to_device(images, targets, device: torch.device):
    """The batch on ``device``. The prefetcher's batches are already there, made on its side stream;
    ``record_stream`` tells the caching allocator that this stream reads them too, or timm 1.0.29's
    PrefetchLoader (1.0.31 guards it itself) may write the next batch into their memory as soon as Python drops
    them, while kernels queued here still read them -- likely once the loop no longer syncs every step."""
    if images.device.type == "cuda":
        stream = torch.cuda.current_stream(images.device)
        images.record_stream(stream)
        targets.record_stream(stream)
        return images, targets
    return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


# --- data.device_augment: the images on the device, augmented a batch at a time there ------------------


def _device_tensors(cfg, split: str, device: torch.device):
    """uint8 (N, C, H, W) images and int64 labels of ``split`` on ``device`` (Fashion-MNIST)."""
    ds = FashionMNIST(cfg.data.root, "train" if source_split(cfg, split) == "train" else "test")
    images, targets = torch.from_numpy(ds.images.copy()), ds.targets
    idx = split_indices(cfg, split, len(ds))
    if idx is not None:
        images, targets = images[idx], targets[idx]
    images = images.unsqueeze(1).expand(-1, cfg.model.in_chans, -1, -1).contiguous()
    return images.to(device), targets.to(device)


def device_train_stream(cfg, device: torch.device, rank: int, world: int) -> TensorStream:
    d, a, t = cfg.data, cfg.aug, cfg.train
    images, targets = _device_tensors(cfg, "train", device)
    augment = BatchAugment(d.img_size, d.mean, d.std, a.scale, a.ratio, a.hflip, a.reprob)
    return TensorStream(images, targets, t.batch_size, augment, t.seed, rank, world, t.accum_steps)


def device_eval_batches(cfg, device: torch.device, rank: int, world: int, img_size: int | None = None):
    d = cfg.data
    images, targets = _device_tensors(cfg, "val", device)
    images = resize_normalize(images, img_size or d.eval_img_size or d.img_size, d.mean, d.std)
    return TensorBatches(images, targets, cfg.train.eval_batch_size, rank, world)
