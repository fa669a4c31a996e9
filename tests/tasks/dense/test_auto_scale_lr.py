"""auto_scale_lr (mmengine): off by default; when enabled lr and the warm-up start scale by global batch / 16."""

import pytest

from mambaout.data.shapes import write_ade_shapes
from mambaout.errors import ConfigError
from mambaout.tasks.dense.config import scale_lr
from mambaout.tasks.dense.task import resolve_config


def test_scale_lr_off_by_default_and_linear_when_enabled():
    cfg = resolve_config("detection", "coco_maskrcnn_1x")
    assert (cfg.auto_scale_lr.enable, cfg.auto_scale_lr.base_batch_size) == (False, 16)
    assert scale_lr(cfg, 16) is None
    note = scale_lr(cfg, 8)
    assert cfg.optim.lr == 1e-4 and "differs from the recipe's 16" in note  # off: said, not applied
    cfg = resolve_config("detection", "coco_maskrcnn_1x", sets=["auto_scale_lr.enable=true"])
    note = scale_lr(cfg, 8)
    assert cfg.optim.lr == pytest.approx(5e-5) and cfg.sched.warmup_lr == pytest.approx(5e-8)
    assert note.startswith("auto_scale_lr: global batch 8 vs 16: lr 0.0001 -> 5e-05")
    cfg = resolve_config("segmentation", "ade20k_upernet_160k", sets=["auto_scale_lr.enable=true"])
    scale_lr(cfg, 32)
    assert cfg.optim.lr == pytest.approx(2e-4) and cfg.sched.min_lr == 0.0
    with pytest.raises(ConfigError, match="auto_scale_lr needs optim.lr"):
        resolve_config("segmentation", "ade20k_upernet_160k", sets=["auto_scale_lr.enable=true", "optim.lr=null"])


def test_a_run_scales_its_lr_when_it_builds(tmp_path, caplog):
    """DenseTask.build applies it with the run's global batch (per-process batch x processes x accumulation)."""
    from mambaout.engine.distributed import DistInfo
    from mambaout.engine.trainer import Run
    from mambaout.tasks.dense.task import DenseTask

    root = write_ade_shapes(str(tmp_path / "ade"), 8, 1, (32, 32))
    sets = ["train.batch_size=2", "train.accum_steps=2", "auto_scale_lr.enable=true"]
    flags = {"tasks.segmentation.data.root": root}
    for resuming, lr in ((False, 1e-3 * 2 * 2 * 2 / 16), (True, 1e-3)):
        cfg = resolve_config("segmentation", "synthetic_shapes", sets=sets, flags=flags)
        with caplog.at_level("INFO", logger="mambaout"):
            DenseTask(cfg).build(Run(cfg, DistInfo(world_size=2), "", quiet=True, resuming=resuming))
        assert cfg.optim.lr == pytest.approx(lr)  # a resumed run keeps the lr it saved
    assert caplog.text.count("auto_scale_lr: global batch 8 vs 16: lr 0.001 -> 0.0005") == 1
