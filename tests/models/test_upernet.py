"""UperNet written to mmseg's UPerHead/FCNHead layout: losses, slide and multi-scale inference, SyncBN."""

import torch

from mambaout.models.upernet import FCNHead, UPerHead, build_upernet, predict_logits, slide_inference


def test_uperhead_mmseg_layout():
    head = UPerHead([16, 32, 48, 64], 5, channels=24)
    assert len(head.ppm.branches) == 4 and [b[0].output_size for b in head.ppm.branches] == [1, 2, 3, 6]
    assert head.bottleneck[0].in_channels == 64 + 4 * 24 and head.fpn_bottleneck[0].in_channels == 4 * 24
    assert all(
        isinstance(m[1], torch.nn.BatchNorm2d) and m[0].bias is None
        for m in [head.bottleneck, *head.lateral_convs, *head.fpn_convs, head.fpn_bottleneck]
    )
    feats = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip([16, 32, 48, 64], [4, 8, 16, 32])]
    assert head(feats).shape == (2, 5, 16, 16)
    aux = FCNHead(48, 5, 8)
    assert aux(feats[2]).shape == (2, 5, 4, 4) and aux.convs[0].kernel_size == (3, 3)


def test_upernet_losses_inference_and_syncbn():
    model = build_upernet("mambaout_test", num_classes=4, channels=16, aux_channels=8)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    y[0, :4] = 255
    loss = model(x, y)
    assert set(loss) == {"loss_seg", "loss_aux", "loss"}
    assert torch.allclose(loss["loss"], loss["loss_seg"] + loss["loss_aux"])
    loss["loss"].backward()
    model.eval()
    assert model(x).shape == (2, 4, 64, 64) and "loss_aux" not in model(x, y)
    # sliding window over a non-multiple size, multi-scale + flip give probabilities at the input size
    z = torch.randn(1, 3, 70, 90)
    assert slide_inference(model, z, (64, 64), (48, 48)).shape == (1, 4, 70, 90)
    p = predict_logits(model, z, "slide", (64, 64), (48, 48), scales=(0.75, 1.0), flip=True)
    assert p.shape == (1, 4, 70, 90) and torch.allclose(p.sum(1), torch.ones(1, 70, 90), atol=1e-4)  # mean softmax
    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.modules())


def test_heads_initialised_as_mmseg():
    """mmcv ConvModule: kaiming-normal fan_out (relu), BN 1/0; mmseg conv_seg: N(0, 0.01), bias 0 (issue #18 item 5)."""
    torch.manual_seed(0)
    head, aux = UPerHead([16, 32, 48, 64], 150, channels=64), FCNHead(48, 150, 64)
    for h in (head, aux):
        w = h.conv_seg.weight
        assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001
        assert torch.count_nonzero(h.conv_seg.bias) == 0
    for unit in [head.bottleneck, head.fpn_bottleneck, *head.fpn_convs, *head.lateral_convs, aux.convs]:
        conv = unit[0]
        expected = (2.0 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])) ** 0.5  # fan_out
        assert abs(conv.weight.std().item() / expected - 1) < 0.1, (unit, conv.weight.std().item(), expected)
        assert torch.all(unit[1].weight == 1) and torch.count_nonzero(unit[1].bias) == 0


def test_upernet_init_leaves_the_backbone_alone():
    torch.manual_seed(0)
    a = build_upernet("mambaout_test", num_classes=4, channels=16, aux_channels=8)
    torch.manual_seed(0)
    from mambaout.models.dense_backbone import DenseBackbone

    b = DenseBackbone("mambaout_test")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.backbone.state_dict().items())
