"""One backbone, one or more heads: classification, semantic segmentation (UperNet), detection (Mask R-CNN).

Each training step draws one batch per task (from that task's own dataset) and minimises
``sum_t weight_t * loss_t``; the backbone gets every task's gradient. The detector wraps the very same
backbone module (its FPN and RoI heads are its own), so weights are shared, not copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dense_backbone import DenseBackbone
from .mask_rcnn import mask_rcnn_on
from .upernet import UperNet


class ClassificationHead(nn.Module):
    """Global average pool of the last stage -> LayerNorm -> Linear."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(feat.mean((2, 3))))


class MultiTaskModel(nn.Module):
    TASKS = ("classification", "segmentation", "detection")

    def __init__(self, backbone: DenseBackbone, heads: dict[str, dict], weights: dict[str, float] | None = None):
        super().__init__()
        unknown = set(heads) - set(self.TASKS)
        if unknown or not heads:
            raise ValueError(f"multitask heads must be among {self.TASKS}, got {sorted(heads)}")
        self.backbone = backbone
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in heads}
        self.heads = nn.ModuleDict()
        if "classification" in heads:
            self.heads["classification"] = ClassificationHead(
                backbone.channels[-1], heads["classification"]["num_classes"]
            )
        if "segmentation" in heads:
            h = heads["segmentation"]
            seg = UperNet(
                backbone,
                h["num_classes"],
                h.get("channels", 512),
                h.get("aux_channels", 256),
                h.get("aux_weight", 0.4),
                h.get("aux", True),
                avg_non_ignore=h.get("avg_non_ignore", False),
            )
            self.heads["segmentation"] = seg
        if "detection" in heads:
            h = dict(heads["detection"])
            self.heads["detection"] = mask_rcnn_on(backbone, h.pop("num_classes"), **h)

    @property
    def tasks(self):
        return list(self.heads.keys())

    def losses(self, batches: dict[str, tuple]) -> dict[str, torch.Tensor]:
        """``batches``: task -> (images, targets). Returns the weighted total under 'loss', each task's total
        under 'loss_<task>' and the heads' own parts (UperNet's loss_seg/loss_aux, Mask R-CNN's five)."""
        out = {}
        total = 0.0
        for task, (images, targets) in batches.items():
            if task == "classification":
                parts = {"loss": F.cross_entropy(self.heads[task](self.backbone(images)[-1]), targets)}
            elif task == "segmentation":
                parts = dict(self.heads[task](images, target=targets))
            else:
                parts = dict(self.heads[task](list(images), list(targets)))
                parts["loss"] = sum(parts.values())
            loss = parts.pop("loss")
            out.update(parts)
            out[f"loss_{task}"] = loss
            total = total + self.weights[task] * loss
        out["loss"] = total
        return out

    def forward(self, batches: dict[str, tuple]) -> dict[str, torch.Tensor]:
        return self.losses(batches)

    @torch.no_grad()
    def predict(self, task: str, images):
        if task == "classification":
            return self.heads[task](self.backbone(images)[-1])
        if task == "segmentation":
            return self.heads[task](images)
        return self.heads[task](list(images))
