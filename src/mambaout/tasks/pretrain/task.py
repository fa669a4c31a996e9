"""Masked-image pre-training (SimMIM or FCMAE) as a task of the engine.

from mambaout.tasks.pretrain import resolve_config, train
cfg = resolve_config("tiny", flags={"model.name": "mamba_femto", "model.method": "fcmae"})
summary = train(cfg)          # run folder: model.safetensors (encoder.* + decoder), last.pt, metrics ...
classifier = create_model("mamba_femto", pretrained=f"{summary['run_dir']}/model.safetensors", ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ...engine import config as C
from ...engine import distributed
from ...engine.task import Parts, Task
from ...engine.trainer import train as engine_train
from ...models.hierarchical import HierarchicalNet
from ...registry import create_model
from ..classification import data
from .config import PretrainConfig
from .decoders import MaskedImageModel, masked_loss
from .masking import check_sparse_support, random_mask

KIND = "pretrain"
EVAL_MASK_SEED = 0  # the same masks at every evaluation


def resolve_config(
    preset: str = "fcmae",
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> PretrainConfig:
    cfg = C.resolve(PretrainConfig, KIND, preset, flags, sets, device)
    cfg.validate()
    return cfg


def build_encoder(cfg: PretrainConfig):
    """The zoo model without its head (the keys a classifier of the same name has, minus ``head.*``)."""
    m = cfg.model
    with torch.device("meta"):  # the family first (isotropic models take other arguments)
        probe = create_model(m.name, num_classes=0)
    if not isinstance(probe, HierarchicalNet):
        check_sparse_support(probe, m.name)
    encoder = create_model(
        m.name, num_classes=0, in_chans=m.in_chans, stem_stride=m.stem_stride, drop_path_rate=m.drop_path
    )
    if m.method == "fcmae" or not isinstance(encoder, HierarchicalNet):
        check_sparse_support(encoder, m.name)  # one line: not a hierarchical model, or a mixer FCMAE cannot mask
    encoder.head = None  # no classifier: the encoder's state dict is the zoo model's minus head.*
    cfg.validate(encoder.size_divisor)
    return encoder


def build_model(cfg: PretrainConfig) -> MaskedImageModel:
    return MaskedImageModel(build_encoder(cfg), cfg.model.method, cfg.model.decoder_dim, cfg.model.name)


def mask_grid(cfg: PretrainConfig, model: MaskedImageModel) -> tuple[int, int]:
    n = cfg.data.img_size // (cfg.model.mask_patch or model.stride)
    return n, n


class PretrainTask(Task):
    name = KIND
    command = "pretrain"
    best_metric = ""  # lower loss is better; the engine's best.pt follows a higher-is-better metric: none

    def run_name(self) -> str:
        return f"{self.cfg.model.method}-{self.cfg.model.name}-{self.cfg.data.dataset}"

    def build(self, run) -> Parts:
        cfg, info = self.cfg, run.info
        model = build_model(cfg)  # checks the family and the patch sizes before any data is read
        self.grid = mask_grid(cfg, model)
        main_dir = run.run_dir if run.main else None
        self.train_set = data.build_dataset(cfg, "train", main_dir)
        self.val_set = data.build_dataset(cfg, "val", main_dir)
        pin = run.device.type == "cuda"
        stream = data.train_stream(cfg, self.train_set, info.rank, info.world_size, pin)
        self.val_loader = data.eval_loader(cfg, self.val_set, info.rank, info.world_size, pin)
        m = cfg.model
        meta = dict(model=m.name, task=KIND, method=m.method, in_chans=m.in_chans, stem_stride=m.stem_stride)
        return Parts(model, stream, cfg.train.batch_size, weights_metadata=meta)

    def _mask(self, images, generator=None):
        return random_mask(images.shape[0], self.grid, self.cfg.model.mask_ratio, images.device, generator)

    def train_step(self, model, batch, run) -> dict[str, torch.Tensor]:
        images = batch[0].to(run.device, non_blocking=True)  # (images, labels): labels unused
        err, count = masked_loss(model, images, self._mask(images), self.cfg.model.norm_pix)
        return {"loss": err / count}

    @torch.no_grad()
    def evaluate(self, model, run) -> dict[str, float]:
        model.eval()
        gen = torch.Generator(device=run.device).manual_seed(EVAL_MASK_SEED)
        total = torch.zeros(2, dtype=torch.float64, device=run.device)
        for images, _ in self.val_loader:
            images = images.to(run.device)
            with run.autocast():
                err, count = masked_loss(model, images, self._mask(images, gen), self.cfg.model.norm_pix)
            total += torch.stack([err.double(), count.double()])
        distributed.all_reduce_sum(total)
        return {"loss": (total[0] / total[1].clamp(min=1)).item()}


def train(
    cfg: PretrainConfig | None = None,
    resume: str | None = None,
    quiet: bool = False,
    sets: Iterable[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    if_exists: str = "error",
) -> dict:
    """Pre-train from ``cfg`` or continue the run saved in ``resume``; returns the run's summary."""
    return engine_train(PretrainTask, PretrainConfig, cfg, resume, quiet, sets, flags, if_exists=if_exists)
