"""Datasets, transforms and loaders for classification, from the ``data``/``aug`` config sections."""
from __future__ import annotations

import os
from typing import Optional

import torch
from timm.data import create_transform
from torch.utils.data import DataLoader, Subset

from ...data import FashionMNIST, RobustImageFolder, SyntheticClassification
from ...data.errors import DatasetError
from ...engine.sampler import EpochSampler, SeededDataset, ShardedEvalSampler


def _input_size(cfg, size: int):
    return (cfg["model"]["in_chans"], size, size)


def train_transform(cfg):
    d, a = cfg["data"], cfg["aug"]
    return create_transform(
        input_size=_input_size(cfg, d["img_size"]), is_training=True, scale=tuple(a["scale"]),
        ratio=tuple(a["ratio"]), hflip=a["hflip"], color_jitter=a["color_jitter"], auto_augment=a["auto_augment"],
        interpolation=d["interpolation"], mean=tuple(d["mean"]), std=tuple(d["std"]), re_prob=a["reprob"],
        re_mode=a["remode"], re_count=a["recount"])


def eval_transform(cfg, img_size: Optional[int] = None):
    d = cfg["data"]
    size = img_size or d.get("eval_img_size") or d["img_size"]
    return create_transform(input_size=_input_size(cfg, size), is_training=False, interpolation=d["interpolation"],
                            crop_pct=d["crop_pct"], mean=tuple(d["mean"]), std=tuple(d["std"]))


def _subset(ds, n: Optional[int], seed: int):
    """The first ``n`` samples of a seeded shuffle (keeps every class in expectation)."""
    if not n or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed + 12345)
    keep = torch.randperm(len(ds), generator=g)[:n].sort().values.tolist()
    sub = Subset(ds, keep)
    sub.num_classes = ds.num_classes
    sub.base = ds
    return sub


def build_dataset(cfg, split: str, run_dir: Optional[str] = None, img_size: Optional[int] = None,
                  classes=None):
    """split: 'train' or 'val'. Returns a dataset with ``num_classes`` (and ``classes`` for folders)."""
    d = cfg["data"]
    is_train = split == "train"
    kind = d["dataset"]
    if kind == "synthetic":
        size = d["img_size"] if is_train else (img_size or d.get("eval_img_size") or d["img_size"])
        ds = SyntheticClassification(d.get("synthetic_train", 256) if is_train else d.get("synthetic_val", 128),
                                     d["num_classes"], size, cfg["model"]["in_chans"], d.get("synthetic_noise", 0.5),
                                     seed=cfg["train"]["seed"], split=split)
    elif kind == "fashion_mnist":
        tf = train_transform(cfg) if is_train else eval_transform(cfg, img_size)
        ds = FashionMNIST(d.get("root"), "train" if is_train else "test", transform=tf,
                          rgb=cfg["model"]["in_chans"] == 3)
    elif kind == "imagefolder":
        if not d.get("root"):
            raise DatasetError("data.root is not set: pass --data-root DIR (an ImageFolder with "
                               "train/<class>/* and val/<class>/*)")
        tf = train_transform(cfg) if is_train else eval_transform(cfg, img_size)
        log_path = os.path.join(run_dir, f"bad_images_{split}.txt") if run_dir else None
        ds = RobustImageFolder(d["root"], d["train_split"] if is_train else d["val_split"], transform=tf,
                               mode="RGB" if cfg["model"]["in_chans"] == 3 else "L", bad_files_log=log_path,
                               classes=classes)
        if d.get("verify_images"):
            ds.verify()
    else:
        raise DatasetError(f"unknown dataset {kind!r} (imagefolder, fashion_mnist or synthetic)")
    if ds.num_classes != d["num_classes"]:
        raise DatasetError(f"data.num_classes is {d['num_classes']} but the {split} set has {ds.num_classes} "
                           f"classes; pass --set data.num_classes={ds.num_classes}")
    return _subset(ds, d.get("train_subset") if is_train else d.get("val_subset"), cfg["train"]["seed"])


def bad_files(ds):
    base = getattr(ds, "base", ds)
    return list(getattr(base, "bad_files", []))


def train_loader(cfg, ds, rank: int, world: int, pin: bool):
    t = cfg["train"]
    sampler = EpochSampler(len(ds), t["batch_size"], world, rank, seed=t["seed"], shuffle=True,
                           batches_multiple=t["accum_steps"])
    workers = cfg["data"]["num_workers"]
    loader = DataLoader(SeededDataset(ds), batch_size=t["batch_size"], sampler=sampler, num_workers=workers,
                        pin_memory=pin, drop_last=True, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(t["seed"]))
    return loader, sampler


def eval_loader(cfg, ds, rank: int, world: int, pin: bool):
    workers = cfg["data"]["num_workers"]
    return DataLoader(ds, batch_size=cfg["train"]["eval_batch_size"], sampler=ShardedEvalSampler(len(ds), world, rank),
                      num_workers=workers, pin_memory=pin, generator=torch.Generator().manual_seed(0))
