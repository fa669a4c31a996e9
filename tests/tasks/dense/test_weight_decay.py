"""Issue #18 item 3: the dense presets' weight-decay groups follow mmdet/mmseg's Swin/ConvNeXt rule (no decay on
names with 'norm', on biases and on every 1-D parameter, BatchNorm by type; the SSM's A_log/D flagged), by name."""

import pytest
import torch

from mambaout.engine.optim import build_optimizer
from mambaout.tasks.dense.task import resolve_config


def _no_decay(cfg, model) -> dict[str, bool]:
    opt, _ = build_optimizer(cfg.optim, model, 16)
    ids = {id(p): g["weight_decay"] == 0.0 for g in opt.param_groups for p in g["params"]}
    return {n: ids[id(p)] for n, p in model.named_parameters()}


def _check(groups: dict[str, bool]):
    for name, exempt in groups.items():
        expect = "norm" in name or name.endswith(".bias") or name.endswith(".gamma")
        assert exempt == expect, name


def test_upernet_preset_exempts_norms_and_biases():
    from mambaout.models.upernet import build_upernet

    cfg = resolve_config("segmentation", "ade20k_upernet_160k")
    model = build_upernet("mambaout_test", num_classes=4, channels=16, aux_channels=8)
    groups = _no_decay(cfg, model)
    _check({n: e for n, e in groups.items() if not n.startswith(("decode_head", "auxiliary_head"))})
    # named by the backbone: LayerNorms and biases exempt, conv/linear weights decayed
    assert groups["backbone.body.stages.0.blocks.0.norm.weight"] and groups["backbone.norms.0.bias"]
    assert groups["backbone.body.stem.conv1.bias"] and not groups["backbone.body.stem.conv1.weight"]
    assert not groups["backbone.body.stages.0.blocks.0.fc1.weight"]
    # the heads' BatchNorms (nn.Sequential index '1', as mmcv's ConvModule names them 'bn'): exempt by type
    for n in ("decode_head.bottleneck.1.weight", "decode_head.bottleneck.1.bias", "auxiliary_head.convs.1.weight"):
        assert groups[n], n
    assert not groups["decode_head.bottleneck.0.weight"] and not groups["decode_head.conv_seg.weight"]
    assert groups["decode_head.conv_seg.bias"] and groups["auxiliary_head.conv_seg.bias"]


def test_mask_rcnn_preset_exempts_norms_and_biases():
    from mambaout.models.mask_rcnn import build_mask_rcnn

    cfg = resolve_config("detection", "coco_maskrcnn_1x")
    model = build_mask_rcnn("mambaout_test", 3, min_size=64, max_size=64, fpn_channels=16, box_channels=32)
    groups = _no_decay(cfg, model)
    _check(groups)
    assert groups["backbone.body.norms.0.weight"] and groups["backbone.fpn.inner_blocks.0.0.bias"]
    assert not groups["backbone.fpn.inner_blocks.0.0.weight"]
    assert groups["roi_heads.box_predictor.cls_score.bias"] and not groups["roi_heads.box_predictor.cls_score.weight"]


@pytest.mark.parametrize("kind,preset", [("segmentation", "ade20k_upernet_160k"), ("detection", "coco_maskrcnn_1x")])
def test_ssm_a_log_and_d_stay_exempt(kind, preset):
    cfg = resolve_config(kind, preset)
    model = torch.nn.Module()
    model.A_log, model.D, model.w = (torch.nn.Parameter(torch.zeros(2, 2)) for _ in range(3))
    model.A_log._no_weight_decay = model.D._no_weight_decay = True
    assert _no_decay(cfg, model) == {"A_log": True, "D": True, "w": False}
