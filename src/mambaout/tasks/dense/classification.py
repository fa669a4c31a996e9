"""The classification head of a multi-task dense run (global pooling of the last stage): synthetic data, top-1."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ...data.sampler import ShardedEvalSampler
from ...data.synthetic import SyntheticClassification
from ...engine import distributed
from .config import ClassificationTask

MAIN_METRIC = "top1"
collate = None
group_ids = None


def datasets(sec: ClassificationTask, seed: int):
    d = sec.data
    return tuple(
        SyntheticClassification(n, d.num_classes, d.img_size, seed=seed, split=split)
        for n, split in ((d.num_samples, "train"), (d.num_val, "val"))
    )


def head_kwargs(sec: ClassificationTask) -> dict:
    return dict(num_classes=sec.num_classes)


def to_device(batch, device):
    images, targets = batch
    return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


@torch.no_grad()
def evaluate_task(model, dataset, sec: ClassificationTask, run, multi_scale: bool = False) -> dict[str, float]:
    """Top-1 of the multi-task model's classification head (counts all-reduced over ranks)."""
    model.eval()
    correct = torch.zeros(2, dtype=torch.float64, device=run.device)
    sampler = ShardedEvalSampler(len(dataset), distributed.world_size(), distributed.rank())
    for x, y in DataLoader(dataset, batch_size=64, sampler=sampler):
        pred = model.predict("classification", x.to(run.device)).argmax(1)
        correct += torch.stack(
            [
                (pred == y.to(run.device)).sum().double(),
                torch.tensor(float(len(y)), dtype=torch.float64, device=run.device),
            ]
        )
    distributed.all_reduce_sum(correct)
    return {"top1": 100.0 * (correct[0] / correct[1].clamp(min=1)).item()}
